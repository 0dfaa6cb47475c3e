package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/connectors-node/connectors-node/test/testenv"
)

// fairEnv is a proxy with one Connector, team-a/web, whose upstream
// answers 200.
func fairEnv(t *testing.T, so ServerOptions) *env {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	o := newFakeObjects()
	o.connector("team-a", "web", "http://web.example.test:"+port(t, up), "")
	return startEnvServer(t, o, nil, so)
}

// keepAlive is one client connection that sends requests one by one.
type keepAlive struct {
	c net.Conn
	r *bufio.Reader
}

// openFrom connects to the proxy from d's source address.
func openFrom(t *testing.T, d *net.Dialer, addr string) *keepAlive {
	t.Helper()
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &keepAlive{c: c, r: bufio.NewReader(c)}
}

// get sends a keep-alive GET through the reverse proxy, with a bearer
// token unless token is "", and returns the response status.
func (k *keepAlive) get(token string) (int, error) {
	req := "GET /namespaces/team-a/connectors/web/x HTTP/1.1\r\nHost: proxy.test\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(k.c, req+"\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, err
}

// waitClosed reads until the proxy closes the connection and fails if it
// is still open after 5s.
func (k *keepAlive) waitClosed(t *testing.T) {
	t.Helper()
	_ = k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, k.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection is still open")
	}
}

// readRefusal reads what the proxy says to a connection that sent nothing
// and checks it is the 503 that asks to retry and closes.
func readRefusal(t *testing.T, k *keepAlive) {
	t.Helper()
	_ = k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		t.Fatalf("no refusal on a connection beyond the limit: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Fatalf("refusal %d %v, want 503 with Retry-After and Connection: close", resp.StatusCode, resp.Header)
	}
}

// sourceClient sends each request on a new connection from d.
func sourceClient(d *net.Dialer) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// requestsFrom sends n authenticated requests from c and returns the
// statuses that were not 200.
func requestsFrom(t *testing.T, e *env, c *http.Client, n int) []string {
	t.Helper()
	var failed []string
	for range n {
		req := newRequest(t, http.MethodGet, e.url+"/namespaces/team-a/connectors/web/x", nil)
		req.Header.Set("Authorization", "Bearer "+tokA)
		resp, err := c.Do(req)
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed = append(failed, resp.Status)
		}
	}
	return failed
}

func refusedBy(e *env, reason string) float64 {
	return testutil.ToFloat64(e.proxy.metrics.connsRefused.WithLabelValues(reason))
}

func closedFor(e *env, reason string) float64 {
	return testutil.ToFloat64(e.proxy.metrics.connsClosed.WithLabelValues(reason))
}

// TestFinding5OneSourceCannotDenyTheProxy pins finding 5 with the default
// limits: one client opens more keep-alive connections than
// --max-connections, each after a token-less request answered 401, and
// keeps them; another pod's requests must all still be served.
func TestFinding5OneSourceCannotDenyTheProxy(t *testing.T) {
	e := fairEnv(t, ServerOptions{})
	attacker := testenv.LoopbackDialer(t, "127.0.0.2")
	pod := testenv.LoopbackDialer(t, "127.0.0.3")
	held := 0
	for range DefaultMaxConnections + 100 {
		if code, err := openFrom(t, attacker, e.addr).get(""); err == nil && code == http.StatusUnauthorized {
			held++
		}
	}
	if held > DefaultMaxUnauthenticatedPerSource {
		t.Errorf("one source holds %d unauthenticated connections, want at most %d", held, DefaultMaxUnauthenticatedPerSource)
	}
	if failed := requestsFrom(t, e, sourceClient(pod), 20); len(failed) > 0 {
		t.Fatalf("another pod's requests failed while one source held its connections: %v", failed)
	}
}

// TestConnectionLimitPrefersQuietSources pins the total limit's eviction:
// when sources that each stay within their own limits fill MaxConnections,
// with unauthenticated or authenticated idle connections, a source that
// holds none is still served, by closing an idle connection of the
// source that holds the most.
func TestConnectionLimitPrefersQuietSources(t *testing.T) {
	so := ServerOptions{MaxConnections: 12, MaxConnectionsPerSource: 8, MaxUnauthenticatedPerSource: 4}
	t.Run("unauthenticated", func(t *testing.T) {
		e := fairEnv(t, so)
		// Three sources at their unauthenticated limit fill the total.
		for i := 2; i < 5; i++ {
			d := testenv.LoopbackDialer(t, fmt.Sprintf("127.0.0.%d", i))
			for range 6 {
				_, _ = openFrom(t, d, e.addr).get("")
			}
		}
		pod := sourceClient(testenv.LoopbackDialer(t, "127.0.0.9"))
		if failed := requestsFrom(t, e, pod, 10); len(failed) > 0 {
			t.Fatalf("a quiet source's requests failed at the connection limit: %v", failed)
		}
		if closedFor(e, reasonEvicted) == 0 {
			t.Errorf("no eviction counted")
		}
	})
	t.Run("authenticated", func(t *testing.T) {
		e := fairEnv(t, so)
		for host, n := range map[string]int{"127.0.0.10": 8, "127.0.0.11": 4} {
			d := testenv.LoopbackDialer(t, host)
			for range n {
				if code, err := openFrom(t, d, e.addr).get(tokA); code != http.StatusOK {
					t.Fatalf("holding connection from %s: %d %v", host, code, err)
				}
			}
		}
		pod := sourceClient(testenv.LoopbackDialer(t, "127.0.0.12"))
		if failed := requestsFrom(t, e, pod, 10); len(failed) > 0 {
			t.Fatalf("a quiet source's requests failed at the connection limit: %v", failed)
		}
	})
}

