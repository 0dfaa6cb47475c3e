package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/grammar/connref"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
)

// longName is a valid Connector name of the longest length (253), unique
// by i.
func longName(i int) string {
	label := strings.Repeat("n", 63)
	name := fmt.Sprintf("c%03d.%s.%s.%s", i, label, label, label)
	return name + strings.Repeat("x", 253-len(name))
}

// Regression: the CSI side accepted 64 Connectors and the proxy 32, so a
// volume naming 33 to 64 mounted fine and then every forward request got
// 407. A volume at the limit, with names of the longest length, renders
// proxy credentials the proxy accepts, with Go's client and with curl.
func TestVolumeAtTheConnectorLimitPassesTheForwardProxy(t *testing.T) {
	f := newFixture(t)
	cs := make([]configgen.Connector, 0, connref.Max)
	for i := range connref.Max - 1 {
		obj := f.objects.connector("team-a", longName(i), fmt.Sprintf("http://plain.example.test:%s/c%d", f.pc, i), "basic")
		cs = append(cs, configgen.Connector{Object: obj, ProxyAddress: obj.ProxyAddress(f.url)})
	}
	last, err := f.objects.Connector(t.Context(), "team-a", "plain")
	if err != nil {
		t.Fatal(err)
	}
	cs = append(cs, configgen.Connector{Object: last, ProxyAddress: last.ProxyAddress(f.url)})

	files, err := configgen.Render(configgen.Input{Connectors: cs, Token: tokA, ProxyURL: publicurl.MustParse(f.url)})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	forward := string(files[configgen.FileHTTPProxy])
	pu, err := url.Parse(forward)
	if err != nil {
		t.Fatalf("http.proxy %q: %v", forward, err)
	}
	user := pu.User.Username()
	keys, err := connref.Parse(user, "")
	if err != nil || len(keys) != connref.Max {
		t.Fatalf("the rendered proxy user does not parse back: %d keys, %v", len(keys), err)
	}

	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	for _, path := range []string{"/c0/x", fmt.Sprintf("/c%d/x", connref.Max-2), "/x"} {
		status, _, body := do(t, c, newRequest(t, http.MethodGet, "http://plain.example.test:"+f.pc+path, nil), nil)
		if status != http.StatusOK {
			t.Fatalf("Go client, %s: status %d body %q", path, status, body)
		}
	}
	if !injectedIn(f.log.take(), f.basic) {
		t.Errorf("credential not injected")
	}

	curl := needBinary(t, "curl")
	out := mustRun(t, t.TempDir(), childEnv(t.TempDir(), "http_proxy="+forward), curl, "-sS", "-o", "/dev/null",
		"-w", "%{http_code}", "http://plain.example.test:"+f.pc+"/c1/x")
	if out != "200" {
		t.Errorf("curl: status %s", out)
	}

	// One more than the limit is refused with 407 naming the limit.
	over := url.UserPassword(user+",team-a/one-more", tokA)
	c = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", User: over, Host: f.addr})}}
	status, _, body := do(t, c, newRequest(t, http.MethodGet, "http://plain.example.test:"+f.pc+"/x", nil), nil)
	if status != http.StatusProxyAuthRequired || !strings.Contains(body, fmt.Sprintf("at most %d", connref.Max)) {
		t.Errorf("over the limit: status %d body %q", status, body)
	}
}
