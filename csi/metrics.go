package csi

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// metrics are the plugin's Prometheus collectors.
type metrics struct {
	calls             *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	republishFailures prometheus.Counter
}

// newMetrics builds the collectors and registers them with reg when it is
// not nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_csi_calls_total",
			Help: "CSI calls by method and gRPC code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connectors_csi_call_duration_seconds",
			Help:    "Duration of CSI calls by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"method"}),
		republishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connectors_csi_republish_failures_total",
			Help: "Republishes that failed and kept the volume's previous files.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration, m.republishFailures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering csi metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(method string, code codes.Code, d time.Duration) {
	m.calls.WithLabelValues(method, code.String()).Inc()
	m.duration.WithLabelValues(method).Observe(d.Seconds())
}
