package kube_test

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
)

var fullBattery = flag.Bool("outage.full", false,
	"run the outage battery at the DaemonSet's settings: the default TTLs and grace, and outages of 300 s (minutes of wall time)")

// batteryProfile is the settings of one run of the outage battery.
type batteryProfile struct {
	tokenTTL, allowTTL, secretTTL, podTTL time.Duration
	grace, apiTimeout                     time.Duration
	// outages are the lengths of the outages, each run with the API server
	// hung (SIGSTOP) and killed.
	outages []time.Duration
}

func (p batteryProfile) maxTTL() time.Duration {
	return max(p.tokenTTL, p.allowTTL, p.secretTTL, p.podTTL)
}

// batteryProfiles: short settings for the test suite (outages just under
// and past the grace), or with -outage.full the DaemonSet's, and the
// battery's five-minute outage.
func batteryProfiles() batteryProfile {
	if *fullBattery {
		return batteryProfile{
			tokenTTL: 5 * time.Minute, allowTTL: 30 * time.Second, secretTTL: 10 * time.Second, podTTL: 5 * time.Minute,
			grace: kube.DefaultOutageGrace, apiTimeout: 10 * time.Second,
			outages: []time.Duration{300 * time.Second},
		}
	}
	p := batteryProfile{
		tokenTTL: time.Second, allowTTL: time.Second, secretTTL: time.Second, podTTL: time.Second,
		grace: 6 * time.Second, apiTimeout: 2 * time.Second,
	}
	p.outages = []time.Duration{p.grace - 2*time.Second, p.grace + p.maxTTL() + 3*time.Second}
	return p
}

// sample is what one request of the battery saw.
type sample struct {
	at   time.Duration // since the outage began
	took time.Duration
	err  error
}

// TestCachedTrafficRidesOutTheOutageBattery runs the reliability battery
// against a real API server, hung (SIGSTOP) and killed, for just under and
// for longer than the outage grace. One request is what the proxy asks for
// a cached caller: its token review, its pod (the binding), its access
// decision and the Connector's Secret. It counts as the battery does: no
// request waits longer than the breaker's probe interval; inside the grace
// none fails; past the grace (and its TTL) every one is refused, at once,
// naming the cause. Before the fix the pod reads had no grace (the battery
// broke at 278 s of a 300 s outage) and expired answers waited out the API
// timeout.
func TestCachedTrafficRidesOutTheOutageBattery(t *testing.T) {
	p := batteryProfiles()
	env, ns := outageEnv(t)
	ctx := context.Background()
	createSecret(t, env, ns, "git-auth")
	require.NoError(t, kubelet.RegisterNode(ctx, env.Kube, "node-a"))
	token := podToken(t, env, ns, "app", "node-a")

	breaker, err := kube.NewBreaker(kube.BreakerOptions{Probe: kube.ProbeVersion(env.Kube)})
	require.NoError(t, err)
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{Client: env.Kube, Audience: audience,
		TokenTTL: p.tokenTTL, AllowTTL: p.allowTTL, APITimeout: p.apiTimeout, OutageGrace: p.grace, Breaker: breaker})
	require.NoError(t, err)
	binding, err := kube.NewPodBinding(kube.PodBindingOptions{Client: env.Kube, NodeName: "node-a", CheckNode: true, CheckSource: true,
		PodTTL: p.podTTL, APITimeout: p.apiTimeout, OutageGrace: p.grace, Breaker: breaker})
	require.NoError(t, err)
	cache, err := kube.NewCache(kube.CacheOptions{Config: env.Config, SecretTTL: p.secretTTL, APITimeout: p.apiTimeout,
		OutageGrace: p.grace, Breaker: breaker})
	require.NoError(t, err)
	src := netip.MustParseAddr("127.0.0.1")
	request := func(ctx context.Context) error {
		user, err := reviewer.Authenticate(ctx, token)
		if err != nil {
			return err
		}
		if err := binding.Check(ctx, user, src); err != nil {
			return err
		}
		if err := reviewer.Authorize(ctx, user, ns, "git"); err != nil {
			return err
		}
		_, err = cache.Secret(ctx, ns, "git-auth")
		return err
	}

	type outage struct {
		name        string
		stop, start func() error
	}
	hung := outage{"hung", env.Pause, env.Resume}
	killed := outage{"killed", env.Kill, func() error {
		restartCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return env.Restart(restartCtx)
	}}
	t.Cleanup(func() { _ = env.Resume() })
	for _, o := range []outage{hung, killed} {
		for _, length := range p.outages {
			t.Run(fmt.Sprintf("%s for %s, grace %s", o.name, length, p.grace), func(t *testing.T) {
				// Traffic before the outage keeps every answer fresh.
				require.Eventually(t, func() bool { return request(ctx) == nil }, 2*time.Minute, 100*time.Millisecond)
				stopTraffic := runTraffic(request)
				time.Sleep(p.maxTTL() + 500*time.Millisecond)
				began := time.Now()
				require.NoError(t, o.stop())
				time.Sleep(length)
				restored := time.Since(began)
				require.NoError(t, o.start())
				require.Eventually(t, func() bool { return request(ctx) == nil }, 2*time.Minute, 100*time.Millisecond,
					"requests succeed again once the API server is back")
				checkBattery(t, p, stopTraffic(began), restored)
			})
		}
	}
}

