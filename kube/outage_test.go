package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
)

// counterValue reads one sample of a counter or gauge from reg (0 when
// there is none); it may run outside the test's goroutine.
func counterValue(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	families, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// staleServes reads connectors_api_stale_serves_total{kind} from reg.
func staleServes(reg *prometheus.Registry, kind string) float64 {
	return counterValue(reg, "connectors_api_stale_serves_total", map[string]string{"kind": kind})
}

func newBreaker(t *testing.T, cs kubernetes.Interface, clock *testingclock.FakeClock, reg prometheus.Registerer) *kube.Breaker {
	t.Helper()
	b, err := kube.NewBreaker(kube.BreakerOptions{Probe: kube.ProbeVersion(cs), Now: clock.Now, Registerer: reg})
	require.NoError(t, err)
	return b
}

// outageEnv is an API server of the test's own (outages would disturb the
// shared one) with a ServiceAccount allowed to get the Connector "git".
func outageEnv(t *testing.T) (*apiserver.Env, string) {
	env := apiserver.Start(t, apiserver.Options{})
	ns := env.Namespace(t, "outage")
	env.ServiceAccount(t, ns, "builder")
	env.AllowConnectors(t, ns, ns, "builder")
	return env, ns
}

// TestReviewerServesStaleDecisionsWhileTheAPIServerIsKilled pins the outage
// grace: before it, an access decision stopped serving 30 s into an outage
// and a token review at its TTL. Allow decisions and accepted tokens keep
// serving, counted, for the grace past their TTL; denials, new tokens and
// anything past the grace fail closed; after a restart the reviews resume.
func TestReviewerServesStaleDecisionsWhileTheAPIServerIsKilled(t *testing.T) {
	env, ns := outageEnv(t)
	clock := testingclock.NewFakeClock(time.Now())
	reg := prometheus.NewRegistry()
	r := newReviewer(t, env.Kube, clock, func(o *kube.ReviewerOptions) {
		o.AllowTTL = 30 * time.Second
		o.TokenTTL = time.Minute
		o.OutageGrace = 5 * time.Minute
		o.Breaker = newBreaker(t, env.Kube, clock, reg)
	})
	ctx := context.Background()
	cached := env.Token(t, ns, "builder", []string{audience}, time.Hour)
	fresh := env.Token(t, ns, "builder", []string{audience}, time.Hour)
	user, err := r.Authenticate(ctx, cached)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return r.Authorize(ctx, user, ns, "git") == nil }, 10*time.Second, 50*time.Millisecond)
	require.ErrorIs(t, r.Authorize(ctx, user, "default", "git"), kube.ErrForbidden)

	require.NoError(t, env.Kill())
	clock.Step(2 * time.Minute) // past every TTL, within the grace

	_, err = r.Authenticate(ctx, cached)
	require.NoError(t, err, "an accepted token serves stale")
	require.NoError(t, r.Authorize(ctx, user, ns, "git"), "an allow decision serves stale")
	// Once their refreshes have found the API down, the stale answers are
	// counted.
	require.Eventually(t, func() bool {
		_, err := r.Authenticate(ctx, cached)
		return err == nil && r.Authorize(ctx, user, ns, "git") == nil &&
			staleServes(reg, "token") > 0 && staleServes(reg, "access") > 0
	}, 10*time.Second, 20*time.Millisecond)

	err = r.Authorize(ctx, user, "default", "git")
	require.ErrorIs(t, err, kube.ErrUnavailable, "a denial is never turned into an allow")
	require.NotErrorIs(t, err, kube.ErrForbidden)
	_, err = r.Authenticate(ctx, fresh)
	require.ErrorIs(t, err, kube.ErrUnavailable, "a new token fails closed")
	require.NotErrorIs(t, err, kube.ErrUnauthenticated)
	require.ErrorIs(t, r.Authorize(ctx, user, ns, "other"), kube.ErrUnavailable, "a new decision fails closed")

	clock.Step(5 * time.Minute) // past the grace
	_, err = r.Authenticate(ctx, cached)
	require.ErrorIs(t, err, kube.ErrUnavailable)
	require.ErrorIs(t, r.Authorize(ctx, user, ns, "git"), kube.ErrUnavailable)

	restartCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	require.NoError(t, env.Restart(restartCtx))
	require.Eventually(t, func() bool {
		clock.Step(time.Second) // lets the breaker's probe run
		_, err := r.Authenticate(ctx, fresh)
		return err == nil
	}, time.Minute, 100*time.Millisecond)
	require.NoError(t, r.Authorize(ctx, user, ns, "git"))
	// Right after the restart a refusal may be RBAC still loading; past
	// the recovery window it stands.
	require.ErrorIs(t, r.Authorize(ctx, user, "default", "git"), kube.ErrUnavailable)
	clock.Step(kube.DefaultRecoveryWindow)
	require.ErrorIs(t, r.Authorize(ctx, user, "default", "git"), kube.ErrForbidden)
}

