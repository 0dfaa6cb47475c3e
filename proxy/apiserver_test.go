package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/testpki"
)

// Token and RBAC decisions end to end against a real API server: minted
// ServiceAccount tokens, TokenReview, SubjectAccessReview, the informer
// cache and an on-demand Secret read.
func TestRealAPIServerDecisions(t *testing.T) {
	api := apiserver.Start(t, apiserver.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns := api.Namespace(t, "proxy")
	api.ServiceAccount(t, ns, "allowed")
	api.ServiceAccount(t, ns, "denied")
	api.AllowConnectors(t, ns, ns, "allowed")

	log := &recorderLog{}
	upstream := httptest.NewServer(log.handler("U"))
	t.Cleanup(upstream.Close)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cred"}, Type: corev1.SecretTypeBasicAuth,
		StringData: map[string]string{"username": upstreamUser, "password": upstreamPass}}
	if _, err := api.Kube.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	conn := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"}}
	conn.Spec.Address = "http://api.example.test:" + port(t, upstream)
	conn.Spec.Auth.SecretRef = &corev1.ObjectReference{Name: "cred"}
	if err := api.Client.Create(ctx, conn); err != nil {
		t.Fatal(err)
	}

	logs := &logBuffer{}
	addr := serveWithAPI(ctx, t, api, func(o *Options) {
		o.AuditLog = logs
		o.Log = logs.Logger()
	})

	allowed := api.Token(t, ns, "allowed", []string{proxyAudience}, time.Hour)
	denied := api.Token(t, ns, "denied", []string{proxyAudience}, time.Hour)
	otherAudience := api.Token(t, ns, "allowed", []string{"someone-else"}, time.Hour)
	cases := []struct {
		name, token string
		want        int
	}{
		{"token with RBAC on the connector", allowed, http.StatusOK},
		{"token without RBAC on the connector", denied, http.StatusForbidden},
		{"token for another audience", otherAudience, http.StatusUnauthorized},
		{"not a token", "garbage", http.StatusUnauthorized},
	}
	all := &bodies{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := newRequest(t, http.MethodGet, "http://"+addr+"/namespaces/"+ns+"/connectors/api/x", nil)
			req.Header.Set("Authorization", "Bearer "+c.token)
			code, _, _ := do(t, &http.Client{Transport: &http.Transport{Proxy: nil}}, req, all)
			if code != c.want {
				t.Errorf("status %d, want %d", code, c.want)
			}
			got := injectedIn(log.take(), basicValue(upstreamUser, upstreamPass))
			if got != (c.want == http.StatusOK) {
				t.Errorf("credential injected: %v", got)
			}
		})
	}
	for _, s := range []string{allowed, denied, otherAudience, upstreamPass} {
		for what, text := range map[string]string{"logs": logs.String(), "bodies": all.String()} {
			if strings.Contains(text, s) {
				t.Errorf("%s contain a secret", what)
			}
		}
	}
}

// serveWithAPI starts a proxy on loopback whose Connectors come from an
// informer cache and whose tokens and access are reviewed by the real API
// server, and returns its address. edit adjusts the options.
func serveWithAPI(ctx context.Context, t *testing.T, api *apiserver.Env, edit func(*Options)) string {
	t.Helper()
	p := newWithAPI(ctx, t, api, edit)
	return serveOn(ctx, t, p.NewServer(ServerOptions{}))
}

// newWithAPI builds the proxy serveWithAPI serves: Connectors from an
// informer cache, tokens and access reviewed by the real API server.
func newWithAPI(ctx context.Context, t *testing.T, api *apiserver.Env, edit func(*Options)) *Proxy {
	t.Helper()
	cache, err := kube.NewCache(kube.CacheOptions{Config: api.Config})
	if err != nil {
		t.Fatal(err)
	}
	return newWithCache(ctx, t, api, cache, edit)
}

// serveWithCache is serveWithAPI with the cache the test built.
func serveWithCache(ctx context.Context, t *testing.T, api *apiserver.Env, cache *kube.Cache, edit func(*Options)) string {
	t.Helper()
	return serveOn(ctx, t, newWithCache(ctx, t, api, cache, edit).NewServer(ServerOptions{}))
}

// newWithCache is newWithAPI with the cache the test built.
func newWithCache(ctx context.Context, t *testing.T, api *apiserver.Env, cache *kube.Cache, edit func(*Options)) *Proxy {
	t.Helper()
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !cache.WaitForSync(ctx) {
		t.Fatal("cache did not sync")
	}
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{Client: api.Kube, Audience: proxyAudience})
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.NewCA("t", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Objects: cache, Auth: reviewer, CA: authority, AllowLoopback: true, Resolver: testResolver,
		UpstreamFastPath: testFastPath()}
	if edit != nil {
		edit(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if lb, ok := opts.AuditLog.(*logBuffer); ok {
		lb.FlushWith(p.audit.flush)
	}
	return p
}

// serveOn serves srv on a loopback port until the test ends and returns
// its address.
func serveOn(ctx context.Context, t *testing.T, srv *Server) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return ln.Addr().String()
}

