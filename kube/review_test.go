package kube_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

const audience = "connectors-proxy"

// reviewCalls counts TokenReview and SubjectAccessReview requests at the transport.
type reviewCalls struct{ tokens, access atomic.Int64 }

func (c *reviewCalls) client(t *testing.T, env *apiserver.Env) kubernetes.Interface {
	cfg := apiserver.CountingConfig(env.Config, func(r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/tokenreviews"):
			c.tokens.Add(1)
		case strings.HasSuffix(r.URL.Path, "/subjectaccessreviews"):
			c.access.Add(1)
		}
	})
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return cs
}

func newReviewer(t *testing.T, cs kubernetes.Interface, clock *testingclock.FakeClock, mutate ...func(*kube.ReviewerOptions)) *kube.Reviewer {
	opts := kube.ReviewerOptions{Client: cs, Audience: audience, Now: clock.Now}
	for _, m := range mutate {
		m(&opts)
	}
	r, err := kube.NewReviewer(opts)
	require.NoError(t, err)
	return r
}

func TestAuthenticate(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "authn")
	env.ServiceAccount(t, ns, "builder")
	clock := testingclock.NewFakeClock(time.Now())
	r := newReviewer(t, env.Kube, clock)
	ctx := context.Background()

	good := env.Token(t, ns, "builder", []string{audience}, time.Hour)
	user, err := r.Authenticate(ctx, good)
	require.NoError(t, err)
	require.Equal(t, "system:serviceaccount:"+ns+":builder", user.Name)
	require.Contains(t, user.Groups, "system:serviceaccounts:"+ns)

	// A token re-signed by the test harness is accepted while it is valid, so
	// the "expired" case below is rejected for its expiry alone.
	_, err = r.Authenticate(ctx, env.ResignedToken(t, ns, "builder", []string{audience}, time.Now().Add(time.Hour)))
	require.NoError(t, err)

	rejected := map[string]string{
		"default audience": env.Token(t, ns, "builder", nil, time.Hour),
		"other audience":   env.Token(t, ns, "builder", []string{"vault"}, time.Hour),
		"expired":          env.ExpiredToken(t, ns, "builder", []string{audience}),
		"garbage":          "not-a-token",
		"empty":            "",
	}
	for name, token := range rejected {
		t.Run(name, func(t *testing.T) {
			_, err := r.Authenticate(ctx, token)
			require.ErrorIs(t, err, kube.ErrUnauthenticated)
			if token != "" {
				require.NotContains(t, err.Error(), token)
			}
		})
	}
}

func TestAuthenticateCachesUntilTokenExpiry(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "authn-ttl")
	env.ServiceAccount(t, ns, "builder")
	var calls reviewCalls
	clock := testingclock.NewFakeClock(time.Now())
	r := newReviewer(t, calls.client(t, env), clock, func(o *kube.ReviewerOptions) { o.TokenTTL = time.Hour })
	ctx := context.Background()

	token := env.Token(t, ns, "builder", []string{audience}, 10*time.Minute)
	for range 5 {
		_, err := r.Authenticate(ctx, token)
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, calls.tokens.Load())

	// Past the token's own expiry the cached answer is gone even though the
	// TTL (an hour) is not.
	clock.Step(11 * time.Minute)
	_, _ = r.Authenticate(ctx, token)
	require.EqualValues(t, 2, calls.tokens.Load())
}

func TestAuthenticateCollapsesConcurrentMisses(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "authn-burst")
	env.ServiceAccount(t, ns, "builder")
	var calls reviewCalls
	reg := prometheus.NewRegistry()
	metrics := kube.NewReviewMetrics(reg)
	r := newReviewer(t, calls.client(t, env), testingclock.NewFakeClock(time.Now()), func(o *kube.ReviewerOptions) { o.Metrics = metrics })
	token := env.Token(t, ns, "builder", []string{audience}, time.Hour)

	var wg sync.WaitGroup
	var failed atomic.Int32
	start := make(chan struct{})
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := r.Authenticate(context.Background(), token); err != nil {
				failed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	require.Zero(t, failed.Load())
	require.EqualValues(t, 1, calls.tokens.Load(), "100 concurrent reviews of one token make one TokenReview")

	n, err := testutil.GatherAndCount(reg, "connectors_auth_api_calls_total")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestAuthorize(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "authz")
	env.ServiceAccount(t, ns, "builder")
	var calls reviewCalls
	clock := testingclock.NewFakeClock(time.Now())
	r := newReviewer(t, calls.client(t, env), clock, func(o *kube.ReviewerOptions) {
		o.AllowTTL = time.Minute
		o.DenyTTL = 5 * time.Second
	})
	ctx := context.Background()
	user := kube.ServiceAccountUser(ns, "builder")

	err := r.Authorize(ctx, user, ns, "git")
	require.ErrorIs(t, err, kube.ErrForbidden)
	require.Contains(t, err.Error(), ns+"/git")
	require.Contains(t, err.Error(), "system:serviceaccount:"+ns+":builder")

	env.AllowConnectors(t, ns, ns, "builder")
	// The denial is cached for DenyTTL: still denied, without an API call.
	before := calls.access.Load()
	require.ErrorIs(t, r.Authorize(ctx, user, ns, "git"), kube.ErrForbidden)
	require.Equal(t, before, calls.access.Load())

	// After the TTL, the RoleBinding is honoured (RBAC propagates within moments).
	require.Eventually(t, func() bool {
		clock.Step(6 * time.Second)
		return r.Authorize(ctx, user, ns, "git") == nil
	}, 10*time.Second, 50*time.Millisecond)

	// Allowed answers are cached.
	before = calls.access.Load()
	for range 10 {
		require.NoError(t, r.Authorize(ctx, user, ns, "git"))
	}
	require.Equal(t, before, calls.access.Load())

	// Another namespace needs its own RBAC.
	other := env.Namespace(t, "authz-other")
	require.ErrorIs(t, r.Authorize(ctx, user, other, "git"), kube.ErrForbidden)
}

