package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"

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
func (p *Proxy) intercept(w http.ResponseWriter, r *http.Request, c *caller, t match.Target) {
	e := entryFrom(r.Context())
	tun := &tunnel{caller: c, target: t}
	if t.Scheme == "http" {
		conn, err := p.hijack(w, r)
		if err != nil {
			e.err = err
			return
		}
		defer func() { _ = conn.Close() }()
		p.serveTunnel(r, tun, conn, &headConn{Conn: conn, on: true})
		return
	}
	// Sign (or fetch) the leaf before answering 200, so a CA failure is a
	// clean 500 rather than a broken handshake.
	leaf, err := p.leaves.get(t.Host)
	if err != nil {
		p.fail(w, r, &statusError{status: http.StatusInternalServerError, msg: "cannot issue a certificate", err: err})
		return
	}
	conn, err := p.hijack(w, r)
	if err != nil {
		e.err = err
		return
	}
	defer func() { _ = conn.Close() }()
	tlsConn := tls.Server(conn, tun.tlsConfig(leaf))
	ctx, cancel := context.WithTimeout(r.Context(), p.opts.TLSHandshakeTimeout)
	err = tlsConn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		e.err = fmt.Errorf("client TLS handshake: %w", err)
		return
	}
	p.serveTunnel(r, tun, conn, &headConn{Conn: tlsConn, on: true})
}

// serveTunnel serves the inner requests of tun, read from hc, until conn
// closes or the proxy shuts down.
func (p *Proxy) serveTunnel(r *http.Request, tun *tunnel, conn net.Conn, hc *headConn) {
	srv := p.innerServer(r.Context(), tun, hc)
	if !p.tunnels.add(conn, srv) {
		return
	}
	defer p.tunnels.remove(conn, srv)
	p.metrics.tunnels.Inc()
	defer p.metrics.tunnels.Dec()
	l := newOneConnListener(hc)
	_ = srv.Serve(l)
	// Serve returns as soon as Shutdown closes the listener; the in-flight
	// request on the connection still finishes before it closes.
	<-l.connDone
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

// oneConnListener hands one connection to http.Server.Serve and then
// blocks until that connection is closed, so Serve returns with it.
type oneConnListener struct {
	conn     net.Conn
	once     sync.Once
	closed   chan struct{}
	close    sync.Once
	connDone chan struct{}
	connOnce sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	l := &oneConnListener{closed: make(chan struct{}), connDone: make(chan struct{})}
	l.conn = &notifyConn{Conn: c, l: l}
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.close.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

// notifyConn closes its listener when it is closed.
type notifyConn struct {
	net.Conn
	l *oneConnListener
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	_ = c.l.Close()
	c.l.connOnce.Do(func() { close(c.l.connDone) })
	return err
}
