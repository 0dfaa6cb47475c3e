package proxy

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/ca"
)

// Git's anyauth sends credentials only after a 407 and retries on the same
// keep-alive connection, for CONNECT too.
func TestProxyAuthRetryOnSameConnection(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ name, first, second string }{
		{"CONNECT", "CONNECT api.example.test:{A} HTTP/1.1\r\nHost: api.example.test:{A}\r\n\r\n",
			"CONNECT api.example.test:{A} HTTP/1.1\r\nHost: api.example.test:{A}\r\n" + proxyAuth("team-a/api", tokA) + "\r\n"},
		{"absolute form with a body", "POST http://plain.example.test:{C}/p HTTP/1.1\r\nHost: plain.example.test:{C}\r\nContent-Length: 5\r\n\r\nhello",
			"POST http://plain.example.test:{C}/p HTTP/1.1\r\nHost: plain.example.test:{C}\r\nContent-Length: 5\r\n{PA-plain}\r\nhello"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := dial(t, f.addr)
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(conn)
			_, _ = io.WriteString(conn, f.expand(c.first))
			resp, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(c.first)[0]})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") != `Basic realm="connectors"` {
				t.Fatalf("first answer %d %v", resp.StatusCode, resp.Header)
			}
			if resp.Close {
				t.Fatalf("the 407 closed the connection")
			}
			_, _ = io.WriteString(conn, f.expand(c.second))
			resp, err = http.ReadResponse(br, &http.Request{Method: strings.Fields(c.second)[0]})
			if err != nil {
				t.Fatalf("retry on the same connection: %v", err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("retry answered %d", resp.StatusCode)
			}
		})
	}
}

func TestReverseChallenge(t *testing.T) {
	f := newFixture(t)
	code, h := f.rev(t, "/namespaces/team-a/connectors/api/", nil, nil)
	if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") != `Basic realm="connectors"` {
		t.Errorf("got %d %v", code, h)
	}
}

func TestAPIUnavailableIs503(t *testing.T) {
	f := newFixture(t)
	f.auth.SetErr(fmt.Errorf("review: %w", kube.ErrUnavailable))
	if code, _ := f.rev(t, "/namespaces/team-a/connectors/api/", bearer(tokA), nil); code != http.StatusServiceUnavailable {
		t.Errorf("reverse: %d", code)
	}
	if code := f.fwd(t, "team-a/plain", tokA, "GET", "http://plain.example.test:"+f.pc+"/", nil); code != http.StatusServiceUnavailable {
		t.Errorf("forward: %d", code)
	}
}

func TestForbiddenNamesConnector(t *testing.T) {
	f := newFixture(t)
	_, _, body := do(t, f.reverseClient(), func() *http.Request {
		r := newRequest(t, "GET", f.url+"/namespaces/team-a/connectors/api/", nil)
		r.Header.Set("Authorization", "Bearer "+tokB)
		return r
	}(), nil)
	if !strings.Contains(body, `"team-a/api"`) {
		t.Errorf("403 body does not name the connector: %q", body)
	}
	code, _, body := do(t, f.forwardClient("team-a/api", tokA), newRequest(t, "GET", "http://nowhere.example.test/", nil), nil)
	if code != http.StatusForbidden || !strings.Contains(body, "no_proxy") {
		t.Errorf("unmatched forward: %d %q", code, body)
	}
}

