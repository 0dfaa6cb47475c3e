package registryauth

import (
	"strings"
	"testing"
)

func FuzzScopes(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/v2/app/manifests/latest", ""},
		{"POST", "/v2/a/b/blobs/uploads/", "mount=sha256:1&from=base/img"},
		{"DELETE", "/v2/app/manifests/sha256:1", ""},
		{"GET", "/v2/_catalog", ""},
		{"PUT", "/v2/blobs/blobs/uploads/abc", ""},
		{"POST", "/v2/app/blobs/uploads/", "from=a%20b:c"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, method, below, rawQuery string) {
		for _, s := range Scopes(method, below, rawQuery) {
			if s == "registry:catalog:*" {
				continue
			}
			parts := strings.Split(s, ":")
			if len(parts) != 3 || parts[0] != "repository" || !validRepository(parts[1]) {
				t.Fatalf("malformed scope %q", s)
			}
			switch parts[2] {
			case "pull", "pull,push", "delete":
			default:
				t.Fatalf("scope %q has actions %q", s, parts[2])
			}
		}
	})
}

func FuzzChallenges(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`,
		`bearer realm=https://auth/token, service=reg`,
		`Basic realm="x", Bearer realm="https://a/t",scope="repository:a:pull repository:b:pull"`,
		`Bearer realm="https://a/t\"q"`,
		`Bearer realm="unterminated`,
		`Negotiate abc==`,
		`,,, Bearer ,realm=`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, c := range parseChallenges(v) {
			if c.scheme == "" || c.scheme != strings.ToLower(c.scheme) {
				t.Fatalf("scheme %q", c.scheme)
			}
			for name := range c.params {
				if name == "" || name != strings.ToLower(name) {
					t.Fatalf("param name %q", name)
				}
			}
		}
		if ch, ok := bearerChallenge([]string{v}); ok && (!ch.bearer || ch.realm == "") {
			t.Fatalf("bearer challenge without realm: %+v", ch)
		}
	})
}
