package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/test/apiserver"
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
	opts := Options{Objects: cache, Auth: reviewer, CA: authority, AllowLoopback: true, Resolver: testResolver}
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
