// Package gitserver serves Git repositories over smart HTTP with
// `git http-backend` behind HTTP Basic auth, for the demo and the tests. It
// records the user of every authenticated request, so a test can see which
// credential reached it.
package gitserver

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi" //nolint:gosec // serves git http-backend to local tests; the Go version is current
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Server is a running Git HTTP server.
type Server struct {
	// URL is the base URL; repositories are at URL + "/<name>.git".
	URL string
	// Root is the directory holding the bare repositories.
	Root string

	srv      *http.Server
	mu       sync.Mutex
	users    []string
	fetches  []string
	stderr   bytes.Buffer
	user     string
	password string
}

// Backend finds git-http-backend.
func Backend() (string, error) {
	out, err := exec.CommandContext(context.Background(), "git", "--exec-path").Output()
	if err != nil {
		return "", fmt.Errorf("git not found: %w", err)
	}
	p := filepath.Join(string(trimNewline(out)), "git-http-backend")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("git-http-backend not found: %w", err)
	}
	return p, nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Start serves the bare repositories under root on a loopback port. Every
// request must carry Basic credentials user:password; pushes are enabled.
func Start(root, user, password string) (*Server, error) {
	backend, err := Backend()
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String(), Root: root, user: user, password: password}
	h := s.backend(backend)
	s.srv = &http.Server{Handler: s.auth(h), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// NewHandler is Start without a listener, for a server of the caller's own
// (TLS, a slowed link): it returns the Server and its handler, Basic auth in
// front of git http-backend. Set URL to where the handler is served before
// CreateRepo. Close does nothing; stop the caller's server instead.
func NewHandler(root, user, password string) (*Server, http.Handler, error) {
	backend, err := Backend()
	if err != nil {
		return nil, nil, err
	}
	s := &Server{Root: root, user: user, password: password, srv: &http.Server{ReadHeaderTimeout: 10 * time.Second}}
	h := s.backend(backend)
	return s, s.auth(h), nil
}

// backend is git http-backend for the repositories under s.Root. What it
// writes to stderr (such as "Request not supported" for a path that is no
// repository, as a probe of / is) is kept for Stderr, not written into the
// output of the test that runs the server.
func (s *Server) backend(path string) *cgi.Handler {
	return &cgi.Handler{
		Path:   path,
		Env:    []string{"GIT_PROJECT_ROOT=" + s.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + s.Root},
		Stderr: lockedWriter{mu: &s.mu, w: &s.stderr},
	}
}

// Stderr returns what git http-backend has written to its stderr.
func (s *Server) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// lockedWriter writes to w under mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		s.users = append(s.users, u)
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			s.fetches = append(s.fetches, u)
		}
		s.mu.Unlock()
		// git push uses the authenticated user as REMOTE_USER.
		r.Header.Del("Authorization")
		next.ServeHTTP(w, r)
	})
}

// Users returns the user of every authenticated request so far.
func (s *Server) Users() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.users...)
}

// Fetches returns the user of every authenticated fetch or clone so far
// (a POST to git-upload-pack); a Connector's auth probe only reads
// info/refs.
func (s *Server) Fetches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.fetches...)
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// CreateRepo makes a bare repository <name>.git under the root with one
// commit holding files, and returns its URL.
func (s *Server) CreateRepo(name string, files map[string]string) (string, error) {
	work, err := os.MkdirTemp("", "gitserver-work-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(work) }()
	for f, content := range files {
		p := filepath.Join(work, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return "", err
		}
	}
	bare := filepath.Join(s.Root, name+".git")
	steps := [][]string{
		{"init", "-q", "-b", "main", work},
		{"-C", work, "add", "-A"},
		{"-C", work, "-c", "user.name=demo", "-c", "user.email=demo@example.test", "commit", "-q", "-m", "initial commit"},
		{"clone", "-q", "--bare", work, bare},
		{"-C", bare, "config", "http.receivepack", "true"},
	}
	for _, args := range steps {
		cmd := exec.CommandContext(context.Background(), "git", args...) //nolint:gosec // fixed git subcommands on paths made here
		cmd.Env = Env(work)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("git %v: %w: %s", args, err, out)
		}
	}
	return s.URL + "/" + name + ".git", nil
}

// Env is a clean environment for running git and other clients (curl,
// crane, skopeo): nothing from the machine but PATH, so no system or user
// git config and no proxy or CA settings; HOME set to home.
func Env(home string) []string {
	return []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"LANG=C",
	}
}
