package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// fwd sends method url through the forward proxy as user:token.
func (f *fixture) fwd(t testing.TB, user, token, method, u string, all *bodies) int {
	t.Helper()
	code, _, _ := do(t, f.forwardClient(user, token), newRequest(t, method, u, nil), all)
	return code
}

// rev sends an origin-form request to the proxy with the given headers.
func (f *fixture) rev(t testing.TB, path string, header http.Header, all *bodies) (int, http.Header) {
	t.Helper()
	req := newRequest(t, http.MethodGet, f.url+path, nil)
	for k, v := range header {
		if k == "Host" {
			req.Host = v[0]
			continue
		}
		req.Header[k] = v
	}
	code, h, _ := do(t, f.reverseClient(), req, all)
	return code, h
}

// raw writes raw to a new connection to the proxy and reads one response.
func (f *fixture) raw(t testing.TB, raw string, all *bodies) int {
	t.Helper()
	c := dial(t, f.addr)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readStatus(t, bufio.NewReader(c), all)
}

func readStatus(t testing.TB, br *bufio.Reader, all *bodies) int {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if all != nil {
		all.add(string(b))
	}
	return resp.StatusCode
}

func proxyAuth(user, token string) string {
	return "Proxy-Authorization: Basic " + b64(user+":"+token) + "\r\n"
}

// tunnel opens CONNECT authority as user:token and completes TLS with
// serverName (verifying the proxy CA unless insecure).
func (f *fixture) tunnel(t testing.TB, authority, serverName, user, token string, insecure bool) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	c := dial(t, f.addr)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err := io.WriteString(c, "CONNECT "+authority+" HTTP/1.1\r\nHost: "+authority+"\r\n"+proxyAuth(user, token)+"\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", authority, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: %d", authority, resp.StatusCode)
	}
	tc := tls.Client(&bufConn{Conn: c, r: br}, &tls.Config{
		ServerName:         serverName,
		RootCAs:            f.caPool(),
		InsecureSkipVerify: insecure, //nolint:gosec // the SNI-mismatch case must get past verification to see 421
		MinVersion:         tls.VersionTLS12,
	})
	if err := tc.HandshakeContext(context.Background()); err != nil {
		t.Fatalf("TLS through the tunnel: %v", err)
	}
	return tc, bufio.NewReader(tc)
}

// inner sends a raw request inside an intercepted tunnel.
func (f *fixture) inner(t testing.TB, authority, serverName, request string, insecure bool, all *bodies) int {
	t.Helper()
	tc, br := f.tunnel(t, authority, serverName, "team-a/api", tokA, insecure)
	if _, err := io.WriteString(tc, request); err != nil {
		t.Fatal(err)
	}
	return readStatus(t, br, all)
}

// plainInner sends a raw request inside a tunnel to the http:// Connector
// plain, which the proxy serves in the clear.
func (f *fixture) plainInner(t testing.TB, authority, request string, all *bodies) int {
	t.Helper()
	c := dial(t, f.addr)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "CONNECT "+authority+" HTTP/1.1\r\nHost: "+authority+"\r\n"+proxyAuth("team-a/plain", tokA)+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("CONNECT %s: %v", authority, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode
	}
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return readStatus(t, br, all)
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// dial connects to addr; the connection closes when t ends.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	var d net.Dialer
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
