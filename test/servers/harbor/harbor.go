// Package harbor is a local stand-in for Harbor 2.x, for the tests of the
// harbor ConnectorClass: Harbor is not packaged, so this server plays its
// front door in front of the tests' real registry (test/servers/registry,
// Debian's docker-registry with token authentication). It serves
// /api/v2.0/ping and /api/v2.0/systeminfo to anyone and
// /api/v2.0/users/current to its one account, refuses a wrong Basic
// credential on the API with 401 as Harbor does, issues registry tokens
// at /service/token (Harbor's token realm, on its own host), and passes
// /v2/ to the registry with the Host header kept. It records every
// request it received.
package harbor

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"github.com/connectors-node/connectors-node/test/servers/authlog"
)

// Version is what /api/v2.0/systeminfo reports.
const Version = "v2.12.2-connectors-test"

// TokenPath is Harbor's token realm below its address.
const TokenPath = "/service/token"

// Server is the stand-in's handler; serve it with TLS or without.
type Server struct {
	// Log holds every request the server received.
	Log authlog.Log

	user, password string
	tokens         http.Handler

	mu       sync.Mutex
	registry *httputil.ReverseProxy
}

// New returns a stand-in whose API wants user and password and whose
// token realm is tokens (nil: no registry).
func New(user, password string, tokens http.Handler) *Server {
	return &Server{user: user, password: password, tokens: tokens}
}

// SetRegistry passes /v2/ to the registry at registryURL (https), verified
// with caPEM.
func (s *Server) SetRegistry(registryURL string, caPEM []byte) error {
	target, err := url.Parse(registryURL)
	if err != nil || target.Host == "" {
		return errors.New("harbor: the registry URL is not absolute")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("harbor: no certificate in the registry CA")
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport:    &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: target.Hostname(), MinVersion: tls.VersionTLS12}},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	s.mu.Lock()
	s.registry = rp
	s.mu.Unlock()
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Log.Record(r)
	switch {
	case r.URL.Path == TokenPath && s.tokens != nil:
		s.tokens.ServeHTTP(w, r)
		return
	case r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/"):
		s.mu.Lock()
		rp := s.registry
		s.mu.Unlock()
		if rp == nil {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
		return
	case !strings.HasPrefix(r.URL.Path, "/api/v2.0/"):
		http.NotFound(w, r)
		return
	}
	user, pass, basic := r.BasicAuth()
	present := r.Header.Get("Authorization") != ""
	ok := basic && user == s.user && pass == s.password
	if present && !ok {
		s.unauthorized(w)
		return
	}
	switch r.URL.Path {
	case "/api/v2.0/ping":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "Pong")
	case "/api/v2.0/systeminfo":
		writeJSON(w, http.StatusOK, map[string]any{"harbor_version": Version, "auth_mode": "db_auth"})
	case "/api/v2.0/users/current":
		if !ok {
			s.unauthorized(w)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"user_id": 3, "username": s.user})
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) unauthorized(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": "unauthorized"}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
