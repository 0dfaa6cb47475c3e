package kube_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/apitest"
)

// counterValue reads one sample of a counter or gauge from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
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

func newBreaker(t *testing.T, cs kubernetes.Interface, clock *testingclock.FakeClock, reg prometheus.Registerer) *kube.Breaker {
	t.Helper()
	b, err := kube.NewBreaker(kube.BreakerOptions{Probe: kube.ProbeVersion(cs), Now: clock.Now, Registerer: reg})
	require.NoError(t, err)
	return b
}

// outageEnv is an API server of the test's own (outages would disturb the
// shared one) with a ServiceAccount allowed to get the Connector "git".
func outageEnv(t *testing.T) (*apitest.Env, string) {
	env := apitest.Start(t, apitest.Options{})
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
	require.Positive(t, counterValue(t, reg, "connectors_api_stale_serves_total", map[string]string{"kind": "token"}))
	require.Positive(t, counterValue(t, reg, "connectors_api_stale_serves_total", map[string]string{"kind": "access"}))

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
	require.EqualValues(t, 1, counterValue(t, reg, "connectors_api_breaker_open", nil))
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
	require.Positive(t, counterValue(t, reg, "connectors_api_fast_failures_total", nil))

	clock.Step(6 * time.Minute) // the cached token is past its TTL, within the grace
	_, err = r.Authenticate(waitCtx, cached)
	require.NoError(t, err, "a cached token serves stale at once")

	require.NoError(t, env.Resume())
	require.Eventually(t, func() bool {
		clock.Step(time.Second)
		_, err := r.Authenticate(ctx, second)
		return err == nil
	}, time.Minute, 100*time.Millisecond)
	require.EqualValues(t, 0, counterValue(t, reg, "connectors_api_breaker_open", nil))
}

// TestReviewWithoutPermissionIsUnavailable pins that a TokenReview the node
// may not make (403, as while a restarted API server's RBAC warms up) is
// ErrUnavailable (503), not an error the proxy answers 500 for.
func TestReviewWithoutPermissionIsUnavailable(t *testing.T) {
	env := apitest.Shared(t)
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
		_, err := env.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			StringData: map[string]string{"password": "x"},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
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
	_, err = c.Secret(ctx, ns, "deleted")
	require.ErrorIs(t, err, kube.ErrNotFound, "the refresh sees the deletion")

	require.NoError(t, env.Kill())
	clock.Step(time.Minute)
	s, err := c.Secret(ctx, ns, "kept")
	require.NoError(t, err, "a cached Secret serves stale")
	require.Equal(t, "kept", s.Name)
	require.Positive(t, counterValue(t, reg, "connectors_api_stale_serves_total", map[string]string{"kind": "secret"}))
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
	env := apitest.Shared(t)
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
