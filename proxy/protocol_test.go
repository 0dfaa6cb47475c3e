package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// protoUpstream answers every request with 200 and notes the protocol it
// came over.
type protoUpstream struct {
	mu     sync.Mutex
	protos []string
}

func (u *protoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.protos = append(u.protos, r.Proto)
	u.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

func (u *protoUpstream) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	p := u.protos
	u.protos = nil
	return p
}

// TestInterceptedRequestsLeaveAsHTTP1 pins which protocol the proxy speaks
// to an HTTPS upstream that offers HTTP/2: a request inside an intercepted
// tunnel (HTTP/1.1, the only protocol the tunnel's TLS offers) leaves as
// HTTP/1.1, bodies included, while a reverse-proxied request uses HTTP/2.
func TestInterceptedRequestsLeaveAsHTTP1(t *testing.T) {
	up := &protoUpstream{}
	ca := newTestCA(t)
	srv := httptest.NewUnstartedServer(up)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.serverCert(t, "h2.example.test")}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	o := newFakeObjects()
	o.secret("team-a", "basic", "kubernetes.io/basic-auth", map[string]string{"username": upstreamUser, "password": upstreamPass})
	o.connector("team-a", "h2", "https://h2.example.test:"+port(t, srv)+"/api", "basic")
	e := startEnv(t, o, []*x509.Certificate{ca.cert})

	send := func(c *http.Client, method, u string) {
		t.Helper()
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader("payload")
		}
		req, err := http.NewRequestWithContext(t.Context(), method, u, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tokA)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d", method, u, resp.StatusCode)
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		send(e.forwardClient("team-a/h2", tokA), method, "https://h2.example.test:"+port(t, srv)+"/api/plain")
		if got := up.take(); len(got) != 1 || got[0] != "HTTP/1.1" {
			t.Errorf("intercepted %s reached the upstream over %v, want HTTP/1.1", method, got)
		}
		send(e.reverseClient(), method, e.url+"/namespaces/team-a/connectors/h2/api/plain")
		if got := up.take(); len(got) != 1 || got[0] != "HTTP/2.0" {
			t.Errorf("reverse %s reached the upstream over %v, want HTTP/2.0", method, got)
		}
	}
}