func TestLocationRewrite(t *testing.T) {
	f := newFixture(t)
	cases := []struct{ name, path, host, to, want string }{
		{"backend URL to path form", "/namespaces/team-a/connectors/api/redirect", "",
			"https://api.example.test:{A}/a/b?c=1", "http://{P}/namespaces/team-a/connectors/api/a/b?c=1"},
		{"backend prefix is stripped", "/namespaces/team-a/connectors/gl/redirect", "",
			"https://h.example.test:{A}/gitlab/x", "http://{P}/namespaces/team-a/connectors/gl/x"},
		{"relative to the backend", "/namespaces/team-a/connectors/gl/redirect", "",
			"/gitlab/y", "http://{P}/namespaces/team-a/connectors/gl/y"},
		{"host form", "/redirect", "c-api.team-a", "https://api.example.test:{A}/z", "http://c-api.team-a/z"},
		{"another host is left alone", "/namespaces/team-a/connectors/api/redirect", "",
			"https://other.example.test/q", "https://other.example.test/q"},
		{"outside the prefix is left alone", "/namespaces/team-a/connectors/gl/redirect", "",
			"https://h.example.test:{A}/other", "https://h.example.test:{A}/other"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exp := strings.NewReplacer("{A}", f.pa, "{P}", f.addr)
			h := bearer(tokA)
			if c.host != "" {
				h.Set("Host", c.host)
			}
			code, resp := f.rev(t, c.path+"?to="+urlQueryEscape(exp.Replace(c.to)), h, nil)
			if code != http.StatusFound {
				t.Fatalf("status %d", code)
			}
			if got := resp.Get("Location"); got != exp.Replace(c.want) {
				t.Errorf("Location %q, want %q", got, exp.Replace(c.want))
			}
		})
	}
}

func TestLeafIssuedOncePerHost(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 20; i++ {
		if code := f.inner(t, "api.example.test:"+f.pa, "api.example.test",
			"GET / HTTP/1.1\r\nHost: api.example.test:"+f.pa+"\r\nConnection: close\r\n\r\n", false, nil); code != 200 {
			t.Fatalf("tunnel %d: %d", i, code)
		}
	}
	if n := testutil.ToFloat64(f.proxy.metrics.leafIssued); n != 1 {
		t.Errorf("20 tunnels to one host issued %v leaves, want 1", n)
	}
}

func TestLeafCache(t *testing.T) {
	authority, err := ca.NewCA("t", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(nil)
	c := newLeafCache(func() *ca.CA { return authority }, 2, 24*time.Hour, time.Now, m)
	// 1,000 concurrent requests for one host sign one leaf.
	errs := make(chan error, 1000)
	for i := 0; i < 1000; i++ {
		go func() {
			_, err := c.get("git.example.test")
			errs <- err
		}()
	}
	for i := 0; i < 1000; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := testutil.ToFloat64(m.leafIssued); n != 1 {
		t.Errorf("issued %v leaves, want 1", n)
	}
	leaf, _ := c.get("git.example.test")
	l := leaf.Leaf
	if l.DNSNames[0] != "git.example.test" || l.NotAfter.Sub(l.NotBefore) > 26*time.Hour || l.CheckSignatureFrom(authority.Cert) != nil {
		t.Errorf("bad leaf: %v %v..%v", l.DNSNames, l.NotBefore, l.NotAfter)
	}
	if _, err := c.get("10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.get("b.example.test"); err != nil {
		t.Fatal(err)
	}
	if c.len() != 2 {
		t.Errorf("cache holds %d leaves, want the bound 2", c.len())
	}
}

// TestLeafCacheSignsWithTheRotatedCA pins CA rotation: once SigningCA
// returns a new CA, a host whose leaf the old CA signed gets a new leaf
// signed by the new CA, not the cached one.
func TestLeafCacheSignsWithTheRotatedCA(t *testing.T) {
	oldCA, err := ca.NewCA("old", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := ca.NewCA("new", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var cur atomic.Pointer[ca.CA]
	cur.Store(oldCA)
	c := newLeafCache(cur.Load, 8, 24*time.Hour, time.Now, newMetrics(nil))
	before, err := c.get("git.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if before.Leaf.CheckSignatureFrom(oldCA.Cert) != nil {
		t.Fatal("the first leaf is not signed by the CA in use")
	}
	cur.Store(newCA)
	after, err := c.get("git.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if after.Leaf.CheckSignatureFrom(newCA.Cert) != nil {
		t.Errorf("after the rotation the leaf is still signed by the old CA")
	}
	if c.len() != 1 {
		t.Errorf("cache holds %d leaves for one host, want 1", c.len())
	}
}

func TestShutdownDrainsTunnelRequest(t *testing.T) {
	upCA := newTestCA(t)
	cert := upCA.serverCert(t, "slow.example.test")
	entered, release := make(chan struct{}), make(chan struct{})
	slow := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done")
	}), &cert)
	o := newFakeObjects()
	o.connector("team-a", "slow", "https://slow.example.test:"+port(t, slow), "")
	e := startEnv(t, o, []*x509.Certificate{upCA.cert})
	f := &fixture{env: e}
	tc, br := f.tunnel(t, "slow.example.test:"+port(t, slow), "slow.example.test", "team-a/slow", tokA, false)
	_, _ = io.WriteString(tc, "GET / HTTP/1.1\r\nHost: slow.example.test:"+port(t, slow)+"\r\n\r\n")
	<-entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- e.server.Shutdown(ctx)
	}()
	close(release)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight tunnel request cut by shutdown: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "done" {
		t.Errorf("got %d %q", resp.StatusCode, b)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestShutdownClosesTunnelsAtDeadline(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.AllowUnmatchedTunnels = true })
	// A blind tunnel to an unmatched host stays open until shutdown's
	// context ends, then is closed.
	conn := dial(t, f.addr)
	_, _ = io.WriteString(conn, "CONNECT other.example.test:"+f.pc+" HTTP/1.1\r\nHost: x\r\n"+proxyAuth("team-a/api", tokA)+"\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.server.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("shutdown with an open tunnel and a done context: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("tunnel still open after forced shutdown")
	}
}

