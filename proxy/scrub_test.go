package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestEchoedCredentialIsRemovedFromResponseHeaders pins that an upstream
// that copies the injected Authorization into its response headers (an
// informational 103, the final headers, a field name, a trailer) does not
// hand it to the workload, in reverse, forward and MITM mode, and for the
// bearer and the Basic forms. Headers without it pass.
func TestEchoedCredentialIsRemovedFromResponseHeaders(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name   string
		client *http.Client
		url    string
		auth   string
		cred   func() []string
	}{
		{"reverse, Basic", f.reverseClient(), f.url + "/namespaces/team-a/connectors/api/echo", "Bearer " + tokA,
			func() []string { return []string{f.basic, strings.TrimPrefix(f.basic, "Basic "), upstreamPass} }},
		{"forward MITM, bearer", f.forwardClient("team-a/reg", tokA), "https://reg.example.test:" + f.pa + "/echo", "",
			func() []string { return []string{f.bearer, upstreamBear} }},
		{"forward plain HTTP, Basic", f.forwardClient("team-a/plain", tokA), "http://plain.example.test:" + f.pc + "/echo", "",
			func() []string { return []string{f.basic, strings.TrimPrefix(f.basic, "Basic "), upstreamPass} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var hints []textproto.MIMEHeader
			trace := &httptrace.ClientTrace{Got1xxResponse: func(_ int, h textproto.MIMEHeader) error {
				mu.Lock()
				hints = append(hints, h)
				mu.Unlock()
				return nil
			}}
			req := newRequest(t, http.MethodGet, c.url, nil)
			req = req.WithContext(httptrace.WithClientTrace(context.Background(), trace))
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := c.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusOK || body == "" {
				t.Fatalf("status %d, body %q", resp.StatusCode, body)
			}
			if !injectedIn(f.log.take(), c.cred()[0]) {
				t.Fatalf("the credential did not reach the upstream")
			}
			blocks := map[string]http.Header{"final headers": resp.Header, "trailers": resp.Trailer}
			mu.Lock()
			for _, h := range hints {
				blocks["103 headers"] = http.Header(h)
			}
			mu.Unlock()
			if len(hints) == 0 {
				t.Errorf("the 103 did not reach the client")
			}
			for what, h := range blocks {
				for k, vs := range h {
					for _, needle := range c.cred() {
						if strings.Contains(strings.ToLower(k), strings.ToLower(needle)) {
							t.Errorf("%s: a field name holds the credential", what)
						}
						for _, v := range vs {
							if strings.Contains(v, needle) {
								t.Errorf("%s: %s holds the credential", what, k)
							}
						}
					}
				}
			}
			if resp.Header.Get("X-Upstream") == "" || !slices.Equal(resp.Header.Values("X-Echo-Credential"), []string{"kept"}) {
				t.Errorf("headers without the credential were removed too: %v", resp.Header)
			}
		})
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