// TestBreakerFailsFastWhileTheAPIServerHangs pins the circuit breaker:
// before it, every new token waited the whole review timeout of a hung API
// server. After the first timeout, a new token gets ErrUnavailable without an
// API call and without waiting; a cached decision serves stale; once the API
// server answers again, a probe closes the breaker.
func TestBreakerFailsFastWhileTheAPIServerHangs(t *testing.T) {
	env, ns := outageEnv(t)
	var calls reviewCalls
	cs := calls.client(t, env)
	clock := testingclock.NewFakeClock(time.Now())
	reg := prometheus.NewRegistry()
	r := newReviewer(t, cs, clock, func(o *kube.ReviewerOptions) {
		o.APITimeout = 3 * time.Second
		o.Breaker = newBreaker(t, cs, clock, reg)
	})
	ctx := context.Background()
	cached := env.Token(t, ns, "builder", []string{audience}, time.Hour)
	first := env.Token(t, ns, "builder", []string{audience}, time.Hour)
	second := env.Token(t, ns, "builder", []string{audience}, time.Hour)
	_, err := r.Authenticate(ctx, cached)
	require.NoError(t, err)

	require.NoError(t, env.Pause())
	t.Cleanup(func() { _ = env.Resume() })
	_, err = r.Authenticate(ctx, first)
	require.ErrorIs(t, err, kube.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the first call waits for its timeout")
	require.EqualValues(t, 1, counterValue(reg, "connectors_api_breaker_open", nil))
	before := calls.tokens.Load()

	// A deadline well past the review timeout: without the breaker the call
	// would wait the timeout and fail with DeadlineExceeded.
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err = r.Authenticate(waitCtx, second)
	require.ErrorIs(t, err, kube.ErrUnavailable)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "the breaker answers without waiting")
	require.NoError(t, waitCtx.Err())
	require.Equal(t, before, calls.tokens.Load(), "no TokenReview while the breaker is open")
	require.Positive(t, counterValue(reg, "connectors_api_fast_failures_total", nil))

	clock.Step(6 * time.Minute) // the cached token is past its TTL, within the grace
	_, err = r.Authenticate(waitCtx, cached)
	require.NoError(t, err, "a cached token serves stale at once")

	require.NoError(t, env.Resume())
	require.Eventually(t, func() bool {
		clock.Step(time.Second)
		_, err := r.Authenticate(ctx, second)
		return err == nil
	}, time.Minute, 100*time.Millisecond)
	require.EqualValues(t, 0, counterValue(reg, "connectors_api_breaker_open", nil))
}

// TestReviewWithoutPermissionIsUnavailable pins that a TokenReview the node
// may not make (403, as while a restarted API server's RBAC warms up) is
// ErrUnavailable (503), not an error the proxy answers 500 for.
func TestReviewWithoutPermissionIsUnavailable(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "norbac")
	env.ServiceAccount(t, ns, "node")
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = env.Token(t, ns, "node", nil, time.Hour)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	r := newReviewer(t, cs, testingclock.NewFakeClock(time.Now()))
	_, err = r.Authenticate(context.Background(), env.Token(t, ns, "node", []string{audience}, time.Hour))
	require.ErrorIs(t, err, kube.ErrUnavailable)
	require.NotErrorIs(t, err, kube.ErrUnauthenticated)
	err = r.Authorize(context.Background(), kube.ServiceAccountUser(ns, "node"), ns, "git")
	require.ErrorIs(t, err, kube.ErrUnavailable)
	require.NotErrorIs(t, err, kube.ErrForbidden)
}

