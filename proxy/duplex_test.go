package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestResponseStreamsWhileTheRequestBodyIsStillSent: an upstream that
// answers before it has read the whole request (git's smart HTTP streams
// its pack as soon as it has read the request) gets the rest of the
// client's body after the response's head went back, and the response
// streams whole. net/http's server by default consumes and closes the
// request body when the response's head is written; the proxy's transport
// is still reading that body then, so the head waited for the rest of the
// body (here, forever), or, when the body had just been sent, the
// transport's last read failed and it closed the upstream connection in
// the middle of the response.
func TestResponseStreamsWhileTheRequestBodyIsStillSent(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			t.Error(err)
			return
		}
		w.WriteHeader(http.StatusOK)
		if err := rc.Flush(); err != nil {
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		_, _ = io.WriteString(w, "got "+string(b))
	}))
	t.Cleanup(up.Close)
	o := newFakeObjects()
	o.secret("team-a", "basic", "kubernetes.io/basic-auth", map[string]string{"username": "u", "password": "p"})
	o.connector("team-a", "api", "http://api.example.test:"+port(t, up), "basic")
	e := startEnv(t, o, nil)
	var d net.Dialer
	c, err := d.DialContext(context.Background(), "tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	head := "POST /namespaces/team-a/connectors/api/git-upload-pack HTTP/1.1\r\nHost: " + e.addr +
		"\r\nAuthorization: Bearer " + tokA + "\r\nContent-Length: 8\r\n\r\n"
	if _, err := io.WriteString(c, head+"want"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the response's head before the rest of the request body: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if _, err := io.WriteString(c, " one"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("the response's body: %v (read %q)", err, b)
	}
	if string(b) != "got want one" {
		t.Fatalf("body %q, want %q", b, "got want one")
	}
}
