package proxy

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsOptions configure NewOpsHandler. Zero values take the defaults.
type OpsOptions struct {
	// Ready reports readiness for /readyz; a non-nil error answers 503.
	// Default: always ready.
	Ready func(ctx context.Context) error
	// Gatherer serves /metrics. Default: no /metrics endpoint.
	Gatherer prometheus.Gatherer
}

// NewOpsHandler serves /healthz (the process answers), /readyz (Ready) and
// /metrics (Gatherer), for a port of its own.
func NewOpsHandler(opts OpsOptions) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if opts.Ready != nil {
			if err := opts.Ready(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	if opts.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}