// TestCacheServesStaleSecretsWhileTheAPIServerIsKilled pins the Secret
// grace: before it, every Connector with a Secret failed at the Secret TTL of
// an outage. A deleted Secret is never served again.
func TestCacheServesStaleSecretsWhileTheAPIServerIsKilled(t *testing.T) {
	env, ns := outageEnv(t)
	ctx := context.Background()
	for _, name := range []string{"kept", "deleted"} {
		createSecret(t, env, ns, name)
	}
	clock := testingclock.NewFakeClock(time.Now())
	reg := prometheus.NewRegistry()
	c, err := kube.NewCache(kube.CacheOptions{
		Config:      env.Config,
		SecretTTL:   10 * time.Second,
		OutageGrace: 5 * time.Minute,
		Breaker:     newBreaker(t, env.Kube, clock, reg),
		Now:         clock.Now,
	})
	require.NoError(t, err)
	for _, name := range []string{"kept", "deleted"} {
		_, err := c.Secret(ctx, ns, name)
		require.NoError(t, err)
	}
	require.NoError(t, env.Kube.CoreV1().Secrets(ns).Delete(ctx, "deleted", metav1.DeleteOptions{}))
	clock.Step(11 * time.Second)
	// Past its TTL the cached Secret is answered while the refresh runs;
	// the refresh's answer, the deletion, replaces it.
	require.Eventually(t, func() bool {
		_, err := c.Secret(ctx, ns, "deleted")
		return errors.Is(err, kube.ErrNotFound)
	}, 10*time.Second, 10*time.Millisecond, "the refresh sees the deletion")

	require.NoError(t, env.Kill())
	clock.Step(time.Minute)
	s, err := c.Secret(ctx, ns, "kept")
	require.NoError(t, err, "a cached Secret serves stale")
	require.Equal(t, "kept", s.Name)
	require.Eventually(t, func() bool {
		_, err := c.Secret(ctx, ns, "kept")
		return err == nil && staleServes(reg, "secret") > 0
	}, 10*time.Second, 10*time.Millisecond, "once its refresh found the API down, the stale Secret is counted")
	_, err = c.Secret(ctx, ns, "deleted")
	require.ErrorIs(t, err, kube.ErrUnavailable, "a deleted Secret is not brought back")
	_, err = c.Secret(ctx, ns, "never-read")
	require.ErrorIs(t, err, kube.ErrUnavailable)

	clock.Step(5 * time.Minute)
	_, err = c.Secret(ctx, ns, "kept")
	require.ErrorIs(t, err, kube.ErrUnavailable, "not past the grace")
}

// TestInformerSyncTimeoutIsUnavailable pins that a Connector read that gives
// up waiting for the informers to sync is ErrUnavailable (503, Unavailable),
// not Internal: the API server answers discovery but never the lists.
func TestInformerSyncTimeoutIsUnavailable(t *testing.T) {
	env := apiserver.Shared(t)
	release := make(chan struct{})
	defer close(release)
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if strings.Contains(r.URL.Path, "/connectors") || strings.Contains(r.URL.Path, "/connectorclasses") {
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return nil, r.Context().Err()
			}
			return rt.RoundTrip(r)
		})
	}
	c, err := kube.NewCache(kube.CacheOptions{Config: cfg})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, c.Start(ctx))
	readCtx, stop := context.WithTimeout(ctx, 500*time.Millisecond)
	defer stop()
	_, err = c.Connector(readCtx, "ns", "git")
	require.ErrorIs(t, err, kube.ErrUnavailable)
	_, err = c.ConnectorClass(readCtx, "git")
	require.ErrorIs(t, err, kube.ErrUnavailable)
}

