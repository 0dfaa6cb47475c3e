package proxy

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/connectors-node/connectors-node/kube"
)

// parallel runs n calls of f on workers goroutines and returns the first error.
func parallel(n, workers int, f func() error) error {
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := f(); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func getOK(c *http.Client, req func() *http.Request) error {
	resp, err := c.Do(req())
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return &statusError{status: resp.StatusCode, msg: "unexpected status"}
	}
	return nil
}

// 1,000 intercepted connections to one host sign one leaf certificate.
func TestThousandMITMConnectionsToOneHostIssueOneLeaf(t *testing.T) {
	upCA := newTestCA(t)
	cert := upCA.serverCert(t, "api.example.test")
	up := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), &cert)
	o := newFakeObjects()
	o.connector("team-a", "api", "https://api.example.test:"+port(t, up), "")
	e := startEnv(t, o, []*x509.Certificate{upCA.cert})
	c := e.forwardClient("team-a/api", tokA)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	u := "https://api.example.test:" + port(t, up) + "/"
	err := parallel(1000, 8, func() error {
		return getOK(c, func() *http.Request { return newRequest(t, http.MethodGet, u, nil) })
	})
	if err != nil {
		t.Fatal(err)
	}
	// A tunnel's request is counted when the tunnel closes, just after the
	// client saw its response.
	tunnels := e.proxy.metrics.requests.WithLabelValues(modeConnect, "200", "team-a/api")
	for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(tunnels) < 1000 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := testutil.ToFloat64(tunnels); n != 1000 {
		t.Errorf("%v intercepted connections, want 1000", n)
	}
	if n := testutil.ToFloat64(e.proxy.metrics.leafIssued); n != 1 {
		t.Errorf("1000 connections to one host issued %v leaves, want 1", n)
	}
}

// An idle intercepted tunnel holds one goroutine of net/http's server (its
// inner connection's), not also the CONNECT handler's with the client
// connection's buffers.
func TestIdleInterceptedTunnelHoldsOneServerGoroutine(t *testing.T) {
	upCA := newTestCA(t)
	cert := upCA.serverCert(t, "api.example.test")
	up := startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), &cert)
	o := newFakeObjects()
	o.connector("team-a", "api", "https://api.example.test:"+port(t, up), "")
	e := startEnv(t, o, []*x509.Certificate{upCA.cert})
	u := "https://api.example.test:" + port(t, up) + "/"
	before := serverGoroutines()
	const tunnels = 40
	for range tunnels {
		c := e.forwardClient("team-a/api", tokA)
		t.Cleanup(c.CloseIdleConnections)
		if err := getOK(c, func() *http.Request { return newRequest(t, http.MethodGet, u, nil) }); err != nil {
			t.Fatal(err)
		}
	}
	// Beyond one per tunnel: the upstream's connections (the requests ran
	// one after another) and a few that come and go.
	most := before + tunnels + 8
	var n int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n = serverGoroutines(); n <= most {
			return
		}
	}
	t.Errorf("%d idle tunnels hold %d goroutines of net/http's server (%d before), want at most %d", tunnels, n, before, most)
}

// serverGoroutines counts the goroutines serving a connection of an
// http.Server.
func serverGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := goruntime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "net/http.(*conn).serve(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// countingReviews is a fake clientset that accepts tokA as team-a's
// ServiceAccount, allows every access review and counts both kinds of call.
func countingReviews() (*fake.Clientset, *atomic.Int64, *atomic.Int64) {
	cs := fake.NewClientset()
	var tokens, access atomic.Int64
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tokens.Add(1)
		out := &authenticationv1.TokenReview{}
		if a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).Spec.Token == tokA {
			u := kube.ServiceAccountUser("team-a", "default")
			out.Status = authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{proxyAudience},
				User: authenticationv1.UserInfo{Username: u.Name, Groups: u.Groups}}
		}
		return true, out, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		access.Add(1)
		return true, &authorizationv1.SubjectAccessReview{Status: authorizationv1.SubjectAccessReviewStatus{Allowed: true}}, nil
	})
	return cs, &tokens, &access
}

// One token reused for 10,000 concurrent requests costs one TokenReview and
// one SubjectAccessReview through the real kube.Reviewer (at most two
// each, should a cache entry expire at the wrong moment).
func TestTokenReusedTenThousandTimesIsReviewedOnce(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	o := newFakeObjects()
	o.secret("team-a", "basic", corev1.SecretTypeBasicAuth, map[string]string{"username": upstreamUser, "password": upstreamPass})
	o.connector("team-a", "api", "http://api.example.test:"+port(t, up), "basic")
	cs, tokens, access := countingReviews()
	// A clock that stands still: the test counts what the caches save, and
	// a loaded machine may take longer than the 30 s access TTL.
	now := time.Now()
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{Client: cs, Audience: proxyAudience, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, o, nil, func(o *Options) { o.Auth = reviewer })
	c := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 50}}
	u := e.url + "/namespaces/team-a/connectors/api/x"
	err = parallel(10000, 50, func() error {
		return getOK(c, func() *http.Request {
			req := newRequest(t, http.MethodGet, u, nil)
			req.Header.Set("Authorization", "Bearer "+tokA)
			return req
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := tokens.Load(); n < 1 || n > 2 {
		t.Errorf("%d TokenReviews for 10,000 requests, want 1 or 2", n)
	}
	if n := access.Load(); n < 1 || n > 2 {
		t.Errorf("%d SubjectAccessReviews for 10,000 requests, want 1 or 2", n)
	}
}

// BenchmarkReverseRoundTripParallel measures small keep-alive GETs through
// the reverse proxy from many clients at once.
func BenchmarkReverseRoundTripParallel(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(up.Close)
	o := newFakeObjects()
	o.secret("team-a", "basic", corev1.SecretTypeBasicAuth, map[string]string{"username": "u", "password": "p"})
	o.connector("team-a", "api", "http://api.example.test:"+port(b, up), "basic")
	e := startEnv(b, o, nil)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256}}
	u := e.url + "/namespaces/team-a/connectors/api/x"
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
			req.Header.Set("Authorization", "Bearer "+tokA)
			if err := getOK(client, func() *http.Request { return req }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
