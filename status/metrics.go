package status

import "github.com/prometheus/client_golang/prometheus"

// metrics of the status reconciler.
type metrics struct {
	leader     prometheus.Gauge
	reconciles *prometheus.CounterVec
	writes     *prometheus.CounterVec
	errors     *prometheus.CounterVec
	probes     *prometheus.CounterVec
	compiles   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connectors_status_leader",
			Help: "1 while this node holds the status lease and writes status, else 0.",
		}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_status_reconciles_total",
			Help: "Status reconciles by kind (connector, connectorclass) and result (ok, error).",
		}, []string{"kind", "result"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_status_writes_total",
			Help: "API writes by object (connector, connectorclass, service) and verb (patch, create, update, delete).",
		}, []string{"object", "verb"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_status_errors_total",
			Help: "Failed status operations by kind (conflict, write, read).",
		}, []string{"kind"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_status_probes_total",
			Help: "Probe requests by probe (liveness, auth) and result (ok, failed).",
		}, []string{"probe", "result"}),
		compiles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connectors_status_cel_compiles_total",
			Help: "Compilations of class response.cel expressions (one per class generation and field).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.leader, m.reconciles, m.writes, m.errors, m.probes, m.compiles)
	}
	return m
}