// TestPerSourceLimits pins the default per-source limits: 64
// unauthenticated connections from one address, 256 in all once they
// authenticate; one more is answered 503 and counted by reason.
func TestPerSourceLimits(t *testing.T) {
	e := fairEnv(t, ServerOptions{})
	anon := testenv.LoopbackDialer(t, "127.0.0.2")
	for i := range DefaultMaxUnauthenticatedPerSource {
		if code, err := openFrom(t, anon, e.addr).get(""); code != http.StatusUnauthorized {
			t.Fatalf("unauthenticated connection %d: %d %v, want 401", i+1, code, err)
		}
	}
	readRefusal(t, openFrom(t, anon, e.addr))
	if n := refusedBy(e, reasonUnauthenticated); n != 1 {
		t.Errorf("refusals counted as unauthenticated: %v, want 1", n)
	}

	pod := testenv.LoopbackDialer(t, "127.0.0.3")
	for i := range DefaultMaxConnectionsPerSource {
		if code, err := openFrom(t, pod, e.addr).get(tokA); code != http.StatusOK {
			t.Fatalf("authenticated connection %d: %d %v, want 200", i+1, code, err)
		}
	}
	readRefusal(t, openFrom(t, pod, e.addr))
	if n := refusedBy(e, reasonSource); n != 1 {
		t.Errorf("refusals counted as source: %v, want 1", n)
	}
	if n := refusedBy(e, reasonTotal); n != 0 {
		t.Errorf("refusals counted as total: %v, want 0", n)
	}
}

// TestUnauthenticatedIdleConnectionIsClosed pins
// UnauthenticatedIdleTimeout: a connection that sent nothing, and one
// whose only request had no token, are closed once idle that long.
func TestUnauthenticatedIdleConnectionIsClosed(t *testing.T) {
	e := fairEnv(t, ServerOptions{UnauthenticatedIdleTimeout: 100 * time.Millisecond})
	var d net.Dialer
	silent := openFrom(t, &d, e.addr)
	refused := openFrom(t, &d, e.addr)
	if code, err := refused.get(""); code != http.StatusUnauthorized {
		t.Fatalf("token-less request: %d %v, want 401", code, err)
	}
	silent.waitClosed(t)
	refused.waitClosed(t)
	if n := closedFor(e, reasonUnauthenticatedIdle); n != 2 {
		t.Errorf("closes counted as unauthenticated_idle: %v, want 2", n)
	}
}

// TestAuthenticatedConnectionOutlivesUnauthenticatedTimeout pins that an
// authenticated keep-alive connection keeps the server's idle timeout.
func TestAuthenticatedConnectionOutlivesUnauthenticatedTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	e := fairEnv(t, ServerOptions{UnauthenticatedIdleTimeout: timeout})
	var d net.Dialer
	k := openFrom(t, &d, e.addr)
	if code, err := k.get(tokA); code != http.StatusOK {
		t.Fatalf("first request: %d %v", code, err)
	}
	time.Sleep(6 * timeout)
	if code, err := k.get(tokA); code != http.StatusOK {
		t.Fatalf("second request on the idle authenticated connection: %d %v, want 200", code, err)
	}
	if n := closedFor(e, reasonUnauthenticatedIdle); n != 0 {
		t.Errorf("closes counted as unauthenticated_idle: %v, want 0", n)
	}
}

// fakeAddrConn is a net.Conn with a given remote address.
type fakeAddrConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeAddrConn) RemoteAddr() net.Addr { return c.remote }

// TestSourceAddrKeysByIP pins the source key: the IP without port or
// zone, an IPv4-mapped IPv6 address as its IPv4 address.
func TestSourceAddrKeysByIP(t *testing.T) {
	for _, tc := range []struct {
		remote net.Addr
		want   netip.Addr
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 1}, netip.MustParseAddr("10.0.0.7")},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.7"), Port: 2}, netip.MustParseAddr("10.0.0.7")},
		{&net.TCPAddr{IP: net.ParseIP("fd00::7"), Port: 3}, netip.MustParseAddr("fd00::7")},
		{&net.TCPAddr{IP: net.ParseIP("fe80::7"), Port: 4, Zone: "eth0"}, netip.MustParseAddr("fe80::7")},
		{&net.UnixAddr{Name: "@x", Net: "unix"}, netip.Addr{}},
	} {
		if got := sourceAddr(fakeAddrConn{remote: tc.remote}); got != tc.want {
			t.Errorf("sourceAddr(%v) = %v, want %v", tc.remote, got, tc.want)
		}
	}
}
