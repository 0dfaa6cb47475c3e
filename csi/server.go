package csi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc"
)

// Server serves the CSI Identity and Node services on a unix socket.
type Server struct {
	opts   Options
	log    logr.Logger
	socket string
	grpc   *grpc.Server

	mu      sync.Mutex
	started bool
	served  chan error // receives Serve's result, then closes
	done    chan struct{}
	err     error // Serve's result, set before done closes
}

// NewServer checks opts, fills the defaults and builds a Server. It does not
// listen yet: call Start or Run.
func NewServer(opts Options) (*Server, error) {
	opts, tmpfsBytes, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	socket, err := socketPath(opts.Endpoint)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	log := opts.Log.WithName("csi")
	g := grpc.NewServer(grpc.UnaryInterceptor(interceptor(log, m)))
	csi.RegisterIdentityServer(g, &identityServer{version: opts.Version, ready: opts.Ready})
	csi.RegisterNodeServer(g, &nodeServer{
		opts:       opts,
		tmpfsBytes: tmpfsBytes,
		log:        log,
		metrics:    m,
		locks:      newVolumeLocks(),
	})
	return &Server{opts: opts, log: log, socket: socket, grpc: g, done: make(chan struct{})}, nil
}

// socketPath turns unix:///path, unix://path or a plain path into a path.
func socketPath(endpoint string) (string, error) {
	path := endpoint
	if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
		if !strings.EqualFold(scheme, "unix") {
			return "", fmt.Errorf("csi endpoint %q: only unix sockets are supported", endpoint)
		}
		path = rest
	}
	if path == "" {
		return "", fmt.Errorf("csi endpoint %q has no path", endpoint)
	}
	return filepath.Clean(path), nil
}

// Socket is the path of the unix socket the server listens on.
func (s *Server) Socket() string { return s.socket }

// Start creates the socket's directory, removes a stale socket, listens, and
// serves in the background. A Server starts once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("csi server: already started")
	}
	if err := os.MkdirAll(filepath.Dir(s.socket), 0o750); err != nil {
		return fmt.Errorf("csi server: creating the socket directory: %w", err)
	}
	if err := removeStaleSocket(s.socket); err != nil {
		return fmt.Errorf("csi server: %w", err)
	}
	var lc net.ListenConfig
	lis, err := lc.Listen(context.Background(), "unix", s.socket)
	if err != nil {
		return fmt.Errorf("csi server: listening on %s: %w", s.socket, err)
	}
	s.started = true
	s.served = make(chan error, 1)
	go func() {
		err := s.grpc.Serve(lis)
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.done)
		s.served <- err
		close(s.served)
	}()
	s.log.Info("csi server listening", "socket", s.socket, "driver", DriverName, "version", s.opts.Version, "node_id", s.opts.NodeID)
	return nil
}

// Done is closed when the server stops serving, after Stop or on a failure.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns why the server stopped serving, once Done is closed.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// removeStaleSocket removes a socket file left by an earlier process. It
// refuses to remove anything that is not a socket, or a socket that answers.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("checking %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	// A socket something answers on is another running instance's: taking
	// it over would leave that one unreachable (and delete the socket when
	// this one exits).
	d := net.Dialer{Timeout: time.Second}
	if conn, err := d.Dial("unix", path); err == nil {
		_ = conn.Close()
		return fmt.Errorf("another process is serving on %s: stop it first, or use another --csi-endpoint", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	return nil
}

// Stop stops serving: it lets calls in flight finish (GracefulStop) until
// ctx ends, then closes every connection (Stop) and abandons handlers that
// are still running; then it waits for the serve loop to return and removes
// the socket. It is safe to call more than once.
func (s *Server) Stop(ctx context.Context) {
	s.mu.Lock()
	served := s.served
	s.mu.Unlock()
	graceful := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(graceful)
	}()
	select {
	case <-graceful:
	case <-ctx.Done():
		s.log.Info("csi server: graceful stop timed out, closing connections")
		s.grpc.Stop()
	}
	if served != nil {
		for range served {
		}
		if err := os.Remove(s.socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error(err, "removing the csi socket", "socket", s.socket)
		}
	}
	s.log.Info("csi server stopped")
}

// Run starts the server, serves until ctx ends, then stops within
// Options.ShutdownTimeout. It returns the serve loop's error, if it failed.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-s.served:
		serveErr = err
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer cancel()
	s.Stop(stopCtx)
	if serveErr != nil && !errors.Is(serveErr, grpc.ErrServerStopped) {
		return fmt.Errorf("csi server: %w", serveErr)
	}
	return nil
}
