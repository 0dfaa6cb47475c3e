package main

import (
	"context"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/opsauth"
)

// newOpsHandler serves the node's operations endpoints on a port of their
// own: /healthz (the process answers), /readyz (ready returns nil; 503
// otherwise), /metrics (every collector of gatherer) and, with profiles,
// Go's /debug/pprof/ endpoints. guard, when not nil, wraps /metrics and the
// profiles; the probes stay open for kubelet.
func newOpsHandler(ready func(context.Context) error, gatherer prometheus.Gatherer, profiles bool, guard func(http.Handler) http.Handler) http.Handler {
	if guard == nil {
		guard = func(h http.Handler) http.Handler { return h }
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", guard(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))
	if profiles {
		mux.Handle("GET /debug/pprof/", guard(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", guard(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("GET /debug/pprof/profile", guard(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", guard(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", guard(http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

// The ops endpoints' reviews. A scrape every 15 to 60 s finds its token
// and its decision cached; a refused token is asked again after 10 s. They
// go through a client and breaker of their own, whose small rate limit is
// all that requests to the ops port with made-up tokens can spend: the
// proxy's reviews keep the node's --kube-api-qps, and a flood that times
// out on this limiter opens this breaker (new ops tokens get 503 at once,
// cached readers keep scraping), never the one the proxy's reviews share.
const (
	opsTokenTTL   = 30 * time.Second
	opsAllowTTL   = 30 * time.Second
	opsDenyTTL    = 10 * time.Second
	opsMaxEntries = 1000
	opsAPITimeout = 5 * time.Second
	opsAPIQPS     = 5
	opsAPIBurst   = 10
)

// newOpsGuard builds the --metrics-auth guard: TokenReview for the API
// server's own audiences, then a SubjectAccessReview of get on the path.
func newOpsGuard(cfg *config, rc *rest.Config, metrics *kube.ReviewMetrics, log logr.Logger) (func(http.Handler) http.Handler, error) {
	opsConfig := rest.CopyConfig(rc)
	opsConfig.QPS, opsConfig.Burst = opsAPIQPS, opsAPIBurst
	client, err := kubernetes.NewForConfig(opsConfig)
	if err != nil {
		return nil, err
	}
	breaker, err := kube.NewBreaker(kube.BreakerOptions{Probe: kube.ProbeVersion(client)})
	if err != nil {
		return nil, err
	}
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{
		Client:        client,
		APIAudiences:  true,
		TokenTTL:      opsTokenTTL,
		AllowTTL:      opsAllowTTL,
		DenyTTL:       opsDenyTTL,
		MaxEntries:    opsMaxEntries,
		APITimeout:    opsAPITimeout,
		Metrics:       metrics,
		MetricsPrefix: "ops-",
		OutageGrace:   cfg.apiOutageGrace,
		Breaker:       breaker,
	})
	if err != nil {
		return nil, err
	}
	g, err := opsauth.New(opsauth.Options{Reviewer: reviewer, Log: log})
	if err != nil {
		return nil, err
	}
	return g.Wrap, nil
}
