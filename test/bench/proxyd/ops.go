package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// stats is what /stats reports.
type stats struct {
	TokenReviews  int64   `json:"tokenReviews"`
	AccessReviews int64   `json:"subjectAccessReviews"`
	LeavesIssued  float64 `json:"leavesIssued"`
	LeafCache     float64 `json:"leafCacheSize"`
	// AuditWrites and AuditLines count write calls on the audit file and
	// the lines they carried.
	AuditWrites int64 `json:"auditWrites"`
	AuditLines  int64 `json:"auditLines"`
}

// countingWriter counts the writes and lines that reach w.
type countingWriter struct {
	w      io.Writer
	writes atomic.Int64
	lines  atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	c.lines.Add(int64(bytes.Count(p, []byte{'\n'})))
	return c.w.Write(p)
}

// opsHandler serves /metrics, /stats and, when asked,
// the pprof handlers.
func opsHandler(reg *prometheus.Registry, counts *reviewCounts, audit *countingWriter, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		s := stats{TokenReviews: counts.tokenReviews.Load(), AccessReviews: counts.accessReviews.Load()}
		s.LeavesIssued = gauge(reg, "connectors_proxy_leaf_certificates_issued_total")
		s.LeafCache = gauge(reg, "connectors_proxy_leaf_cache_size")
		s.AuditWrites, s.AuditLines = audit.writes.Load(), audit.lines.Load()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// gauge reads a single-series counter or gauge from reg (0 when absent).
func gauge(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return 0
}
