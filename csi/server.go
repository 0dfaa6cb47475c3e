package csi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

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
	// owned identifies the socket file this server created, so that Stop
	// removes the path only while it is still this server's: a newer
	// instance may have taken it over meanwhile.
	owned fileID

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

// Start creates the socket's directory, listens, and serves in the
// background. A Server starts once.
//
// It binds a temporary socket beside the endpoint and renames it over the
// endpoint, so the path always answers: a stale socket is replaced, and so
// is a live one of an older instance (a rolling upgrade with a surge runs
// two on a node for a while); the older one keeps its open connections and
// leaves the path alone when it stops, as it no longer owns it. Anything
// at the path that is not a socket is refused.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("csi server: already started")
	}
	if err := os.MkdirAll(filepath.Dir(s.socket), 0o750); err != nil {
		return fmt.Errorf("csi server: creating the socket directory: %w", err)
	}
	lis, id, err := listenReplacing(s.socket)
	if err != nil {
		return fmt.Errorf("csi server: %w", err)
	}
	s.owned = id
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

// fileID is a file's device and inode: what tells one socket file at a
// path from another created there later.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileID{}, nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, nil, fmt.Errorf("%s: no device and inode", path)
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, fi, nil //nolint:unconvert // Dev is 32-bit on some platforms
}

// listenReplacing listens on a temporary unix socket beside path and
// renames it over path, atomically replacing a socket there (stale or
// live). It refuses to replace anything that is not a socket. It returns
// the listener, which never unlinks on Close, and the new file's identity.
func listenReplacing(path string) (net.Listener, fileID, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fileID{}, fmt.Errorf("checking %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return nil, fileID{}, fmt.Errorf("%s exists and is not a socket", path)
	}
	// Instances in other containers may have the same pid: a random name.
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, fileID{}, fmt.Errorf("naming a temporary socket: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+hex.EncodeToString(suffix[:])+".tmp")
	var lc net.ListenConfig
	lis, err := lc.Listen(context.Background(), "unix", tmp)
	if err != nil {
		return nil, fileID{}, fmt.Errorf("listening on %s: %w", tmp, err)
	}
	// Close must not unlink by name (the file is renamed by then): Stop
	// removes the path only while it is this listener's file.
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	id, _, err := statID(tmp)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = lis.Close()
		_ = os.Remove(tmp)
		return nil, fileID{}, fmt.Errorf("placing the socket at %s: %w", path, err)
	}
	return lis, id, nil
}

// removeIfOwned removes path only if it is still the file identified by id.
// It reports whether it removed it.
func removeIfOwned(path string, id fileID) (bool, error) {
	cur, _, err := statID(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case cur != id:
		return false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// Stop stops serving: it lets calls in flight finish (GracefulStop) until
// ctx ends, then closes every connection (Stop) and abandons handlers that
// are still running; then it waits for the serve loop to return and removes
// the socket if it is still the one this server created (a newer instance
// may have replaced it). It is safe to call more than once.
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
		removed, err := removeIfOwned(s.socket, s.owned)
		switch {
		case err != nil:
			s.log.Error(err, "removing the csi socket", "socket", s.socket)
		case !removed:
			s.log.Info("csi socket not removed: it is no longer this server's", "socket", s.socket)
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
