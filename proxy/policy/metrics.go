package policy

import "github.com/prometheus/client_golang/prometheus"

// metrics are the policy engine's Prometheus collectors.
type metrics struct {
	evaluations   *prometheus.CounterVec
	errors        *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	compileErrors *prometheus.CounterVec
	invalid       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_policy_evaluations_total",
			Help: "Rego policy evaluations by hook (generator, extractor) and result (ok, error, timeout, budget, shape, undefined).",
		}, []string{"hook", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_policy_errors_total",
			Help: "Failed Rego policy evaluations by connectorclass, hook and reason.",
		}, []string{"connectorclass", "hook", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connectors_policy_evaluation_duration_seconds",
			Help:    "Time of one Rego policy evaluation, by hook.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .005, .025, .1},
		}, []string{"hook"}),
		compileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connectors_policy_compile_errors_total",
			Help: "Rego policies of a connectorclass that did not compile, counted once per class generation and rule.",
		}, []string{"connectorclass"}),
		invalid: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "connectors_policy_invalid_rules",
			Help: "Rules of a connectorclass whose Rego policy does not compile now.",
		}, []string{"connectorclass"}),
	}
	if reg != nil {
		reg.MustRegister(m.evaluations, m.errors, m.duration, m.compileErrors, m.invalid)
	}
	return m
}