// TestExpiredDecisionIsServedAtOnceWhileTheAPIServerHangs pins the start of
// an outage: before, a cached decision that expired after the API server
// hung but before the breaker opened waited out the whole API timeout (the
// battery's 10 s freeze, 8 s into the outage). An expired cached answer is
// answered at once and refreshed in the background; the refresh that times
// out opens the breaker.
func TestExpiredDecisionIsServedAtOnceWhileTheAPIServerHangs(t *testing.T) {
	env, ns := outageEnv(t)
	clock := testingclock.NewFakeClock(time.Now())
	reg := prometheus.NewRegistry()
	breaker := newBreaker(t, env.Kube, clock, reg)
	r := newReviewer(t, env.Kube, clock, func(o *kube.ReviewerOptions) {
		o.APITimeout = 3 * time.Second
		o.TokenTTL = time.Minute
		o.Breaker = breaker
	})
	ctx := context.Background()
	token := env.Token(t, ns, "builder", []string{audience}, time.Hour)
	user, err := r.Authenticate(ctx, token)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return r.Authorize(ctx, user, ns, "git") == nil }, 10*time.Second, 50*time.Millisecond)

	require.NoError(t, env.Pause())
	t.Cleanup(func() { _ = env.Resume() })
	clock.Step(2 * time.Minute) // past both TTLs, within the grace; the breaker knows nothing yet
	require.False(t, breaker.IsOpen())
	start := time.Now()
	_, err = r.Authenticate(ctx, token)
	require.NoError(t, err)
	require.NoError(t, r.Authorize(ctx, user, ns, "git"))
	require.Less(t, time.Since(start), kube.DefaultProbeInterval, "an expired cached answer is never waited on")

	require.Eventually(t, breaker.IsOpen, 10*time.Second, 50*time.Millisecond, "the refresh that timed out opens the breaker")
	require.NoError(t, r.Authorize(ctx, user, ns, "git"))
	require.Positive(t, staleServes(reg, "access"))
}

// TestRefreshesWaitForTheBreakerWhileTheAPIServerRefuses pins the pacing of
// refreshes: before, a node whose API server refused connections sent about
// 33 access reviews a second, one refresh per request served stale. Now the
// refreshes that find the API down open the breaker, and until its probe
// closes it no request refreshes anything.
func TestRefreshesWaitForTheBreakerWhileTheAPIServerRefuses(t *testing.T) {
	env, ns := outageEnv(t)
	var calls reviewCalls
	cs := calls.client(t, env)
	clock := testingclock.NewFakeClock(time.Now())
	breaker := newBreaker(t, cs, clock, nil)
	r := newReviewer(t, cs, clock, func(o *kube.ReviewerOptions) { o.Breaker = breaker })
	ctx := context.Background()
	user, err := r.Authenticate(ctx, env.Token(t, ns, "builder", []string{audience}, time.Hour))
	require.NoError(t, err)
	names := []string{"a", "b", "c", "d", "e"}
	for _, n := range names {
		require.Eventually(t, func() bool { return r.Authorize(ctx, user, ns, n) == nil }, 10*time.Second, 50*time.Millisecond)
	}

	require.NoError(t, env.Kill())
	clock.Step(time.Minute) // every decision past its TTL, within the grace
	before := calls.access.Load()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		for _, n := range names {
			require.NoError(t, r.Authorize(ctx, user, ns, n), "a cached decision serves stale")
		}
	}
	require.True(t, breaker.IsOpen())
	require.LessOrEqual(t, calls.access.Load()-before, int64(len(names)+kube.DefaultBreakerThreshold),
		"the refreshes stop once the breaker opens; its probe decides when to ask again")
}

