package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// upgradeUpstream answers an Upgrade request with 101 for the protocol
// named by ?answer= (default: the one asked for) and then echoes one line.
type upgradeUpstream struct {
	mu    sync.Mutex
	auths []string
}

func (u *upgradeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.auths = append(u.auths, r.Header.Get("Authorization"))
	u.mu.Unlock()
	proto := r.Header.Get("Upgrade")
	if a := r.URL.Query().Get("answer"); a != "" {
		proto = a
	}
	if proto == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+proto+"\r\n\r\n")
	line, err := brw.ReadString('\n')
	if err != nil {
		return
	}
	_, _ = io.WriteString(conn, "echo "+line)
}

func (u *upgradeUpstream) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.auths
	u.auths = nil
	return out
}

// TestAllowedUpgradesPassEveryRuleFirst pins that websocket and SPDY/3.1
// reach the upstream (with the credential, the stream spliced both ways)
// only once the request passed authentication, access and the path rule,
// and that an upstream switching to another protocol than the one asked
// for is cut off.
func TestAllowedUpgradesPassEveryRuleFirst(t *testing.T) {
	up := &upgradeUpstream{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	o := newFakeObjects()
	o.secret("team-a", "basic", "kubernetes.io/basic-auth", map[string]string{"username": upstreamUser, "password": upstreamPass})
	o.connector("team-a", "ws", "http://ws.example.test:"+port(t, srv)+"/api", "basic")
	e := startEnv(t, o, nil)
	basic := basicValue(upstreamUser, upstreamPass)

	cases := []struct {
		name, path, auth, proto string
		want                    int
		reached                 bool
	}{
		{"websocket", "/api/stream", "Bearer " + tokA, "websocket", 101, true},
		{"SPDY/3.1 as kubectl exec asks", "/api/exec", "Bearer " + tokA, "SPDY/3.1", 101, true},
		{"websocket without a token", "/api/stream", "", "websocket", 401, false},
		{"websocket without access", "/api/stream", "Bearer " + tokNoAccess, "websocket", 403, false},
		{"websocket outside the path prefix", "/api/../other", "Bearer " + tokA, "websocket", 400, false},
		{"websocket answered with h2c", "/api/stream?answer=h2c", "Bearer " + tokA, "websocket", 502, true},
		{"SPDY/2 is not SPDY/3.1", "/api/exec", "Bearer " + tokA, "SPDY/2", 400, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := dial(t, e.addr)
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			req := "GET /namespaces/team-a/connectors/ws" + c.path + " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: " + c.proto + "\r\n"
			if c.auth != "" {
				req += "Authorization: " + c.auth + "\r\n"
			}
			if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			defer func() { _ = resp.Body.Close() }()
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d", resp.StatusCode, c.want)
			}
			if resp.StatusCode == http.StatusSwitchingProtocols {
				if _, err := io.WriteString(conn, "ping\n"); err != nil {
					t.Fatal(err)
				}
				line, err := br.ReadString('\n')
				if err != nil || line != "echo ping\n" {
					t.Errorf("spliced stream answered %q, %v", line, err)
				}
			}
			_ = conn.Close()
			auths := up.take()
			if c.reached != (len(auths) > 0) {
				t.Fatalf("upstream reached: %v, want %v", len(auths) > 0, c.reached)
			}
			for _, a := range auths {
				if a != basic {
					t.Errorf("upstream got Authorization %q, want the injected credential", strings.SplitN(a, " ", 2)[0])
				}
			}
		})
	}
	assertNoSecrets(t, "logs", e.logs.String())
}

// TestSPDYUpgradeToAnHTTP2Upstream pins that an upgrade reaches an HTTPS
// upstream that offers HTTP/2, as kube-apiserver does: Go's HTTP/2
// transport refuses an Upgrade header, so the proxy must send it over
// HTTP/1.1 (SPDY/3.1 is what kubectl exec falls back to, and Go switches
// to HTTP/1.1 by itself for websocket alone).
func TestSPDYUpgradeToAnHTTP2Upstream(t *testing.T) {
	up := &upgradeUpstream{}
	ca := newTestCA(t)
	cert := ca.serverCert(t, "h2.example.test")
	srv := httptest.NewUnstartedServer(up)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	o := newFakeObjects()
	o.secret("team-a", "basic", "kubernetes.io/basic-auth", map[string]string{"username": upstreamUser, "password": upstreamPass})
	o.connector("team-a", "h2", "https://h2.example.test:"+port(t, srv)+"/api", "basic")
	e := startEnv(t, o, []*x509.Certificate{ca.cert})

	// The upstream does speak HTTP/2 to a client that offers it.
	c := srv.Client()
	c.Transport.(*http.Transport).TLSClientConfig.RootCAs = x509.NewCertPool()
	c.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(ca.cert)
	c.Transport.(*http.Transport).TLSClientConfig.ServerName = "h2.example.test"
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("the upstream answered over %s, want HTTP/2", resp.Proto)
	}
	_ = up.take()

	for _, proto := range []string{"SPDY/3.1", "websocket"} {
		t.Run(proto, func(t *testing.T) {
			conn := dial(t, e.addr)
			defer func() { _ = conn.Close() }()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			req := "POST /namespaces/team-a/connectors/h2/api/exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: " + proto +
				"\r\nAuthorization: Bearer " + tokA + "\r\n\r\n"
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			defer func() { _ = resp.Body.Close() }()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101", resp.StatusCode)
			}
			if _, err := io.WriteString(conn, "ping\n"); err != nil {
				t.Fatal(err)
			}
			if line, err := br.ReadString('\n'); err != nil || line != "echo ping\n" {
				t.Errorf("spliced stream answered %q, %v", line, err)
			}
			if auths := up.take(); len(auths) != 1 || auths[0] != basicValue(upstreamUser, upstreamPass) {
				t.Errorf("the upstream got %d requests, want one with the injected credential", len(auths))
			}
		})
	}
	// Each switch is audited with its 101 once the stream ends.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(e.logs.String(), `"status":101`) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(e.logs.String(), `"status":101`); n != 2 {
		t.Errorf("%d audit lines with status 101, want 2", n)
	}
	assertNoSecrets(t, "logs", e.logs.String())
}
