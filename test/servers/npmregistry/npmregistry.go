package npmregistry

import (
	"context"
	"crypto/sha1" //nolint:gosec // verdaccio's htpasswd {SHA} scheme, for a test password
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/authlog"
	"github.com/connectors-node/connectors-node/test/servers/daemon"
	"github.com/connectors-node/connectors-node/test/servers/loopback"
)

// Version is the verdaccio release the tests run; hack/install-deps.sh
// installs this version (it reads the constant from this file). 5.x runs on
// Debian 12's Node.js 18; 6.x needs Node.js 22.
const Version = "5.33.0"

// Dir is where hack/install-deps.sh installs verdaccio: the user's cache
// directory (XDG_CACHE_HOME or ~/.cache), keyed by Version.
func Dir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "connectors-node", "verdaccio-"+Version), nil
}

// Server is a running verdaccio behind its recording front.
type Server struct {
	// Addr is the front's host:port on 127.0.0.1.
	Addr string
	// Log holds every request the front received after start-up.
	Log authlog.Log

	front *http.Server
	proc  *daemon.Process
}

// Start runs verdaccio in dir (created if missing) with one htpasswd user.
func Start(dir, user, password string) (*Server, error) {
	return start(dir, user, password, nil)
}

// StartTLS is Start with the front serving HTTPS with cert; verdaccio
// writes https tarball URLs naming the front.
func StartTLS(dir, user, password string, cert tls.Certificate) (*Server, error) {
	return start(dir, user, password, &cert)
}

func start(dir, user, password string, cert *tls.Certificate) (*Server, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node not found: %w", err)
	}
	install, err := Dir()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(install, "node_modules", "verdaccio", "bin", "verdaccio")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("verdaccio %s is not installed in %s: %w", Version, install, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o750); err != nil {
		return nil, err
	}
	sum := sha1.Sum([]byte(password)) //nolint:gosec // verdaccio's {SHA} scheme
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		return nil, err
	}
	// The front listens first, so the backend's free port cannot be its own.
	front, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	backend, err := loopback.FreeAddr()
	if err != nil {
		_ = front.Close()
		return nil, err
	}
	conf := fmt.Sprintf(`storage: %[1]s/storage
auth:
  htpasswd:
    file: %[1]s/htpasswd
    max_users: -1
packages:
  '**':
    access: $authenticated
    publish: $authenticated
    unpublish: $authenticated
web:
  enable: false
log: {type: stdout, format: json, level: warn}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(conf), 0o600); err != nil {
		_ = front.Close()
		return nil, err
	}
	s := &Server{}
	cmd := exec.Command(node, bin, "--config", filepath.Join(dir, "config.yaml"), "--listen", backend) //nolint:gosec,noctx // the test's registry; stopped by Stop
	if s.proc, err = daemon.Start("verdaccio", cmd, filepath.Join(dir, "verdaccio.log")); err != nil {
		_ = front.Close()
		return nil, err
	}
	if cert != nil {
		front = tls.NewListener(front, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
	}
	s.serveFront(front, backend, cert != nil)
	if err := s.proc.WaitReady("http://"+backend+"/-/ping", 60*time.Second, func(r *http.Response) bool { return r.StatusCode == http.StatusOK }); err != nil {
		s.Stop()
		return nil, err
	}
	s.Log.Reset() // only what the test sends (start-up asks verdaccio itself)
	return s, nil
}

// serveFront serves ln, passing every request to verdaccio with its Host
// header unchanged (and X-Forwarded-Proto https when the front is TLS), so
// the tarball URLs verdaccio writes name the front, after recording its
// user.
func (s *Server) serveFront(ln net.Listener, backend string, https bool) {
	s.Addr = ln.Addr().String()
	target := &url.URL{Scheme: "http", Host: backend}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
		if https {
			r.Out.Header.Set("X-Forwarded-Proto", "https")
		}
	}, ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
		// verdaccio is starting or gone: start-up and the test see the 502.
		w.WriteHeader(http.StatusBadGateway)
	}}
	s.front = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Log.Record(r)
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = s.front.Serve(ln) }()
}

// Stop stops the front and verdaccio.
func (s *Server) Stop() {
	if s.front != nil {
		_ = s.front.Close()
	}
	s.proc.Stop()
}