func TestAuditLineAndMetrics(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.rev(t, "/namespaces/team-a/connectors/api/audit/path?secret-query=1", bearer(tokA), nil); code != 200 {
		t.Fatalf("status %d", code)
	}
	logs := f.logs.String()
	for _, want := range []string{`"msg":"request"`, `"user":"system:serviceaccount:team-a:default"`,
		`"connector":"team-a/api"`, `"mode":"reverse"`, `"method":"GET"`,
		`"path":"/namespaces/team-a/connectors/api/audit/path"`, `"status":200`, `"injected":true`} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit line lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "secret-query") {
		t.Errorf("query string logged")
	}
	n := testutil.ToFloat64(f.proxy.metrics.requests.WithLabelValues("reverse", "200", "team-a/api"))
	if n != 1 {
		t.Errorf("requests metric %v", n)
	}
	if c, err := testutil.GatherAndCount(f.registry, "connectors_proxy_upstream_duration_seconds"); err != nil || c == 0 {
		t.Errorf("no upstream latency: %d %v", c, err)
	}
}

func TestNewRejectsMissingFields(t *testing.T) {
	authority, _ := ca.NewCA("t", time.Now())
	full := Options{Objects: newFakeObjects(), Auth: newFakeAuth(), CA: authority}
	for name, mut := range map[string]func(*Options){
		"Objects": func(o *Options) { o.Objects = nil },
		"Auth":    func(o *Options) { o.Auth = nil },
		"CA":      func(o *Options) { o.CA = nil },
	} {
		o := full
		mut(&o)
		if _, err := New(o); err == nil {
			t.Errorf("New without a valid %s succeeded", name)
		}
	}
	if _, err := New(full); err != nil {
		t.Errorf("New: %v", err)
	}
}

// TestUnauthenticatedRequestsMintNoMetricSeries pins that the connector
// label comes from an admitted request only: registry pings with made-up
// host-form names and a bad token used to create one series each.
func TestUnauthenticatedRequestsMintNoMetricSeries(t *testing.T) {
	f := newFixture(t)
	for i := range 20 {
		h := bearer("not-a-valid-token")
		h.Set("Host", fmt.Sprintf("c-made-up-%d.ns-%d", i, i))
		if code, _ := f.rev(t, "/v2/", h, nil); code != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", code)
		}
	}
	families, err := f.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "connector" && strings.Contains(l.GetValue(), "made-up") {
					t.Fatalf("%s has a series for %s", mf.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestIdleBlindTunnelIsClosed pins that a blind tunnel in which nobody says
// anything ends after TunnelIdleTimeout instead of holding its goroutines
// and connections forever.
func TestIdleBlindTunnelIsClosed(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.AllowUnmatchedTunnels = true
		o.TunnelIdleTimeout = 200 * time.Millisecond
	})
	conn := dial(t, f.addr)
	_, _ = io.WriteString(conn, "CONNECT other.example.test:"+f.pc+" HTTP/1.1\r\nHost: x\r\n"+proxyAuth("team-a/api", tokA)+"\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	// Nothing is sent either way; the proxy closes the tunnel on its own.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle tunnel: read %v, want EOF from the proxy closing it", err)
	}
}