// runTraffic sends requests one after another, 20 ms apart, until the
// returned function is called; that returns what each saw, timed from
// began.
func runTraffic(request func(context.Context) error) (stop func(began time.Time) []sample) {
	type timed struct {
		start time.Time
		took  time.Duration
		err   error
	}
	var (
		mu   sync.Mutex
		seen []timed
	)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			// A deadline far past the API timeout: a request that waits
			// shows as slow, not as failed.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			start := time.Now()
			err := request(ctx)
			cancel()
			mu.Lock()
			seen = append(seen, timed{start, time.Since(start), err})
			mu.Unlock()
		}
	}()
	return func(began time.Time) []sample {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		out := make([]sample, 0, len(seen))
		for _, s := range seen {
			out = append(out, sample{at: s.start.Sub(began), took: s.took, err: s.err})
		}
		return out
	}
}

// checkBattery applies the battery's counts to the samples of one outage,
// whose end (a resume or a restart) began restored after it began. Until
// then no request may wait; after it, a request the cache cannot answer
// waits on the API server that is coming back, as a miss does.
func checkBattery(t *testing.T, p batteryProfile, samples []sample, restored time.Duration) {
	t.Helper()
	// The last refresh before the outage may have answered up to its
	// latency after its TTL ran out: the grace is counted from then.
	inside := p.grace - time.Second
	past := p.grace + p.maxTTL() + time.Second
	var served, refused int
	var slowest time.Duration
	for _, s := range samples {
		down := s.at < restored
		if down {
			slowest = max(slowest, s.took)
			require.Less(t, s.took, kube.DefaultProbeInterval, "a request %s into the outage waited %s", s.at, s.took)
		}
		if s.err == nil {
			served++
			require.False(t, s.at > past && down,
				"a request %s into the outage, past the %s grace, was served from the cache", s.at, p.grace)
			continue
		}
		refused++
		require.GreaterOrEqual(t, s.at, inside, "a request %s into the outage, inside the %s grace, failed: %v", s.at, p.grace, s.err)
		if down {
			require.ErrorIs(t, s.err, kube.ErrUnavailable)
			require.ErrorContains(t, s.err, kube.ErrUnavailable.Error()+": ", "the refusal names its cause")
		}
	}
	require.Positive(t, served)
	t.Logf("outage of %s: %d requests, %d served, %d refused, slowest while down %s",
		restored.Round(time.Millisecond), len(samples), served, refused, slowest.Round(time.Millisecond))
}