// secretFixture is a namespace of the real API server with a basic-auth
// Secret "cred", a Connector "api" at upstream that injects it, and a
// token that may use the Connector.
type secretFixture struct {
	api   *apiserver.Env
	ns    string
	token string
}

func newSecretFixture(ctx context.Context, t *testing.T, upstream *httptest.Server, password string) *secretFixture {
	t.Helper()
	return newSecretFixtureCA(ctx, t, upstream, password, nil)
}

// newSecretFixtureCA is newSecretFixture with an https upstream whose
// certificate the Connector's caCertSecretRef, the Secret "upstream-ca"
// holding caPEM, verifies.
func newSecretFixtureCA(ctx context.Context, t *testing.T, upstream *httptest.Server, password string, caPEM []byte) *secretFixture {
	t.Helper()
	api := apiserver.Start(t, apiserver.Options{})
	f := &secretFixture{api: api, ns: api.Namespace(t, "rotate")}
	api.ServiceAccount(t, f.ns, "client")
	api.AllowConnectors(t, f.ns, f.ns, "client")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "cred"}, Type: corev1.SecretTypeBasicAuth,
		StringData: map[string]string{"username": upstreamUser, "password": password}}
	if _, err := api.Kube.CoreV1().Secrets(f.ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	conn := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "api"}}
	conn.Spec.Address = "http://api.example.test:" + port(t, upstream)
	conn.Spec.Auth.SecretRef = &corev1.ObjectReference{Name: "cred"}
	if caPEM != nil {
		create(t, api, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "upstream-ca"},
			StringData: map[string]string{"ca.crt": string(caPEM)}})
		conn.Spec.Address = "https://api.example.test:" + port(t, upstream)
		conn.Spec.CACertSecretRef = &corev1.LocalObjectReference{Name: "upstream-ca"}
	}
	if err := api.Client.Create(ctx, conn); err != nil {
		t.Fatal(err)
	}
	f.token = api.Token(t, f.ns, "client", []string{proxyAudience}, time.Hour)
	return f
}

// get sends GET path through the proxy at addr, reverse mode, and returns
// the status.
func (f *secretFixture) get(t *testing.T, addr, path string) int {
	t.Helper()
	req := newRequest(t, http.MethodGet, "http://"+addr+"/namespaces/"+f.ns+"/connectors/api"+path, nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	code, _, _ := do(t, &http.Client{Transport: &http.Transport{Proxy: nil}}, req, &bodies{})
	return code
}

// acceptOnly is an upstream that answers 200 to the one Basic credential
// it holds and 401 to any other.
type acceptOnly struct {
	mu   sync.Mutex
	want string
}

func (a *acceptOnly) set(password string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.want = basicValue(upstreamUser, password)
}

func (a *acceptOnly) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	ok := r.Header.Get("Authorization") == a.want
	a.mu.Unlock()
	switch {
	case !ok:
		w.WriteHeader(http.StatusUnauthorized)
	case strings.HasSuffix(r.URL.Path, "/forbidden"):
		w.WriteHeader(http.StatusForbidden)
	}
}

