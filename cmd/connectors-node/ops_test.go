package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOpsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"}))
	notReady := errors.New("caches not synced")
	ready := notReady
	h := newOpsHandler(func(context.Context) error { return ready }, reg, false)
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
	h := newOpsHandler(func(context.Context) error { return nil }, prometheus.NewRegistry(), true)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/debug/pprof/heap?debug=1", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "heap profile") {
		t.Errorf("/debug/pprof/heap with profiles: %d %.80q", rec.Code, rec.Body.String())
	}
}
