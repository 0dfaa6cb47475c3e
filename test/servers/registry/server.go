package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/loopback"
)

// Binary is where Debian's docker-registry package installs the registry.
const Binary = "/usr/bin/docker-registry"

// Token configures token authentication.
type Token struct {
	Realm, Service, Issuer string
	// RootCertPEM verifies the tokens' x5c chains.
	RootCertPEM []byte
}

// Config configures a registry process.
type Config struct {
	// Dir holds the configuration, the storage and the log. Required.
	Dir string
	// CertPEM and KeyPEM serve TLS. Required.
	CertPEM, KeyPEM []byte
	// CAPEM verifies the certificate when probing readiness. Required.
	CAPEM []byte
	// Htpasswd, when set, is the content of an htpasswd file (bcrypt
	// entries) for basic authentication.
	Htpasswd []byte
	// Token, when set, turns on token authentication.
	Token *Token
	// Binary overrides the registry binary. Default Binary.
	Binary string
}

// Server is a running registry.
type Server struct {
	// Addr is 127.0.0.1:port.
	Addr string
	// Port is the port alone.
	Port string
	// Log is the path of the registry's log.
	Log string

	cmd  *exec.Cmd
	done chan error
}

// Start starts the registry on a free loopback port and waits until it
// answers.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	bin := cfg.Binary
	if bin == "" {
		bin = Binary
	}
	addr, err := loopback.FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: addr, Port: port, Log: filepath.Join(cfg.Dir, "registry.log"), done: make(chan error, 1)}
	files := map[string][]byte{"tls.crt": cfg.CertPEM, "tls.key": cfg.KeyPEM}
	auth := ""
	switch {
	case cfg.Htpasswd != nil:
		files["htpasswd"] = cfg.Htpasswd
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: test-registry\n    path: %s\n", filepath.Join(cfg.Dir, "htpasswd"))
	case cfg.Token != nil:
		files["token-roots.pem"] = cfg.Token.RootCertPEM
		auth = fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			strconv.Quote(cfg.Token.Realm), strconv.Quote(cfg.Token.Service), strconv.Quote(cfg.Token.Issuer),
			filepath.Join(cfg.Dir, "token-roots.pem"))
	}
	yml := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: loopback-test-secret
  tls:
    certificate: %s
    key: %s
%s`, filepath.Join(cfg.Dir, "storage"), s.Addr, filepath.Join(cfg.Dir, "tls.crt"), filepath.Join(cfg.Dir, "tls.key"), auth)
	files["config.yml"] = []byte(yml)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(cfg.Dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	logf, err := os.Create(s.Log)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.CommandContext(context.WithoutCancel(ctx), bin, "serve", filepath.Join(cfg.Dir, "config.yml")) //nolint:gosec // G204: the registry binary and a config path the caller chose
	s.cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + cfg.Dir}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		s.done <- s.cmd.Wait()
		_ = logf.Close()
	}()
	if err := s.waitReady(ctx, cfg.CAPEM); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, caPEM []byte) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			log, _ := os.ReadFile(s.Log)
			return fmt.Errorf("registry exited: %w\n%s", err, bytes.TrimSpace(log))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.Addr+"/v2/", nil)
		if err != nil {
			return err
		}
		if resp, err := c.Do(req); err == nil {
			_ = resp.Body.Close()
			return nil
		}
	}
	return errors.New("registry did not answer within 20s")
}

// Stop kills the registry and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	err := <-s.done
	s.done <- err
}

// ServeTLS serves h over TLS on a free loopback port until ctx ends, and
// returns the port.
func ServeTLS(ctx context.Context, h http.Handler, certPEM, keyPEM []byte) (string, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return "", err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}
