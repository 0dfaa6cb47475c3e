package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// rawUpstream answers every request on every connection with resp, and
// records the request heads it read.
func rawUpstream(t *testing.T, resp string) (port string, heads func() []string) {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer func() { _ = c.Close() }()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					var b strings.Builder
					_ = r.Header.Write(&b)
					mu.Lock()
					seen = append(seen, r.Method+" "+r.RequestURI+"\n"+b.String())
					mu.Unlock()
					if _, err := io.WriteString(c, resp); err != nil {
						return
					}
				}
			})
		}
	})
	_, port, _ = net.SplitHostPort(l.Addr().String())
	return port, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// TestUpstreamFastPathRefusesAmbiguousFraming pins the upstream fast path's
// answer to a response framed by both Content-Length and chunked coding,
// which net/http reads as chunked: a request that may be repeated is sent
// again through net/http's transport, one that may not never takes the fast
// path, and the client never gets a response read from those bytes by the
// fast path.
func TestUpstreamFastPathRefusesAmbiguousFraming(t *testing.T) {
	const ambiguous = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	for _, fast := range []bool{false, true} {
		port, heads := rawUpstream(t, ambiguous)
		o := newFakeObjects()
		o.secret("team-a", "basic", "kubernetes.io/basic-auth", map[string]string{"username": "u", "password": "p"})
		o.connector("team-a", "api", "http://api.example.test:"+port, "basic")
		e := startEnv(t, o, nil, func(o *Options) { o.UpstreamFastPath = fast })
		client := e.reverseClient()
		u := e.url + "/namespaces/team-a/connectors/api/x"
		for _, tc := range []struct {
			method string
			want   int
			sent   int // times the upstream saw the request
		}{
			{http.MethodGet, http.StatusOK, map[bool]int{false: 1, true: 2}[fast]},
			{http.MethodPost, http.StatusOK, 1},
			{http.MethodDelete, http.StatusOK, 1},
		} {
			before := len(heads())
			req := newRequest(t, tc.method, u, nil)
			req.Header.Set("Authorization", "Bearer "+tokA)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("fast path %v, %s: %d %q, want %d", fast, tc.method, resp.StatusCode, body, tc.want)
			}
			if n := len(heads()) - before; n != tc.sent {
				t.Errorf("fast path %v, %s: upstream saw the request %d times, want %d", fast, tc.method, n, tc.sent)
			}
		}
		if logs := e.logs.String(); strings.Contains(logs, "dTpw") {
			t.Errorf("the credential is in the logs: %s", logs)
		}
	}
}

// TestUpstreamFastPathSendsWhatNetHTTPSends pins the request head that
// reaches a plain upstream: the same through the fast path as through
// net/http's transport, the credential injected and the client's token and
// hop-by-hop fields gone.
func TestUpstreamFastPathSendsWhatNetHTTPSends(t *testing.T) {
	got := map[bool]string{}
	for _, fast := range []bool{false, true} {
		port, heads := rawUpstream(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		o := newFakeObjects()
		o.secret("team-a", "basic", "kubernetes.io/basic-auth", map[string]string{"username": "u", "password": "p"})
		o.connector("team-a", "api", "http://api.example.test:"+port, "basic")
		e := startEnv(t, o, nil, func(o *Options) { o.UpstreamFastPath = fast })
		req := newRequest(t, http.MethodGet, e.url+"/namespaces/team-a/connectors/api/x?q=1", nil)
		req.Header.Set("Authorization", "Bearer "+tokA)
		req.Header.Set("X-Forwarded-For", "1.2.3.4")
		req.Header.Set("Accept", "*/*")
		resp, err := e.reverseClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("fast path %v: status %d", fast, resp.StatusCode)
		}
		h := heads()
		if len(h) != 1 {
			t.Fatalf("fast path %v: %d requests upstream", fast, len(h))
		}
		got[fast] = h[0]
	}
	if got[true] != got[false] {
		t.Errorf("request heads differ:\nfast path %q\nnet/http  %q", got[true], got[false])
	}
	for _, bad := range []string{tokA, "1.2.3.4"} {
		if strings.Contains(got[true], bad) {
			t.Errorf("%q reached the upstream: %q", bad, got[true])
		}
	}
	if !strings.Contains(got[true], "Authorization: Basic dTpw") {
		t.Errorf("credential not injected: %q", got[true])
	}
}
