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
	var server *tls.Config
	if t.Scheme != "http" {
		// Sign (or fetch) the leaf before answering 200, so a CA failure
		// is a clean 500 rather than a broken handshake.
		var err error
		if server, err = p.leaves.serverConfig(t.Host); err != nil {
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
	go p.runTunnel(context.WithoutCancel(r.Context()), e, tun, conn, server)
}

// runTunnel completes the TLS handshake of an intercepted tunnel with
// server, the leaf's configuration (none with a nil server: an http://
// target is read in the clear), hands the connection to the tunnels' inner
// server and returns; e is finished when the connection closes. ctx is the
// CONNECT request's context.
func (p *Proxy) runTunnel(ctx context.Context, e *entry, tun *tunnel, conn net.Conn, server *tls.Config) {
	var once sync.Once
	done := func() {
		once.Do(func() {
			_ = conn.Close()
			p.finish(e)
		})
	}
	defer func() {
		if v := recover(); v != nil {
			// The value is not logged: it could hold request data.
			p.log.Error(fmt.Errorf("panic of type %T", v), "intercepted tunnel panicked", "stack", string(debug.Stack()))
			e.err = errors.New("internal error")
			done()
		}
	}()
	inner := conn
	if server != nil {
		raw := &batchConn{Conn: conn}
		tlsConn := tls.Server(raw, server)
		hctx, cancel := context.WithTimeout(ctx, p.opts.TLSHandshakeTimeout)
		err := tlsConn.HandshakeContext(hctx)
		cancel()
		if err != nil {
			e.err = fmt.Errorf("client TLS handshake: %w", err)
			done()
			return
		}
		tun.checkServerName(tlsConn.ConnectionState().ServerName)
		inner = &batchedTLS{Conn: tlsConn, raw: raw}
	}
	p.serveTunnel(ctx, tun, conn, &headConn{Conn: inner, on: true}, done)
}

// serveTunnel hands hc, the inner connection of tun over the client
// connection conn, to the tunnels' inner server and returns; the server's
// connection goroutine serves the inner requests until conn closes or the
// proxy shuts down, and then done runs.
func (p *Proxy) serveTunnel(ctx context.Context, tun *tunnel, conn net.Conn, hc *headConn, done func()) {
	if !p.tunnels.add(conn) {
		done()
		return
	}
	p.metrics.tunnels.Inc()
	l := &oneConnListener{ctx: context.WithValue(ctx, tunnelKey{}, tun), conn: &tunnelConn{Conn: hc, hc: hc, onClose: func() {
		p.metrics.tunnels.Dec()
		p.tunnels.remove(conn)
		done()
	}}}
	_ = p.tunnels.inner.Serve(l)
	// Serve returns at its second Accept, or at once when shutdown began
	// first; then it never took the connection, which closes here.
	if !l.accepted.Load() {
		_ = l.conn.Close()
	}
}

// checkServerName notes a TLS server name that differs from the CONNECT
// host; every inner request then gets 421. A client that sends no server
// name is fine only for a CONNECT to an IP address.
func (tun *tunnel) checkServerName(serverName string) {
	t := tun.target
	_, ipErr := netip.ParseAddr(t.Host)
	hostIsIP := ipErr == nil
	sni := match.NormalizeHost(serverName)
	if sni != t.Host && (sni != "" || !hostIsIP) {
		tun.sniMismatch = serverName
		if tun.sniMismatch == "" {
			tun.sniMismatch = "(none)"
		}
	}
}

// newInnerServer is the HTTP/1.1 server of the requests inside
// intercepted tunnels, one for all of them: each request runs through
// serve and exchange like any other. A tunnel's listener (a
// oneConnListener) brings its connection (a tunnelConn) and a context
// holding the CONNECT request's values and the tunnel.
func (p *Proxy) newInnerServer() *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tun := tunnelFrom(r.Context())
			p.serve(w, r, modeMITM, func(w http.ResponseWriter, r *http.Request) { p.serveInner(w, r, tun) })
		}),
		ReadHeaderTimeout: p.opts.TunnelIdleTimeout,
		IdleTimeout:       p.opts.TunnelIdleTimeout,
		MaxHeaderBytes:    defaultMaxHeaderBytes,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:          p.errorLog("intercepted tunnel"),
		BaseContext:       func(l net.Listener) context.Context { return l.(*oneConnListener).ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, headConnKey{}, c.(*tunnelConn).hc)
		},
	}
}

type tunnelKey struct{}

// tunnelFrom returns the tunnel of a request inside one.
func tunnelFrom(ctx context.Context) *tunnel {
	tun, _ := ctx.Value(tunnelKey{}).(*tunnel)
	return tun
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
// serves the connection on. ctx is the base context of the connection.
type oneConnListener struct {
	ctx      context.Context
	conn     *tunnelConn
	accepted atomic.Bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if l.accepted.CompareAndSwap(false, true) {
		return l.conn, nil
	}
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error { return nil }

func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

// tunnelConn is the inner connection of an intercepted tunnel: the
// recording headConn over the tunnel's TLS (or clear) connection, and
// onClose, which runs once when the connection is closed.
// Only net.Conn's methods are promoted: net/http half-closes a connection
// that has CloseWrite, which the tunnel's connection never did.
type tunnelConn struct {
	net.Conn
	hc      *headConn
	once    sync.Once
	onClose func()
}

func (c *tunnelConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.onClose)
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
