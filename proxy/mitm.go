package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/connectors-node/connectors-node/grammar/match"
)

// tunnel is one intercepted CONNECT: the caller, the CONNECT target and
// what the TLS handshake showed.
type tunnel struct {
	caller *caller
	target match.Target
	// sniMismatch is the server name the client asked for when it differs
	// from the CONNECT host; every inner request then gets 421.
	sniMismatch string
}

// intercept terminates TLS with a leaf for the CONNECT host (or, for an
// http:// target, reads the tunnel in the clear) and serves the inner
// HTTP/1.1 requests, each checked and proxied on its own.
//
// After the hijack the tunnel runs on a goroutine of its own and the
// CONNECT handler returns, so that net/http lets go of the client
// connection's buffers and the handler's stack, which an idle tunnel would
// otherwise hold; the CONNECT's audit line is written when the tunnel
// closes, as before.
func (p *Proxy) intercept(w http.ResponseWriter, r *http.Request, c *caller, t match.Target) {
	e := entryFrom(r.Context())
	tun := &tunnel{caller: c, target: t}
	var leaf *tls.Certificate
	if t.Scheme != "http" {
		// Sign (or fetch) the leaf before answering 200, so a CA failure
		// is a clean 500 rather than a broken handshake.
		var err error
		if leaf, err = p.leaves.get(t.Host); err != nil {
			p.fail(w, r, &statusError{status: http.StatusInternalServerError, msg: "cannot issue a certificate", err: err})
			return
		}
	}
	conn, err := p.hijack(w, r)
	if err != nil {
		e.err = err
		return
	}
	inflightFrom(r.Context()).handedOff = true
	go p.runTunnel(context.WithoutCancel(r.Context()), e, tun, conn, leaf)
}

// runTunnel completes the TLS handshake of an intercepted tunnel (none
// with a nil leaf: an http:// target is read in the clear), hands the
// connection to the tunnel's inner server and returns; e is finished when
// the connection closes. ctx is the CONNECT request's context.
func (p *Proxy) runTunnel(ctx context.Context, e *entry, tun *tunnel, conn net.Conn, leaf *tls.Certificate) {
	done := sync.OnceFunc(func() {
		_ = conn.Close()
		p.finish(e)
	})
	defer func() {
		if v := recover(); v != nil {
			// The value is not logged: it could hold request data.
			p.log.Error(fmt.Errorf("panic of type %T", v), "intercepted tunnel panicked", "stack", string(debug.Stack()))
			e.err = errors.New("internal error")
			done()
		}
	}()
	inner := conn
	if leaf != nil {
		raw := &batchConn{Conn: conn}
		tlsConn := tls.Server(raw, tun.tlsConfig(leaf))
		hctx, cancel := context.WithTimeout(ctx, p.opts.TLSHandshakeTimeout)
		err := tlsConn.HandshakeContext(hctx)
		cancel()
		if err != nil {
			e.err = fmt.Errorf("client TLS handshake: %w", err)
			done()
			return
		}
		inner = &batchedTLS{Conn: tlsConn, raw: raw}
	}
	p.serveTunnel(ctx, tun, conn, &headConn{Conn: inner, on: true}, done)
}

// serveTunnel hands hc, the inner connection of tun over the client
// connection conn, to the tunnel's inner server and returns; the server's
// connection goroutine serves the inner requests until conn closes or the
// proxy shuts down, and then done runs.
func (p *Proxy) serveTunnel(ctx context.Context, tun *tunnel, conn net.Conn, hc *headConn, done func()) {
	srv := p.innerServer(ctx, tun, hc)
	if !p.tunnels.add(conn, srv) {
		done()
		return
	}
	p.metrics.tunnels.Inc()
	l := newOneConnListener(hc, func() {
		p.metrics.tunnels.Dec()
		p.tunnels.remove(conn, srv)
		done()
	})
	_ = srv.Serve(l)
	// Serve returns at its second Accept, or at once when shutdown began
	// first; then it never took the connection, which closes here.
	if !l.accepted.Load() {
		_ = l.conn.Close()
	}
}

// tlsConfig answers the client's handshake with leaf, the certificate of
// the CONNECT host, and notes a server name that differs from that host.
func (tun *tunnel) tlsConfig(leaf *tls.Certificate) *tls.Config {
	t := tun.target
	_, ipErr := netip.ParseAddr(t.Host)
	hostIsIP := ipErr == nil
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			sni := match.NormalizeHost(hello.ServerName)
			if sni != t.Host && (sni != "" || !hostIsIP) {
				tun.sniMismatch = hello.ServerName
				if tun.sniMismatch == "" {
					tun.sniMismatch = "(none)"
				}
			}
			return leaf, nil
		},
	}
}

// innerServer is the HTTP/1.1 server of the requests inside one tunnel:
// each runs through serve and exchange like any other request. ctx is the
// CONNECT request's context.
func (p *Proxy) innerServer(ctx context.Context, tun *tunnel, hc *headConn) *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.serve(w, r, modeMITM, func(w http.ResponseWriter, r *http.Request) { p.serveInner(w, r, tun) })
		}),
		ReadHeaderTimeout: p.opts.TunnelIdleTimeout,
		IdleTimeout:       p.opts.TunnelIdleTimeout,
		MaxHeaderBytes:    defaultMaxHeaderBytes,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:          p.errorLog("intercepted tunnel"),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, headConnKey{}, hc)
		},
	}
}

