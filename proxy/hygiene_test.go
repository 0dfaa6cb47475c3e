package proxy

import (
	"net/http"
	"testing"
)

// Header hygiene with two httptest servers: the recording upstream and the
// proxy in front of it.
func TestHeaderHygieneReverse(t *testing.T) {
	f := newFixture(t)
	h := http.Header{
		"Authorization":       {"Bearer " + tokA},
		"Connection":          {"Authorization, X-Private"},
		"X-Private":           {"1"},
		"Keep-Alive":          {"timeout=5"},
		"Proxy-Authorization": {basicValue("team-a/api", tokA)},
		"X-Forwarded-For":     {"6.6.6.6"},
		"X-Forwarded-Host":    {"evil.test"},
		"X-Forwarded-Proto":   {"https"},
		"X-Forwarded-Port":    {"1"},
		"Forwarded":           {"for=6.6.6.6"},
		"X-Real-Ip":           {"6.6.6.6"},
		"X-Kept":              {"yes"},
	}
	code, resp := f.rev(t, "/namespaces/team-a/connectors/api/hop", h, nil)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	reqs := f.log.take()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	got := reqs[0].Header
	if got.Get("Authorization") != f.basic {
		t.Errorf("Connection: Authorization stripped the injected credential: %q", got.Get("Authorization"))
	}
	for _, k := range []string{"X-Private", "Keep-Alive", "Proxy-Authorization", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "Forwarded", "X-Real-Ip"} {
		if v := got.Values(k); len(v) > 0 {
			t.Errorf("upstream got %s: %v", k, v)
		}
	}
	if got.Get("X-Kept") != "yes" {
		t.Errorf("an end-to-end header was dropped")
	}
	for _, k := range []string{"X-Upstream-Private", "Proxy-Authenticate"} {
		if v := resp.Values(k); len(v) > 0 {
			t.Errorf("client got upstream hop-by-hop header %s: %v", k, v)
		}
	}
}

func TestHeaderHygieneForward(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, auth string
		wantAuth   string
	}{
		{"client token as Bearer is dropped", "Bearer " + tokA, ""},
		{"client token as Basic password is dropped", basicValue("x", tokA), ""},
		{"client's own credential for an unmanaged host passes", "Bearer client-own", "Bearer client-own"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := newRequest(t, http.MethodGet, "https://open.example.test:"+f.pa+"/h", nil)
			req.Header.Set("Authorization", c.auth)
			req.Header.Set("X-Forwarded-For", "6.6.6.6")
			code, _, _ := do(t, f.forwardClient("team-a/open", tokA), req, nil)
			reqs := f.log.take()
			if code != http.StatusOK || len(reqs) != 1 {
				t.Fatalf("status %d, %d upstream requests", code, len(reqs))
			}
			if got := reqs[0].Header.Get("Authorization"); got != c.wantAuth {
				t.Errorf("upstream Authorization %q, want %q", got, c.wantAuth)
			}
			if reqs[0].Header.Get("X-Forwarded-For") != "" || reqs[0].Header.Get("Proxy-Authorization") != "" {
				t.Errorf("untrusted forwarding headers reached the upstream")
			}
		})
	}
}

// TestUpstreamSessionCookiesAreDropped pins that a session the upstream opens
// for the injected credential never reaches the workload: it would work
// against the tool without the proxy and outlive the pod's token. Without an
// injected credential the cookie passes.
func TestUpstreamSessionCookiesAreDropped(t *testing.T) {
	f := newFixture(t)
	code, resp := f.rev(t, "/namespaces/team-a/connectors/api/session", bearer(tokA), nil)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if v := resp.Values("Set-Cookie"); len(v) > 0 {
		t.Errorf("client got the upstream's session cookie: %v", v)
	}
	code, resp = f.rev(t, "/namespaces/team-a/connectors/open/session", bearer(tokA), nil)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if len(resp.Values("Set-Cookie")) != 1 {
		t.Errorf("a cookie of an upstream reached without a credential was dropped")
	}
}