func TestAuthorizeProxySubresource(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "authz-proxy")
	env.ServiceAccount(t, ns, "builder")
	env.AllowConnectors(t, ns, ns, "builder")
	ctx := context.Background()
	user := kube.ServiceAccountUser(ns, "builder")

	clock := testingclock.NewFakeClock(time.Now())
	plain := newReviewer(t, env.Kube, clock)
	require.Eventually(t, func() bool {
		clock.Step(time.Minute)
		return plain.Authorize(ctx, user, ns, "git") == nil
	}, 10*time.Second, 50*time.Millisecond)

	strict := newReviewer(t, env.Kube, testingclock.NewFakeClock(time.Now()), func(o *kube.ReviewerOptions) { o.ProxyPermission = true })
	err := strict.Authorize(ctx, user, ns, "git")
	require.ErrorIs(t, err, kube.ErrForbidden)
	require.Contains(t, err.Error(), "connectors/proxy")
}

func TestReviewerFailsClosedWhenAPIServerIsDown(t *testing.T) {
	env := apiserver.Start(t, apiserver.Options{})
	ns := env.Namespace(t, "down")
	env.ServiceAccount(t, ns, "builder")
	env.AllowConnectors(t, ns, ns, "builder")
	clock := testingclock.NewFakeClock(time.Now())
	r := newReviewer(t, env.Kube, clock)
	ctx := context.Background()
	cached := env.Token(t, ns, "builder", []string{audience}, time.Hour)
	fresh := env.Token(t, ns, "builder", []string{audience}, time.Hour)
	user, err := r.Authenticate(ctx, cached)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return r.Authorize(ctx, user, ns, "git") == nil }, 10*time.Second, 50*time.Millisecond)

	require.NoError(t, env.Stop())

	// Cached decisions still answer.
	_, err = r.Authenticate(ctx, cached)
	require.NoError(t, err)
	require.NoError(t, r.Authorize(ctx, user, ns, "git"))

	// New ones fail closed with an error callers map to 503.
	shortCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = r.Authenticate(shortCtx, fresh)
	require.ErrorIs(t, err, kube.ErrUnavailable)
	require.NotErrorIs(t, err, kube.ErrUnauthenticated)
	err = r.Authorize(shortCtx, user, ns, "other")
	require.ErrorIs(t, err, kube.ErrUnavailable)
	require.NotErrorIs(t, err, kube.ErrForbidden)
}

func TestNewReviewerRejectsMissingFields(t *testing.T) {
	_, err := kube.NewReviewer(kube.ReviewerOptions{Audience: audience})
	require.ErrorContains(t, err, "Client")
	env := apiserver.Shared(t)
	_, err = kube.NewReviewer(kube.ReviewerOptions{Client: env.Kube})
	require.ErrorContains(t, err, "Audience")
}

// TestCallerGivingUpDoesNotFailOthers pins that a review shared by
// concurrent callers runs detached from the first caller's context: before,
// one client with a short deadline turned every waiting request into a 503.
func TestCallerGivingUpDoesNotFailOthers(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "authn-cancel")
	env.ServiceAccount(t, ns, "builder")
	token := env.Token(t, ns, "builder", []string{audience}, time.Hour)

	release := make(chan struct{})
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if strings.HasSuffix(r.URL.Path, "/tokenreviews") {
				<-release // hold the API call until both callers wait on it
			}
			return rt.RoundTrip(r)
		})
	}
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	r := newReviewer(t, cs, testingclock.NewFakeClock(time.Now()))

	impatient, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := r.Authenticate(impatient, token)
		first <- err
	}()
	second := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // join the call the first caller started
		_, err := r.Authenticate(context.Background(), token)
		second <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	require.ErrorIs(t, <-first, kube.ErrUnavailable, "the impatient caller gets its own cancellation")
	close(release)
	require.NoError(t, <-second, "the patient caller still gets the answer")
}