// A Secret rotated while the proxy holds its old copy is used from the
// first request after the upstream refused the old credential: the refusal
// has it read again. The refused request itself is not retried.
func TestRotatedSecretIsUsedAfterTheUpstreamRefusedTheOld(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const oldPass, newPass = "old-pass-3f9d", "new-pass-8c2e"
	up := &acceptOnly{}
	up.set(oldPass)
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	f := newSecretFixture(ctx, t, upstream, oldPass)
	addr := serveWithAPI(ctx, t, f.api, nil)

	if code := f.get(t, addr, "/x"); code != http.StatusOK {
		t.Fatalf("before the rotation: status %d, want 200", code)
	}
	// The rotation: the Secret and the upstream change together.
	s, err := f.api.Kube.CoreV1().Secrets(f.ns).Get(ctx, "cred", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"username": []byte(upstreamUser), "password": []byte(newPass)}
	if _, err := f.api.Kube.CoreV1().Secrets(f.ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	up.set(newPass)

	if code := f.get(t, addr, "/x"); code != http.StatusUnauthorized {
		t.Fatalf("first request after the rotation: status %d, want the upstream's 401 for the old credential, not retried", code)
	}
	if code := f.get(t, addr, "/x"); code != http.StatusOK {
		t.Fatalf("first request after the refusal: status %d, want 200 with the rotated credential", code)
	}
}

// A CA Secret rotated together with the upstream's certificate, while the
// proxy holds the old CA, is used from the first request after the new
// certificate failed verification: the failure has the CA Secret read
// again. The failed request itself is not retried.
func TestRotatedCASecretIsUsedAfterTheUpstreamCertificateFailedVerification(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const password = "pass-5d1e"
	oldCA, err := testpki.NewCA("old upstream CA")
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := testpki.NewCA("new upstream CA")
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Pointer[tls.Certificate]
	serve := func(c *testpki.CA) {
		cert, err := c.TLSCertificate("api.example.test")
		if err != nil {
			t.Fatal(err)
		}
		served.Store(&cert)
	}
	serve(oldCA)
	up := &acceptOnly{}
	up.set(password)
	upstream := httptest.NewUnstartedServer(up)
	upstream.TLS = &tls.Config{MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return served.Load(), nil }}
	upstream.StartTLS()
	t.Cleanup(upstream.Close)
	f := newSecretFixtureCA(ctx, t, upstream, password, oldCA.PEM)
	addr := serveWithAPI(ctx, t, f.api, nil)

	if code := f.get(t, addr, "/x"); code != http.StatusOK {
		t.Fatalf("before the rotation: status %d, want 200", code)
	}
	// The rotation: the CA Secret and the upstream's certificate change
	// together; the upstream's connections to the proxy are closed, as a
	// restarted server's are.
	s, err := f.api.Kube.CoreV1().Secrets(f.ns).Get(ctx, "upstream-ca", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"ca.crt": newCA.PEM}
	if _, err := f.api.Kube.CoreV1().Secrets(f.ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	serve(newCA)
	upstream.CloseClientConnections()

	if code := f.get(t, addr, "/x"); code != http.StatusBadGateway {
		t.Fatalf("first request after the rotation: status %d, want 502 for the certificate the old CA does not verify, not retried", code)
	}
	if code := f.get(t, addr, "/x"); code != http.StatusOK {
		t.Fatalf("first request after the failed verification: status %d, want 200 verified with the rotated CA", code)
	}
}

// Under steady use a Connector's Secret is read once per --secret-cache-ttl
// (5 minutes), not per request or per few seconds; refusals read it again
// at most once per 10 s, however many requests the upstream refuses, so a
// workload cannot turn its requests into Secret reads.
func TestSecretReadsFollowUseNotTime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const pass = "steady-pass-51ab"
	up := &acceptOnly{}
	up.set(pass)
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	f := newSecretFixture(ctx, t, upstream, pass)

	var reads atomic.Int64
	cfg := apiserver.CountingConfig(f.api.Config, func(r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/namespaces/"+f.ns+"/secrets/cred") {
			reads.Add(1)
		}
	})
	clock := testingclock.NewFakeClock(time.Now())
	cache, err := kube.NewCache(kube.CacheOptions{Config: cfg, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveWithCache(ctx, t, f.api, cache, nil)
	// settled waits until the Secret reads stop changing and returns them.
	settled := func() int64 {
		t.Helper()
		time.Sleep(200 * time.Millisecond) // a background read is a goroutine and one API call
		return reads.Load()
	}

	// Ten requests a minute for four minutes and 50 seconds: one read.
	for minute := 0; minute < 5; minute++ {
		for range 10 {
			if code := f.get(t, addr, "/x"); code != http.StatusOK {
				t.Fatalf("minute %d: status %d", minute, code)
			}
		}
		if minute < 4 {
			clock.Step(time.Minute)
		} else {
			clock.Step(50 * time.Second)
		}
	}
	if n := settled(); n != 1 {
		t.Fatalf("%d Secret reads in 4m50s of steady use, want 1", n)
	}
	// Past the five minutes, the next request has it read once more.
	clock.Step(20 * time.Second)
	if code := f.get(t, addr, "/x"); code != http.StatusOK {
		t.Fatalf("after 5m10s: status %d", code)
	}
	if n := settled(); n != 2 {
		t.Fatalf("%d Secret reads after 5m10s, want 2", n)
	}

	// Twenty refusals (the upstream's 403) within 10 s: one read more.
	for range 20 {
		if code := f.get(t, addr, "/forbidden"); code != http.StatusForbidden {
			t.Fatalf("status %d, want the upstream's 403", code)
		}
	}
	if n := settled(); n != 3 {
		t.Fatalf("%d Secret reads after 20 refusals, want 3 (one read for all of them)", n)
	}
	// Ten seconds later a refusal reads it again.
	clock.Step(10 * time.Second)
	f.get(t, addr, "/forbidden")
	if n := settled(); n != 4 {
		t.Fatalf("%d Secret reads after a refusal 10 s later, want 4", n)
	}
}
