package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// tunnels tracks hijacked CONNECT connections, which http.Server.Shutdown
// does not see, so that shutdown can drain them. inner serves the requests
// inside every intercepted tunnel.
type tunnels struct {
	inner   *http.Server
	mu      sync.Mutex
	wg      sync.WaitGroup
	closing bool
	conns   map[net.Conn]struct{}
}

func newTunnels(inner *http.Server) *tunnels {
	return &tunnels{inner: inner, conns: map[net.Conn]struct{}{}}
}

// add registers a tunnel's client connection. It returns false once
// shutdown has begun.
func (t *tunnels) add(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *tunnels) remove(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
	t.wg.Done()
}

// shutdown stops intercepted tunnels once their in-flight requests end and
// waits for blind tunnels to close; when ctx ends first, it closes every
// remaining connection and returns ctx's error.
func (t *tunnels) shutdown(ctx context.Context) error {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
	go func() { _ = t.inner.Shutdown(ctx) }()
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	<-done
	return ctx.Err()
}
