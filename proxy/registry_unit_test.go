package proxy

import "testing"

func TestStripMountPrefix(t *testing.T) {
	const prefix = "namespaces/ns/connectors/reg"
	cases := map[string]string{
		"":                                 "",
		"digest=sha256:1":                  "digest=sha256:1",
		"mount=m&from=other/a":             "mount=m&from=other/a",
		"mount=m&from=" + prefix + "/base": "from=base&mount=m",
	}
	for in, want := range cases {
		if got := stripMountPrefix(in, prefix); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestRegistryLocation(t *testing.T) {
	got, ok := registryLocation("http://p", "namespaces/ns/connectors/reg", "/v2/app/blobs/uploads/1")
	if !ok || got != "http://p/v2/namespaces/ns/connectors/reg/app/blobs/uploads/1" {
		t.Errorf("got %q %v", got, ok)
	}
	if _, ok := registryLocation("http://p", "", "/v2/app"); ok {
		t.Errorf("host form must not be rewritten")
	}
	if _, ok := registryLocation("http://p", "namespaces/ns/connectors/reg", "/other"); ok {
		t.Errorf("non-registry path rewritten")
	}
}
