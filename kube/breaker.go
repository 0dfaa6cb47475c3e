package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Defaults of BreakerOptions and of the outage grace.
const (
	DefaultBreakerThreshold = 3
	DefaultProbeInterval    = time.Second
	DefaultProbeTimeout     = time.Second
	// DefaultRecoveryWindow is how long after the API server was last found
	// unavailable a refusal of the node's own reads is taken for an API
	// server still loading its RBAC and caches.
	DefaultRecoveryWindow = 30 * time.Second
	// DefaultOutageGrace is how long past its TTL a cached allow decision,
	// token review, pod or Secret keeps serving while the API is
	// unavailable. An answer refreshed just before an outage lasts at
	// least this long into it, so a five-minute outage, plus the minutes
	// an API server may take to come back, costs cached traffic nothing.
	DefaultOutageGrace = 10 * time.Minute
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
	// RecoveryWindow is how long after the API server was last found
	// unavailable (a failed call, or a failed watch reported with
	// Disrupted) a 401, 403 or 404 answering the node's own read of a pod or
	// a Secret is ErrUnavailable rather than a refusal or a deletion: a
	// restarted API server answers before its RBAC and caches are loaded.
	// Default 30s.
	RecoveryWindow time.Duration
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
	// troubleAt is when the API server was last found unavailable.
	troubleAt time.Time

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
	if opts.RecoveryWindow <= 0 {
		opts.RecoveryWindow = DefaultRecoveryWindow
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
// an error wrapping ErrUnavailable, counted as a fast failure, and, when one
// is due, starts a probe in the background.
func (b *Breaker) Allow() error {
	if b.closed() {
		return nil
	}
	b.fastFails.Inc()
	return errBreakerOpen
}

// closed reports whether calls may go to the API server. While the breaker
// is open it starts a probe in the background when one is due.
func (b *Breaker) closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true
	}
	b.startProbeLocked()
	return false
}

// IsOpen reports whether the API server is known unreachable.
func (b *Breaker) IsOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// Record notes the result of one API call: err is the call's error after
// classify. An answer of any kind (even an error status, also one that is
// ErrUnavailable to the caller, such as a review the node may not make)
// closes the breaker; a call that got no answer counts toward opening it.
func (b *Breaker) Record(err error) {
	now := b.opts.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var answered *answeredError
	if !errors.Is(err, ErrUnavailable) || errors.As(err, &answered) {
		b.failures = 0
		b.setOpenLocked(false)
		return
	}
	b.troubleAt = now
	b.failures++
	if b.failures >= b.opts.Threshold || errors.Is(err, context.DeadlineExceeded) {
		b.setOpenLocked(true)
	}
}

// Disrupted notes that the API server was found unavailable by something
// other than a call (a watch that failed). It opens the recovery window
// without counting toward opening the breaker.
func (b *Breaker) Disrupted() {
	now := b.opts.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.troubleAt = now
}

// recovering reports whether the API server was found unavailable less
// than RecoveryWindow ago.
func (b *Breaker) recovering() bool {
	now := b.opts.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.troubleAt.IsZero() && now.Sub(b.troubleAt) < b.opts.RecoveryWindow
}

// classifyRead is classify for the node's own read of one named object (a
// pod, a Secret). Within the recovery window a 401, 403 or 404 is
// ErrUnavailable: a restarted API server refuses the node (its RBAC is not
// loaded yet: "clusterrole ... not found") or misses objects before its
// caches fill, and the cached object must keep serving. Outside the window
// it is what it says: a refusal, or a deletion.
func (b *Breaker) classifyRead(err error) error {
	if (apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)) && b.recovering() {
		return &answeredError{
			why: fmt.Sprintf("the API server came back less than %s ago and may still be loading its RBAC and caches", b.opts.RecoveryWindow),
			err: err,
		}
	}
	return Classify(err)
}

// doubtRefusal is classifyRead for a review the API server answered with
// a refusal (a token not authenticated, access not allowed): within the
// recovery window it is ErrUnavailable, since a restarted API server
// refuses everyone until its RBAC and caches are loaded, and the cached
// answer must keep serving. Outside the window it is nil: the refusal
// stands.
func (b *Breaker) doubtRefusal(refusal string) error {
	if !b.recovering() {
		return nil
	}
	return &answeredError{
		why: fmt.Sprintf("the API server came back less than %s ago and may still be loading its RBAC and caches", b.opts.RecoveryWindow),
		err: errors.New(refusal),
	}
}

// answeredError is an answer of the API server that is ErrUnavailable to
// the caller (the node may not review yet; a read refused while the API
// server recovers). The breaker counts it as an answer: the API server is
// up.
type answeredError struct {
	why string
	err error
}

func (e *answeredError) Error() string {
	return ErrUnavailable.Error() + ": " + e.why + ": " + e.err.Error()
}

// Unwrap makes errors.Is(err, ErrUnavailable) true and keeps the API
// status reachable.
func (e *answeredError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// Stale counts one answer of kind served past its TTL because the API
// server was unavailable.
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
			err = Classify(err)
		}
		b.Record(err)
		b.mu.Lock()
		b.probing = false
		b.mu.Unlock()
	}()
}