// TestPodBindingServesStalePodsWhileTheAPIServerIsKilled pins the grace of
// the pod reads behind the token binding: before, they were cached for the
// token TTL with no grace and outside the breaker, so a five-minute outage
// broke every cached request at 278 s, each after waiting out the API
// timeout.
func TestPodBindingServesStalePodsWhileTheAPIServerIsKilled(t *testing.T) {
	env, ns := outageEnv(t)
	ctx := context.Background()
	require.NoError(t, kubelet.RegisterNode(ctx, env.Kube, "node-a"))
	clock := testingclock.NewFakeClock(time.Now())
	reg := prometheus.NewRegistry()
	breaker := newBreaker(t, env.Kube, clock, reg)
	r := newReviewer(t, env.Kube, clock, func(o *kube.ReviewerOptions) { o.Breaker = breaker })
	b, err := kube.NewPodBinding(kube.PodBindingOptions{
		Client: env.Kube, NodeName: "node-a", CheckNode: true, CheckSource: true,
		PodTTL: 5 * time.Minute, OutageGrace: 5 * time.Minute, Breaker: breaker, Now: clock.Now,
	})
	require.NoError(t, err)
	src := netip.MustParseAddr("127.0.0.1")
	cached := podUser(t, env, r, ns, "cached", "node-a")
	uncached := podUser(t, env, r, ns, "uncached", "node-a")
	require.NoError(t, b.Check(ctx, cached, src))

	require.NoError(t, env.Kill())
	clock.Step(6 * time.Minute) // past the pod's TTL, within the grace
	start := time.Now()
	require.NoError(t, b.Check(ctx, cached, src), "a cached pod serves stale")
	require.Less(t, time.Since(start), kube.DefaultProbeInterval)
	require.Eventually(t, func() bool {
		return b.Check(ctx, cached, src) == nil && staleServes(reg, "pod") > 0
	}, 10*time.Second, 20*time.Millisecond, "the refresh fails; the cached pod keeps serving, counted")
	// Pods never read fail closed; the failures open the breaker.
	require.Eventually(t, func() bool {
		return errors.Is(b.Check(ctx, uncached, src), kube.ErrUnavailable) && breaker.IsOpen()
	}, 10*time.Second, 20*time.Millisecond)

	clock.Step(5 * time.Minute) // past the grace
	start = time.Now()
	err = b.Check(ctx, cached, src)
	require.ErrorIs(t, err, kube.ErrUnavailable)
	require.ErrorContains(t, err, "pod: kubernetes API unavailable", "the refusal names what failed")
	require.Less(t, time.Since(start), kube.DefaultProbeInterval, "a refusal past the grace is fast")
}

// podToken runs a pod of ns's ServiceAccount builder on node, with IP
// 127.0.0.1, and returns a token bound to it, as kubelet mints them.
func podToken(t *testing.T, env *apiserver.Env, ns, name, node string) string {
	t.Helper()
	ctx := context.Background()
	pod, err := kubelet.RunPod(ctx, env.Kube, kubelet.Pod{Namespace: ns, Name: name, ServiceAccount: "builder"}, node, "127.0.0.1")
	require.NoError(t, err)
	tok, err := kubelet.MintToken(ctx, env.Kube, pod, audience, time.Hour)
	require.NoError(t, err)
	return tok.Token
}

// podUser is the user r reviews podToken's token as.
func podUser(t *testing.T, env *apiserver.Env, r *kube.Reviewer, ns, name, node string) kube.User {
	t.Helper()
	u, err := r.Authenticate(context.Background(), podToken(t, env, ns, name, node))
	require.NoError(t, err)
	return u
}

// createSecret creates a Secret of one password in ns.
func createSecret(t *testing.T, env *apiserver.Env, ns, name string) {
	t.Helper()
	_, err := env.Kube.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		StringData: map[string]string{"password": "x"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// apiFault answers the GETs a test selects, without reaching the API
// server, with an error status while code is set.
type apiFault struct {
	code  atomic.Int32
	reads atomic.Int64
}

func (f *apiFault) config(cfg *rest.Config, selects func(*http.Request) bool) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodGet || !selects(r) {
				return rt.RoundTrip(r)
			}
			f.reads.Add(1)
			code := int(f.code.Load())
			if code == 0 {
				return rt.RoundTrip(r)
			}
			reason := map[int]metav1.StatusReason{
				http.StatusForbidden:          metav1.StatusReasonForbidden,
				http.StatusNotFound:           metav1.StatusReasonNotFound,
				http.StatusServiceUnavailable: metav1.StatusReasonServiceUnavailable,
			}[code]
			body, err := json.Marshal(metav1.Status{
				TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status:   metav1.StatusFailure, Code: int32(code), Reason: reason, //nolint:gosec // an HTTP status
				// What a restarted API server answers before its RBAC
				// informers have the node's ClusterRole.
				Message: `the node cannot get this object: RBAC: clusterrole.rbac.authorization.k8s.io "connectors-node" not found`,
			})
			if err != nil {
				return nil, err
			}
			return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
		})
	}
	return c
}

