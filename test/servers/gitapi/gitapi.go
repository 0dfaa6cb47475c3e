package gitapi

import (
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// Style is the API a Server plays.
type Style string

const (
	// GitLab wants PRIVATE-TOKEN: <token> and serves /api/v4/user and
	// /api/v4/projects.
	GitLab Style = "gitlab"
	// GitHub wants Authorization: token <token> and serves /user and
	// /user/repos, at the root as api.github.com does and under /api/v3
	// as GitHub Enterprise does (where gh sends a host other than
	// github.com).
	GitHub Style = "github"
)

// User is the account the API reports for its token.
const User = "ci-bot"

// Request is what the server saw of one request.
type Request struct {
	Method, Path string
	// Authorized is true when the request carried the server's token in
	// the style's header.
	Authorized bool
	// Credentials are the values of the credential headers the request
	// carried (PRIVATE-TOKEN, Authorization), by header name.
	Credentials map[string]string
}

// Server is a running stand-in.
type Server struct {
	style Style
	token string
	srv   *httptest.Server
	url   string

	mu   sync.Mutex
	seen []Request
}

// Options configure Start.
type Options struct {
	Style Style
	// Token is the one credential the server accepts.
	Token string
	// Cert, when set, is the server's certificate, issued for Host; the
	// URL then names Host (mapped to the loopback address by the caller).
	// Default: httptest's certificate for 127.0.0.1.
	Cert *tls.Certificate
	Host string
}

// Start starts an HTTPS stand-in on a loopback port. Close stops it.
func Start(o Options) *Server {
	s := &Server{style: o.Style, token: o.Token}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if o.Cert != nil {
		s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{*o.Cert}, MinVersion: tls.VersionTLS12}
	}
	s.srv.StartTLS()
	s.url = s.srv.URL
	if o.Cert != nil && o.Host != "" {
		_, port, _ := net.SplitHostPort(s.srv.Listener.Addr().String())
		s.url = "https://" + net.JoinHostPort(o.Host, port)
	}
	return s
}

// URL is the server's base URL: https://127.0.0.1:<port>, or with the
// host name of Options.Host.
func (s *Server) URL() string { return s.url }

// CAPEM is the PEM certificate of httptest's own server certificate, which
// verifies a server started without Options.Cert.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Requests returns what the server saw, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.seen...)
}

func (s *Server) authorized(r *http.Request) bool {
	switch s.style {
	case GitLab:
		return r.Header.Get("Private-Token") == s.token
	case GitHub:
		return r.Header.Get("Authorization") == "token "+s.token
	}
	return false
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	ok := s.authorized(r)
	rec := Request{Method: r.Method, Path: r.URL.Path, Authorized: ok, Credentials: map[string]string{}}
	for _, h := range []string{"Private-Token", "Authorization"} {
		if v := r.Header.Get(h); v != "" {
			rec.Credentials[h] = v
		}
	}
	s.mu.Lock()
	s.seen = append(s.seen, rec)
	s.mu.Unlock()

	if !ok {
		// Both APIs answer 401 with a JSON message; neither echoes what
		// it was sent.
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	path, found := r.URL.Path, true
	switch s.style {
	case GitLab:
		path, found = strings.CutPrefix(path, "/api/v4")
	case GitHub:
		path = strings.TrimPrefix(path, "/api/v3")
	}
	if !found || r.Method != http.MethodGet {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Not Found"})
		return
	}
	switch path {
	case "/user":
		writeJSON(w, http.StatusOK, map[string]any{"id": 1, "username": User, "login": User})
	case "/projects", "/user/repos":
		writeJSON(w, http.StatusOK, []map[string]any{{"id": 7, "name": "app", "path_with_namespace": User + "/app", "full_name": User + "/app"}})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Not Found"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
