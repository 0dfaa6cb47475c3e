package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/kube/opsauth"
	"github.com/connectors-node/connectors-node/test/fake"
)

func TestOpsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"}))
	notReady := errors.New("caches not synced")
	ready := notReady
	h := newOpsHandler(func(context.Context) error { return ready }, reg, false, nil)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
		return rec
	}
	for _, c := range []struct {
		path string
		want int
	}{{"/healthz", 200}, {"/readyz", 503}, {"/metrics", 200}, {"/other", 404}, {"/debug/pprof/heap", 404}} {
		if rec := get(c.path); rec.Code != c.want {
			t.Errorf("%s: %d, want %d", c.path, rec.Code, c.want)
		}
	}
	if body := get("/metrics").Body.String(); !strings.Contains(body, "x_total 0") {
		t.Errorf("/metrics lacks the registered counter:\n%s", body)
	}
	if body := get("/readyz").Body.String(); strings.Contains(body, notReady.Error()) {
		t.Errorf("/readyz shows the internal reason %q", body)
	}
	ready = nil
	if rec := get("/readyz"); rec.Code != 200 {
		t.Errorf("/readyz when ready: %d", rec.Code)
	}
}

// Profiles are served only when asked for: they show the process's memory.
func TestOpsHandlerProfiles(t *testing.T) {
	h := newOpsHandler(func(context.Context) error { return nil }, prometheus.NewRegistry(), true, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/debug/pprof/heap?debug=1", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "heap profile") {
		t.Errorf("/debug/pprof/heap with profiles: %d %.80q", rec.Code, rec.Body.String())
	}
}

// With the guard, /metrics and every profile need an allowed token; the
// probes kubelet sends without one stay open.
func TestOpsHandlerGuardsMetricsAndProfiles(t *testing.T) {
	auth := fake.NewAuth()
	reader := auth.AddToken("reader-token", "monitoring", "prometheus")
	auth.AllowPath(reader, "get", "/metrics")
	auth.AllowPath(reader, "get", "/debug/pprof/heap")
	g, err := opsauth.New(opsauth.Options{Reviewer: auth})
	require.NoError(t, err)
	h := newOpsHandler(func(context.Context) error { return nil }, prometheus.NewRegistry(), true, g.Wrap)
	get := func(path, token string) int {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		require.Equal(t, http.StatusOK, get(path, ""), path)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline",
		"/debug/pprof/profile", "/debug/pprof/symbol", "/debug/pprof/trace"} {
		require.Equal(t, http.StatusUnauthorized, get(path, ""), path)
	}
	require.Equal(t, http.StatusOK, get("/metrics", "reader-token"))
	require.Equal(t, http.StatusOK, get("/debug/pprof/heap?debug=1", "reader-token"))
	require.Equal(t, http.StatusForbidden, get("/debug/pprof/cmdline", "reader-token"), "each profile is its own path")
}