// TestRefusedReadsRightAfterAnOutageServeTheCache pins the recovery window:
// before it, a Secret read that a restarted API server answered 403 while
// its RBAC loaded ("clusterrole ... not found") dropped the cached Secret
// and failed the request with a 500. For a short window after the API was
// last found unavailable, a 403 or 404 on the node's own reads (Secrets,
// pods) is ErrUnavailable, and the cached object keeps serving; after the
// window a 404 is a deletion again and a 403 a refusal.
func TestRefusedReadsRightAfterAnOutageServeTheCache(t *testing.T) {
	env := apiserver.Shared(t)
	ctx := context.Background()
	ns := env.Namespace(t, "recovery")
	env.ServiceAccount(t, ns, "builder")
	createSecret(t, env, ns, "kept")
	require.NoError(t, kubelet.RegisterNode(ctx, env.Kube, "node-a"))
	plain := newReviewer(t, env.Kube, testingclock.NewFakeClock(time.Now()))
	cachedPod := podUser(t, env, plain, ns, "cached", "node-a")
	otherPod := podUser(t, env, plain, ns, "other", "node-a")

	var fault apiFault
	cfg := fault.config(env.Config, func(r *http.Request) bool {
		return strings.Contains(r.URL.Path, "/namespaces/"+ns+"/")
	})
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	clock := testingclock.NewFakeClock(time.Now())
	reg := prometheus.NewRegistry()
	// A high threshold: this test is about the window, not the breaker.
	breaker, err := kube.NewBreaker(kube.BreakerOptions{Probe: kube.ProbeVersion(cs), Threshold: 100, Now: clock.Now, Registerer: reg})
	require.NoError(t, err)
	cache, err := kube.NewCache(kube.CacheOptions{Config: cfg, SecretTTL: 10 * time.Second, Breaker: breaker, Now: clock.Now})
	require.NoError(t, err)
	binding, err := kube.NewPodBinding(kube.PodBindingOptions{Client: cs, CheckSource: true, PodTTL: 10 * time.Second, Breaker: breaker, Now: clock.Now})
	require.NoError(t, err)
	src := netip.MustParseAddr("127.0.0.1")
	cached := map[string]func() error{
		"secret": func() error { _, err := cache.Secret(ctx, ns, "kept"); return err },
		"pod":    func() error { return binding.Check(ctx, cachedPod, src) },
	}
	uncached := map[string]func() error{
		"secret": func() error { _, err := cache.Secret(ctx, ns, "never-read"); return err },
		"pod":    func() error { return binding.Check(ctx, otherPod, src) },
	}
	for kind, read := range cached {
		require.NoError(t, read(), kind)
	}
	// refreshed waits until a read of kind past its TTL has gone to the
	// API and come back, then checks that the cached object still serves.
	refreshed := func(kind string) {
		t.Helper()
		before := fault.reads.Load()
		require.NoError(t, cached[kind](), kind)
		require.Eventually(t, func() bool { return fault.reads.Load() > before }, 10*time.Second, 10*time.Millisecond, kind)
		require.Never(t, func() bool { return cached[kind]() != nil }, 300*time.Millisecond, 20*time.Millisecond, "%s: the cached object keeps serving", kind)
	}

	// The API server goes away: the refreshes fail, the cache serves.
	fault.code.Store(http.StatusServiceUnavailable)
	clock.Step(11 * time.Second)
	for kind := range cached {
		refreshed(kind)
	}
	// It comes back refusing the node, then missing objects, for a while.
	for _, code := range []int{http.StatusForbidden, http.StatusNotFound} {
		fault.code.Store(int32(code)) //nolint:gosec // an HTTP status
		clock.Step(11 * time.Second)
		for kind := range cached {
			refreshed(kind)
			err := uncached[kind]()
			require.ErrorIs(t, err, kube.ErrUnavailable, "%s %d: a miss is unavailable, not an answer", kind, code)
			require.ErrorContains(t, err, "came back less than")
		}
	}

	// Past the window, a 403 is a refusal and a 404 a deletion.
	clock.Step(31 * time.Second)
	fault.code.Store(http.StatusForbidden)
	for kind, read := range uncached {
		err := read()
		require.Error(t, err, kind)
		require.NotErrorIs(t, err, kube.ErrUnavailable, kind)
	}
	fault.code.Store(http.StatusNotFound)
	require.Eventually(t, func() bool { return errors.Is(cached["secret"](), kube.ErrNotFound) }, 10*time.Second, 10*time.Millisecond,
		"a Secret found deleted is dropped")
	require.Eventually(t, func() bool {
		var be *kube.BindingError
		return errors.As(cached["pod"](), &be) && be.Binding == kube.BindingPod
	}, 10*time.Second, 10*time.Millisecond, "a pod found deleted ends its token")
}

