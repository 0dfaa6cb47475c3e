package proxy

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connectors-node/connectors-node/kube/ca"
)

// metrics are the proxy's Prometheus collectors.
type metrics struct {
	requests   *prometheus.CounterVec
	upstream   *prometheus.HistogramVec
	bytes      *prometheus.CounterVec
	leaves     prometheus.Gauge
	leafIssued prometheus.Counter
	tunnels    prometheus.Gauge
	// connsOpen, connsRefused and connsClosed count client connections
	// against the ServerOptions limits; the reason label is one of the
	// reason constants in limit.go.
	connsOpen    prometheus.Gauge
	connsRefused *prometheus.CounterVec
	connsClosed  *prometheus.CounterVec
	// requestSeries and byteSeries keep the resolved series of requests
	// and bytes: resolving labels costs more than the increment.
	requestSeries  memo[requestLabels, prometheus.Counter]
	byteSeries     memo[byteLabels, prometheus.Counter]
	upstreamByMode memo[string, prometheus.Observer]
}

type requestLabels struct {
	mode      string
	status    int
	connector string
}

type byteLabels struct{ mode, direction string }

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_proxy_requests_total",
			Help: "Proxied requests by mode, status and connector (ns/name).",
		}, []string{"mode", "status", "connector"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connectors_proxy_upstream_duration_seconds",
			Help:    "Time from sending a request upstream to its response headers.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"mode"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_proxy_bytes_total",
			Help: "Body bytes proxied, by mode and direction (request or response).",
		}, []string{"mode", "direction"}),
		leaves: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connectors_proxy_leaf_cache_size",
			Help: "Leaf certificates held in the cache.",
		}),
		leafIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connectors_proxy_leaf_certificates_issued_total",
			Help: "Leaf certificates signed by the proxy CA.",
		}),
		tunnels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connectors_proxy_tunnels_open",
			Help: "CONNECT tunnels currently open.",
		}),
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connectors_proxy_connections_open",
			Help: "Client connections currently open, tunnels included.",
		}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_proxy_connections_refused_total",
			Help: "Client connections answered 503 and closed, by the limit that refused them: total, source or unauthenticated.",
		}, []string{"reason"}),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_proxy_connections_closed_total",
			Help: "Idle client connections the proxy closed early: evicted (to admit a lighter source at the connection limit) or unauthenticated_idle.",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonTotal, reasonSource, reasonUnauthenticated} {
		m.connsRefused.WithLabelValues(r)
	}
	for _, r := range []string{reasonEvicted, reasonUnauthenticatedIdle} {
		m.connsClosed.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.upstream, m.bytes, m.leaves, m.leafIssued, m.tunnels, m.connsOpen, m.connsRefused, m.connsClosed)
	}
	return m
}

func (m *metrics) observe(e *entry, in, out int64) {
	rl := requestLabels{mode: e.mode, status: e.status, connector: e.connector}
	c, ok := m.requestSeries.load(rl)
	if !ok {
		c = m.requests.WithLabelValues(e.mode, strconv.Itoa(e.status), e.connector)
		m.requestSeries.store(rl, c)
	}
	c.Inc()
	if in > 0 {
		m.byteCounter(e.mode, "request").Add(float64(in))
	}
	if out > 0 {
		m.byteCounter(e.mode, "response").Add(float64(out))
	}
}

func (m *metrics) upstreamSeries(mode string) prometheus.Observer {
	o, ok := m.upstreamByMode.load(mode)
	if !ok {
		o = m.upstream.WithLabelValues(mode)
		m.upstreamByMode.store(mode, o)
	}
	return o
}

func (m *metrics) byteCounter(mode, direction string) prometheus.Counter {
	bl := byteLabels{mode: mode, direction: direction}
	c, ok := m.byteSeries.load(bl)
	if !ok {
		c = m.bytes.WithLabelValues(mode, direction)
		m.byteSeries.store(bl, c)
	}
	return c
}

// caExpiryGauge reports when the CA that signs leaves now expires, for the
// alert on a CA near its end.
func caExpiryGauge(signing func() *ca.CA) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "connectors_proxy_ca_expiry_timestamp_seconds",
		Help: "Expiry (notAfter, Unix seconds) of the CA certificate that signs the proxy's leaf certificates now.",
	}, func() float64 {
		authority := signing()
		if authority == nil || authority.Cert == nil {
			return 0
		}
		return float64(authority.Cert.NotAfter.Unix())
	})
}

// pendingGauge reports the audit bytes waiting for a write; requests wait
// once it reaches maxAuditPending. Without an audit log it is always 0.
func (a *auditLog) pendingGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "connectors_proxy_audit_pending_bytes",
		Help: "Audit log bytes waiting to be written; at 1 MiB requests wait for the write in progress.",
	}, func() float64 {
		if a == nil {
			return 0
		}
		return float64(a.out.pendingBytes())
	})
}
