// Package sonarqube is a local stand-in for SonarQube's web API, for the
// tests of the sonarqube ConnectorClass: /api/system/status, which
// answers anyone, and /api/authentication/validate and
// /api/server/version, which want one token as "Authorization: Bearer"
// (or as SonarQube's older Basic form, the token as the user). An
// Authorization header with another token is refused with 401, as
// SonarQube refuses a bad token; no header at all validates as
// {"valid":false}. It records what each request carried.
package sonarqube

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/connectors-node/connectors-node/test/servers/authlog"
)

// Version is what /api/server/version answers.
const Version = "10.7.0.96327"

// Server is a running stand-in.
type Server struct {
	// URL is the server's base URL.
	URL string
	// Log holds every request the server received.
	Log authlog.Log

	token string
	srv   *httptest.Server
}

// Start serves the API on a loopback port, accepting token.
func Start(token string) *Server {
	s := &Server{token: token}
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// authorized reports whether r carries the token, and whether it carries
// any credential at all.
func (s *Server) authorized(r *http.Request) (ok, present bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return false, false
	}
	if tok, found := strings.CutPrefix(h, "Bearer "); found {
		return tok == s.token, true
	}
	if b, found := strings.CutPrefix(h, "Basic "); found {
		raw, err := base64.StdEncoding.DecodeString(b)
		user, _, _ := strings.Cut(string(raw), ":")
		return err == nil && user == s.token, true
	}
	return false, true
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Log.Record(r)
	ok, present := s.authorized(r)
	if present && !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []map[string]string{{"msg": "Invalid token"}}})
		return
	}
	switch r.URL.Path {
	case "/api/system/status":
		writeJSON(w, http.StatusOK, map[string]string{"id": "connectors-test", "version": Version, "status": "UP"})
	case "/api/authentication/validate":
		writeJSON(w, http.StatusOK, map[string]bool{"valid": ok})
	case "/api/server/version":
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(Version))
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