// TestDeletedPodsTokenIsRefusedWithinSeconds pins the pod watch: before
// it, a deleted pod's token that had been reviewed was accepted until the
// review and pod caches expired (5 minutes), also from the pod's IP once
// another pod had it. The watch of this node's pods (a field selector), or
// of every pod for a central proxy, ends it within seconds, long before any
// TTL.
func TestDeletedPodsTokenIsRefusedWithinSeconds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		watchNode string // "" watches every pod
		podNode   string
	}{
		{"this node's pods", "node-a", "node-a"},
		{"every pod, for a central proxy", "", "node-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := apiserver.Shared(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ns := env.Namespace(t, "podwatch")
			env.ServiceAccount(t, ns, "builder")
			for _, n := range []string{"node-a", "node-b"} {
				require.NoError(t, kubelet.RegisterNode(ctx, env.Kube, n))
			}
			r := newReviewer(t, env.Kube, testingclock.NewFakeClock(time.Now()), func(o *kube.ReviewerOptions) { o.TokenTTL = time.Hour })
			b, err := kube.NewPodBinding(kube.PodBindingOptions{Client: env.Kube, NodeName: tc.podNode, CheckNode: tc.watchNode != "",
				CheckSource: true, PodTTL: time.Hour})
			require.NoError(t, err)
			var mu sync.Mutex
			var seen []string
			w, err := kube.NewPodWatch(kube.PodWatchOptions{Config: env.Config, NodeName: tc.watchNode, Deleted: func(p kube.PodRef) {
				r.ForgetPod(p.UID)
				b.ForgetPod(p)
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, p.Namespace+"/"+p.Name)
			}})
			require.NoError(t, err)
			w.Start(ctx)
			require.Eventually(t, w.Synced, 30*time.Second, 20*time.Millisecond)

			elsewhere, err := kubelet.RunPod(ctx, env.Kube, kubelet.Pod{Namespace: ns, Name: "elsewhere", ServiceAccount: "builder"}, "node-c", "127.0.0.9")
			require.NoError(t, err)
			token := podToken(t, env, ns, "app", tc.podNode)
			user, err := r.Authenticate(ctx, token)
			require.NoError(t, err)
			src := netip.MustParseAddr("127.0.0.1")
			require.NoError(t, b.Check(ctx, user, src))

			require.NoError(t, env.Kube.CoreV1().Pods(ns).Delete(ctx, elsewhere.Name, *zeroGrace()))
			require.NoError(t, env.Kube.CoreV1().Pods(ns).Delete(ctx, "app", *zeroGrace()))
			deleted := time.Now()
			require.Eventually(t, func() bool {
				_, err := r.Authenticate(ctx, token)
				return errors.Is(err, kube.ErrUnauthenticated)
			}, 5*time.Second, 10*time.Millisecond, "the deleted pod's token is refused within seconds")
			t.Logf("refused %s after the deletion", time.Since(deleted).Round(time.Millisecond))
			_, err = r.Authenticate(ctx, token)
			require.ErrorContains(t, err, "pod app was deleted")

			// Another pod takes the name and the IP: the old token stays refused.
			_, err = kubelet.RunPod(ctx, env.Kube, kubelet.Pod{Namespace: ns, Name: "app", ServiceAccount: "builder"}, tc.podNode, "127.0.0.1")
			require.NoError(t, err)
			_, err = r.Authenticate(ctx, token)
			require.ErrorIs(t, err, kube.ErrUnauthenticated)
			var be *kube.BindingError
			require.ErrorAs(t, b.Check(ctx, user, src), &be, "the binding read the pod again")

			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, tc.watchNode == "", slices.Contains(seen, ns+"/elsewhere"),
				"the watch of a node sees only that node's pods (kubelet's scope): %v", seen)
		})
	}
}

// reviewFault answers TokenReviews and SubjectAccessReviews without
// reaching the API server: unavailable (503), or with a refusal as a
// restarted API server gives before its RBAC and caches are loaded (not
// authenticated, not allowed), while mode is set.
type reviewFault struct{ mode atomic.Int32 }

const (
	reviewsPass = iota
	reviewsUnavailable
	reviewsRefused
)

