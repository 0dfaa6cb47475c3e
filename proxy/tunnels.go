package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// tunnels tracks hijacked CONNECT connections, which http.Server.Shutdown
// does not see, so that shutdown can drain them.
type tunnels struct {
	mu      sync.Mutex
	wg      sync.WaitGroup
	closing bool
	conns   map[net.Conn]struct{}
	servers map[*http.Server]struct{}
}

func newTunnels() *tunnels {
	return &tunnels{conns: map[net.Conn]struct{}{}, servers: map[*http.Server]struct{}{}}
}

// add registers a tunnel's client connection and, for an intercepted one,
// its inner server. It returns false once shutdown has begun.
func (t *tunnels) add(c net.Conn, srv *http.Server) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.conns[c] = struct{}{}
	if srv != nil {
		t.servers[srv] = struct{}{}
	}
	t.wg.Add(1)
	return true
}

func (t *tunnels) remove(c net.Conn, srv *http.Server) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
	if srv != nil {
		delete(t.servers, srv)
	}
	t.wg.Done()
}

// shutdown stops intercepted tunnels once their in-flight requests end and
// waits for blind tunnels to close; when ctx ends first, it closes every
// remaining connection and returns ctx's error.
func (t *tunnels) shutdown(ctx context.Context) error {
	t.mu.Lock()
	t.closing = true
	servers := make([]*http.Server, 0, len(t.servers))
	for s := range t.servers {
		servers = append(servers, s)
	}
	t.mu.Unlock()
	for _, s := range servers {
		go func() { _ = s.Shutdown(ctx) }()
	}
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
