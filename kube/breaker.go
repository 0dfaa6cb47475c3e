package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Defaults of BreakerOptions and of the outage grace.
const (
	DefaultBreakerThreshold = 3
	DefaultProbeInterval    = time.Second
	DefaultProbeTimeout     = time.Second
	// DefaultOutageGrace is how long past its TTL a cached allow decision,
	// token review or Secret keeps serving while the API is unavailable.
	DefaultOutageGrace = 5 * time.Minute
)

// errBreakerOpen is the error of a call refused while the breaker is open.
var errBreakerOpen = fmt.Errorf("%w: not answering, calls fail fast until a probe succeeds", ErrUnavailable)

// BreakerOptions configure NewBreaker. Zero values take the defaults.
type BreakerOptions struct {
	// Probe checks that the API server answers; any answer that is not
	// ErrUnavailable (after classify) counts as up. Required.
	Probe func(ctx context.Context) error
	// Threshold is how many API calls in a row must fail as unavailable to
	// open the breaker. A call that timed out opens it at once: a hung API
	// server is the case the breaker exists for. Default 3.
	Threshold int
	// ProbeInterval is the least time between two probes while the breaker
	// is open. Default 1s.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe. Default 1s.
	ProbeTimeout time.Duration
	// Registerer registers the breaker's metrics. Default: not registered.
	Registerer prometheus.Registerer
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Breaker tracks whether the API server answers. Once it is known to be
// unreachable, calls that have no cached answer fail fast with
// ErrUnavailable instead of waiting for their timeout, and a short probe,
// started by the calls that arrive, closes the breaker again when the API
// server is back. It also counts the answers served stale during an outage.
// It is safe for concurrent use; one Breaker may be shared by every client of
// one API server.
type Breaker struct {
	opts BreakerOptions

	mu        sync.Mutex
	failures  int
	open      bool
	probing   bool
	lastProbe time.Time

	openGauge prometheus.Gauge
	fastFails prometheus.Counter
	stale     *prometheus.CounterVec
}

// NewBreaker builds a closed Breaker.
func NewBreaker(opts BreakerOptions) (*Breaker, error) {
	if opts.Probe == nil {
		return nil, errors.New("breaker: Probe is required")
	}
	if opts.Threshold <= 0 {
		opts.Threshold = DefaultBreakerThreshold
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = DefaultProbeTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &Breaker{
		opts: opts,
		openGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connectors_api_breaker_open",
			Help: "1 while the Kubernetes API is known unreachable and uncached calls fail fast.",
		}),
		fastFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connectors_api_fast_failures_total",
			Help: "Calls refused at once because the Kubernetes API was known unreachable.",
		}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_api_stale_serves_total",
			Help: "Cached answers served past their TTL because the Kubernetes API was unavailable.",
		}, []string{"kind"}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{b.openGauge, b.fastFails, b.stale} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("breaker: registering metrics: %w", err)
			}
		}
	}
	return b, nil
}

// ProbeVersion is a Probe that asks the API server for its version.
func ProbeVersion(client kubernetes.Interface) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
		return err
	}
}

// defaultBreaker is the Breaker of a Reviewer or Cache built without one.
func defaultBreaker(client kubernetes.Interface, now func() time.Time) *Breaker {
	probe := ProbeVersion(client)
	if rc, ok := client.Discovery().RESTClient().(*rest.RESTClient); !ok || rc == nil {
		// A fake clientset has no REST client; its discovery still answers.
		probe = func(context.Context) error {
			_, err := client.Discovery().ServerVersion()
			return err
		}
	}
	b, _ := NewBreaker(BreakerOptions{Probe: probe, Now: now}) // cannot fail: Probe is set, nothing registered
	return b
}

// Allow returns nil while the breaker is closed. While it is open it returns
// an error wrapping ErrUnavailable and, when one is due, starts a probe in
// the background.
func (b *Breaker) Allow() error {
	b.mu.Lock()
	if !b.open {
		b.mu.Unlock()
		return nil
	}
	b.startProbeLocked()
	b.mu.Unlock()
	b.fastFails.Inc()
	return errBreakerOpen
}

// IsOpen reports whether the API server is known unreachable.
func (b *Breaker) IsOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// Record notes the result of one API call: err is the call's error after
// classify. An answer of any kind (even an error status) closes the breaker;
// ErrUnavailable counts toward opening it.
func (b *Breaker) Record(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !errors.Is(err, ErrUnavailable) {
		b.failures = 0
		b.setOpenLocked(false)
		return
	}
	b.failures++
	if b.failures >= b.opts.Threshold || errors.Is(err, context.DeadlineExceeded) {
		b.setOpenLocked(true)
	}
}

// Stale counts one answer of kind served past its TTL.
func (b *Breaker) Stale(kind string) { b.stale.WithLabelValues(kind).Inc() }

func (b *Breaker) setOpenLocked(open bool) {
	if b.open == open {
		return
	}
	b.open = open
	if open {
		// The first probe waits one interval: the call that opened the
		// breaker has just seen the API fail.
		b.lastProbe = b.opts.Now()
		b.openGauge.Set(1)
	} else {
		b.openGauge.Set(0)
	}
}

func (b *Breaker) startProbeLocked() {
	now := b.opts.Now()
	if b.probing || now.Sub(b.lastProbe) < b.opts.ProbeInterval {
		return
	}
	b.probing = true
	b.lastProbe = now
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.ProbeTimeout)
		defer cancel()
		err := b.opts.Probe(ctx)
		if err != nil {
			err = classify(err)
		}
		b.Record(err)
		b.mu.Lock()
		b.probing = false
		b.mu.Unlock()
	}()
}