// serveInner checks one request inside an intercepted tunnel and proxies it.
func (p *Proxy) serveInner(w http.ResponseWriter, r *http.Request, tun *tunnel) {
	p.exchange(w, r, tun.resolve(p))
}

// resolve routes a request inside the tunnel to the CONNECT target, which
// its URL and Host must name, and admits the tunnel's caller again: a
// tunnel may outlive both its token and the caller's access.
func (tun *tunnel) resolve(p *Proxy) resolver {
	return func(r *http.Request) (*routed, error) {
		if err := tun.checkTarget(r); err != nil {
			return nil, err
		}
		c, err := p.admit(r.Context(), tun.caller.token, tun.caller.keys, tunnelChallenge)
		if err != nil {
			return nil, err
		}
		t := tun.target
		target := &url.URL{Scheme: t.Scheme, Host: hostPort(t), Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
		it, err := match.ParseURL(target)
		if err != nil {
			return nil, statusErrorf(http.StatusBadRequest, "bad request target")
		}
		return p.forwardRoute(c, it, target, modeMITM)
	}
}

// checkTarget answers 421 to a request that the TLS server name, its URL
// or its Host sends elsewhere than the CONNECT target.
func (tun *tunnel) checkTarget(r *http.Request) error {
	t := tun.target
	if tun.sniMismatch != "" {
		return statusErrorf(http.StatusMisdirectedRequest,
			"TLS server name does not match the CONNECT host %s", t.Host)
	}
	if r.URL.IsAbs() || r.URL.Host != "" {
		if u, err := match.ParseURL(r.URL); err != nil || u.Scheme != t.Scheme || u.Host != t.Host || u.Port != t.Port {
			return statusErrorf(http.StatusMisdirectedRequest, "request target does not match the CONNECT host %s", t.Host)
		}
	}
	if r.Host != "" {
		host, port, err := match.Authority(r.Host, match.DefaultPort(t.Scheme))
		if err != nil || host != t.Host || port != t.Port {
			return statusErrorf(http.StatusMisdirectedRequest, "Host does not match the CONNECT host %s", t.Host)
		}
	}
	return nil
}

func hostPort(t match.Target) string {
	if t.Port == match.DefaultPort(t.Scheme) {
		return bracket(t.Host)
	}
	return net.JoinHostPort(t.Host, t.Port)
}

func bracket(h string) string {
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
		return "[" + h + "]"
	}
	return h
}

// oneConnListener hands one connection to http.Server.Serve; its next
// Accept fails, so Serve returns while the server's connection goroutine
// serves the connection on.
type oneConnListener struct {
	conn     *notifyConn
	accepted atomic.Bool
}

// newOneConnListener listens with c; onClose runs once when c is closed.
func newOneConnListener(c net.Conn, onClose func()) *oneConnListener {
	return &oneConnListener{conn: &notifyConn{Conn: c, onClose: sync.OnceFunc(onClose)}}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if l.accepted.CompareAndSwap(false, true) {
		return l.conn, nil
	}
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error { return nil }

func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

// notifyConn runs onClose when it is closed.
type notifyConn struct {
	net.Conn
	onClose func()
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.onClose()
	return err
}

// maxWriteBatch bounds the bytes a batchConn holds before it writes them.
const maxWriteBatch = 64 << 10

// writeBatches are the buffers of batchConns while they batch.
var writeBatches = sync.Pool{New: func() any { b := make([]byte, 0, maxWriteBatch+1<<10); return &b }}

// batchConn is the client connection under an intercepted tunnel's TLS:
// between begin and end it gathers the records of one TLS write and sends
// them in one write, where the TLS connection would send each of its
// 16 KiB records on its own. Records other writers send meanwhile (alerts
// a read answers) join the batch in their order. It holds no buffer
// between batches.
type batchConn struct {
	net.Conn
	mu    sync.Mutex
	batch *[]byte
}

func (c *batchConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batch == nil {
		return c.Conn.Write(b)
	}
	*c.batch = append(*c.batch, b...)
	if len(*c.batch) >= maxWriteBatch {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

func (c *batchConn) begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batch == nil {
		c.batch = writeBatches.Get().(*[]byte)
	}
}

// end writes what the batch holds and stops batching.
func (c *batchConn) end() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batch == nil {
		return nil
	}
	err := c.flushLocked()
	writeBatches.Put(c.batch)
	c.batch = nil
	return err
}

func (c *batchConn) flushLocked() error {
	_, err := c.Conn.Write(*c.batch)
	*c.batch = (*c.batch)[:0]
	return err
}

// batchedTLS is a TLS connection over a batchConn whose every Write is one
// batch.
type batchedTLS struct {
	*tls.Conn
	raw *batchConn
	wmu sync.Mutex
}

func (c *batchedTLS) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.raw.begin()
	n, err := c.Conn.Write(b)
	if ferr := c.raw.end(); err == nil && ferr != nil {
		return 0, ferr
	}
	return n, err
}