func (f *reviewFault) config(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	// JSON both ways, so that the fault can read and answer the reviews.
	c.ContentType, c.AcceptContentTypes = "application/json", "application/json"
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			tokens := strings.HasSuffix(r.URL.Path, "/tokenreviews")
			if r.Method != http.MethodPost || !tokens && !strings.HasSuffix(r.URL.Path, "/subjectaccessreviews") {
				return rt.RoundTrip(r)
			}
			var (
				code = http.StatusCreated
				out  any
			)
			switch f.mode.Load() {
			case reviewsPass:
				return rt.RoundTrip(r)
			case reviewsUnavailable:
				code = http.StatusServiceUnavailable
				out = metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
					Code: int32(code), Reason: metav1.StatusReasonServiceUnavailable, Message: "starting"}
			default:
				body, err := io.ReadAll(r.Body)
				if err != nil {
					return nil, err
				}
				if tokens {
					var tr authenticationv1.TokenReview
					if err := json.Unmarshal(body, &tr); err != nil {
						return nil, err
					}
					tr.Status = authenticationv1.TokenReviewStatus{Authenticated: false}
					out = tr
				} else {
					var sar authorizationv1.SubjectAccessReview
					if err := json.Unmarshal(body, &sar); err != nil {
						return nil, err
					}
					sar.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: false}
					out = sar
				}
			}
			body, err := json.Marshal(out)
			if err != nil {
				return nil, err
			}
			return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
		})
	}
	return c
}

// TestRefusedReviewsRightAfterAnOutageServeTheCache pins the recovery
// window for reviews: before it, a SubjectAccessReview that a restarted API
// server answered "not allowed" while its RBAC loaded replaced the cached
// allow, and requests 2 s after the restart failed with 403 (the battery,
// killed for 5 minutes). Within the window after the API was last found
// unavailable, a token not authenticated or access not allowed is
// ErrUnavailable and the cached answers keep serving; after it a refusal
// stands, and an explicit denial always does.
func TestRefusedReviewsRightAfterAnOutageServeTheCache(t *testing.T) {
	env, ns := outageEnv(t)
	ctx := context.Background()
	require.NoError(t, kubelet.RegisterNode(ctx, env.Kube, "node-a"))
	var fault reviewFault
	cs, err := kubernetes.NewForConfig(fault.config(env.Config))
	require.NoError(t, err)
	clock := testingclock.NewFakeClock(time.Now())
	breaker, err := kube.NewBreaker(kube.BreakerOptions{Probe: kube.ProbeVersion(env.Kube), Threshold: 100, Now: clock.Now,
		Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	r := newReviewer(t, cs, clock, func(o *kube.ReviewerOptions) {
		o.TokenTTL, o.AllowTTL, o.Breaker = 10*time.Second, 10*time.Second, breaker
	})
	cachedToken, newToken := podToken(t, env, ns, "cached", "node-a"), podToken(t, env, ns, "new", "node-a")
	request := func(token string) error {
		u, err := r.Authenticate(ctx, token)
		if err != nil {
			return err
		}
		return r.Authorize(ctx, u, ns, "git")
	}
	require.NoError(t, request(cachedToken))

	// The API server goes away, then answers refusals while it loads.
	for _, mode := range []int32{reviewsUnavailable, reviewsRefused} {
		fault.mode.Store(mode)
		clock.Step(11 * time.Second)
		require.NoError(t, request(cachedToken), "mode %d: a refresh starts", mode)
		require.Never(t, func() bool { return request(cachedToken) != nil }, 300*time.Millisecond, 20*time.Millisecond,
			"mode %d: the cached token and decision keep serving", mode)
		err := request(newToken)
		require.ErrorIs(t, err, kube.ErrUnavailable, "mode %d: a miss is unavailable, not a refusal", mode)
		require.NotErrorIs(t, err, kube.ErrUnauthenticated)
	}

	// Past the window a refusal stands: a new token is not authenticated,
	// and the refreshed cached one ends.
	clock.Step(31 * time.Second)
	require.ErrorIs(t, request(newToken), kube.ErrUnauthenticated)
	require.Eventually(t, func() bool { return errors.Is(request(cachedToken), kube.ErrUnauthenticated) }, 10*time.Second, 10*time.Millisecond,
		"a refusal past the window replaces the cached review")
}
