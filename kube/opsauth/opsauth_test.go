package opsauth_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/opsauth"
	"github.com/connectors-node/connectors-node/test/fake"
)

const (
	readerToken = "reader-token-0123456789"
	otherToken  = "other-token-0123456789"
)

func guarded(t *testing.T, auth *fake.Auth, logs *fake.LogBuffer) http.Handler {
	t.Helper()
	g, err := opsauth.New(opsauth.Options{Reviewer: auth, Log: logs.Logger()})
	require.NoError(t, err)
	return g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("secret metrics\n"))
	}))
}

// Every answer of the guard: the status, the WWW-Authenticate challenge of
// a 401, and no byte of the guarded handler unless allowed.
func TestGuardAnswers(t *testing.T) {
	auth := fake.NewAuth()
	reader := auth.AddToken(readerToken, "monitoring", "prometheus")
	auth.AddToken(otherToken, "team", "app")
	auth.AllowPath(reader, "get", "/metrics")
	logs := &fake.LogBuffer{}
	h := guarded(t, auth, logs)

	for _, c := range []struct {
		name, method, path string
		header             []string
		want               int
		challenge          string
	}{
		{"allowed", http.MethodGet, "/metrics", []string{"Bearer " + readerToken}, http.StatusOK, ""},
		{"allowed, HEAD", http.MethodHead, "/metrics", []string{"Bearer " + readerToken}, http.StatusOK, ""},
		{"scheme in any case", http.MethodGet, "/metrics", []string{"bearer " + readerToken}, http.StatusOK, ""},
		{"no header", http.MethodGet, "/metrics", nil, http.StatusUnauthorized, `Bearer realm="connectors-node"`},
		{"empty token", http.MethodGet, "/metrics", []string{"Bearer "}, http.StatusUnauthorized, `Bearer realm="connectors-node"`},
		{"basic", http.MethodGet, "/metrics", []string{"Basic cHJvbTpwYXNz"}, http.StatusUnauthorized, `Bearer realm="connectors-node"`},
		{"two headers", http.MethodGet, "/metrics", []string{"Bearer " + otherToken, "Bearer " + readerToken}, http.StatusUnauthorized, `Bearer realm="connectors-node"`},
		{"unknown token", http.MethodGet, "/metrics", []string{"Bearer nope"}, http.StatusUnauthorized, `Bearer realm="connectors-node", error="invalid_token"`},
		{"not allowed", http.MethodGet, "/metrics", []string{"Bearer " + otherToken}, http.StatusForbidden, ""},
		{"another path", http.MethodGet, "/debug/pprof/heap", []string{"Bearer " + readerToken}, http.StatusForbidden, ""},
		{"a write", http.MethodPost, "/metrics", []string{"Bearer " + readerToken}, http.StatusMethodNotAllowed, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), c.method, c.path, nil)
			for _, v := range c.header {
				req.Header.Add("Authorization", v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, c.want, rec.Code)
			require.Equal(t, c.challenge, rec.Header().Get("WWW-Authenticate"))
			if c.want != http.StatusOK {
				require.NotContains(t, rec.Body.String(), "secret metrics")
				require.Equal(t, http.StatusText(c.want)+"\n", rec.Body.String())
			}
		})
	}
	for _, tok := range []string{readerToken, otherToken} {
		require.NotContains(t, logs.String(), tok, "a token reached the log")
	}
	require.Contains(t, logs.String(), "system:serviceaccount:team:app", "a refusal names the user")
}

// An API server that cannot answer is 503, never 500 or a pass.
func TestGuardWhenTheAPIServerIsUnavailable(t *testing.T) {
	auth := fake.NewAuth()
	reader := auth.AddToken(readerToken, "monitoring", "prometheus")
	auth.AllowPath(reader, "get", "/metrics")
	auth.SetErr(fmt.Errorf("token review: %w: connection refused", kube.ErrUnavailable))
	logs := &fake.LogBuffer{}
	h := guarded(t, auth, logs)
	for range 3 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+readerToken)
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.NotEmpty(t, rec.Header().Get("Retry-After"))
		require.False(t, strings.Contains(rec.Body.String(), "secret metrics"))
	}
	require.NotContains(t, logs.String(), readerToken)
	require.Equal(t, 3, strings.Count(logs.String(), "connection refused"), "the cause of each 503 is logged")
	require.Equal(t, 1, strings.Count(logs.String(), `"error"=`), "a repeated 503 is an error once per interval")
}

func TestNewNeedsAReviewer(t *testing.T) {
	_, err := opsauth.New(opsauth.Options{})
	require.ErrorContains(t, err, "Reviewer is required")
}