// A Connector stored before the CRDs checked addresses, with an address
// the grammar refuses, is a misconfigured gateway: 502 naming the field
// and the rule, never the value, and nothing is sent anywhere.
func TestInvalidStoredAddressIs502(t *testing.T) {
	f := newFixture(t)
	f.objects.connector("team-a", "bad", "https://api.example.test:"+f.pa+"/x\n[core]\n\tsshCommand = touch /tmp/pwned", "basic")
	var all bodies
	code, _, body := do(t, f.reverseClient(), func() *http.Request {
		r := newRequest(t, "GET", f.url+"/namespaces/team-a/connectors/bad/", nil)
		r.Header.Set("Authorization", bearer(tokA).Get("Authorization"))
		return r
	}(), &all)
	if code != http.StatusBadGateway {
		t.Fatalf("got %d %q, want 502", code, body)
	}
	if !strings.Contains(body, `"team-a/bad"`) || !strings.Contains(body, "spec.address holds control character") {
		t.Errorf("502 body does not name the connector, field and rule: %q", body)
	}
	if strings.Contains(body, "sshCommand") {
		t.Errorf("502 body repeats the address: %q", body)
	}
	if reqs := f.log.take(); len(reqs) != 0 {
		t.Errorf("an upstream was reached: %v", reqs)
	}
}

// TestCAExpiryAndAuditBacklogGauges: the CA expiry gauge follows the CA
// that signs now (a rotation moves it), and the audit backlog gauge is
// the batch waiting for its write.
func TestCAExpiryAndAuditBacklogGauges(t *testing.T) {
	first, err := ca.NewCA("first", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	second, err := ca.NewCA("second", time.Now().Add(-365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[ca.CA]
	current.Store(first)
	reg := prometheus.NewRegistry()
	blocked := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	p, err := New(Options{Objects: newFakeObjects(), Auth: newFakeAuth(), SigningCA: current.Load, AuditLog: blocked, Registerer: reg,
		UpstreamFastPath: testFastPath()})
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(name string) float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range families {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s", name)
		return 0
	}
	if got, want := gauge("connectors_proxy_ca_expiry_timestamp_seconds"), float64(first.Cert.NotAfter.Unix()); got != want {
		t.Errorf("CA expiry %v, want %v", got, want)
	}
	current.Store(second)
	if got, want := gauge("connectors_proxy_ca_expiry_timestamp_seconds"), float64(second.Cert.NotAfter.Unix()); got != want {
		t.Errorf("CA expiry after a rotation %v, want %v", got, want)
	}

	if got := gauge("connectors_proxy_audit_pending_bytes"); got != 0 {
		t.Errorf("audit backlog %v before any request", got)
	}
	e := &entry{mode: modeReverse, method: http.MethodGet, status: http.StatusOK}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.audit.write(e, time.Millisecond, 0, 0) // written at once: the writer blocks on it
	}()
	<-blocked.entered
	p.audit.write(e, time.Millisecond, 0, 0) // waits behind it
	if got := gauge("connectors_proxy_audit_pending_bytes"); got <= 0 {
		t.Errorf("audit backlog %v while the writer is blocked", got)
	}
	close(blocked.release)
	<-done
	p.audit.flush()
	if got := gauge("connectors_proxy_audit_pending_bytes"); got != 0 {
		t.Errorf("audit backlog %v after the flush", got)
	}
}

// blockingWriter closes entered on its first Write and blocks it until
// release is closed.
type blockingWriter struct {
	entered, release chan struct{}
	once             sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered); <-w.release })
	return len(p), nil
}
