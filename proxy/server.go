package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// defaultMaxHeaderBytes bounds request heads, outside and inside tunnels.
const defaultMaxHeaderBytes = 64 << 10

// ServerOptions configure NewServer. Zero values take the defaults.
type ServerOptions struct {
	// Addr is the listen address for ListenAndServe. Default ":8080".
	Addr string
	// ReadHeaderTimeout bounds reading a request head. Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections. Default 2m.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response, body included (CONNECT
	// tunnels are exempt). Large downloads need it long. Default 30m.
	WriteTimeout time.Duration
	// MaxHeaderBytes bounds request heads. Default 64 KiB.
	MaxHeaderBytes int
	// MaxConnections bounds the client connections served at once, CONNECT
	// tunnels included; each holds buffers, and the node's memory limit is
	// sized for this many. A connection beyond it is answered 503 and
	// closed. Default DefaultMaxConnections.
	MaxConnections int
	// MaxConnectionsPerSource bounds the connections open at once from
	// one client address (an IPv4-mapped IPv6 address counts as the IPv4
	// one). A connection beyond it is answered 503 and closed. Default
	// DefaultMaxConnectionsPerSource.
	MaxConnectionsPerSource int
	// MaxUnauthenticatedPerSource bounds the connections of one client
	// address that have not yet carried a request whose token passed
	// review and its pod binding. A connection beyond it is answered 503
	// and closed. Default DefaultMaxUnauthenticatedPerSource.
	MaxUnauthenticatedPerSource int
	// UnauthenticatedIdleTimeout closes a connection that never
	// authenticated once it has waited this long for a request;
	// authenticated connections keep IdleTimeout. Default
	// DefaultUnauthenticatedIdleTimeout.
	UnauthenticatedIdleTimeout time.Duration
}

// Defaults of ServerOptions.
const (
	DefaultMaxConnections              = 1500
	DefaultMaxConnectionsPerSource     = 256
	DefaultMaxUnauthenticatedPerSource = 64
	DefaultUnauthenticatedIdleTimeout  = 10 * time.Second
)

// Server serves a Proxy on one listener and drains it on Shutdown.
type Server struct {
	// HTTP is the underlying server; adjust it before Serve if needed.
	HTTP   *http.Server
	proxy  *Proxy
	limits connLimits
}

// NewServer builds the HTTP server for p.
func (p *Proxy) NewServer(opts ServerOptions) *Server { return p.newServer(p, opts) }

// NewGatewayServer builds the HTTP server of the Connectors API gateway g
// (Proxy.Gateway): a listener of its own, so that it can be exposed through
// an Ingress without exposing the workload proxy, with the same limits
// and timeouts as the proxy's.
func (p *Proxy) NewGatewayServer(g http.Handler, opts ServerOptions) *Server {
	return p.newServer(g, opts)
}

func (p *Proxy) newServer(h http.Handler, opts ServerOptions) *Server {
	if opts.Addr == "" {
		opts.Addr = ":8080"
	}
	setDuration(&opts.ReadHeaderTimeout, 10*time.Second)
	setDuration(&opts.IdleTimeout, 2*time.Minute)
	setDuration(&opts.WriteTimeout, 30*time.Minute)
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	setInt(&opts.MaxConnections, DefaultMaxConnections)
	setInt(&opts.MaxConnectionsPerSource, DefaultMaxConnectionsPerSource)
	setInt(&opts.MaxUnauthenticatedPerSource, DefaultMaxUnauthenticatedPerSource)
	setDuration(&opts.UnauthenticatedIdleTimeout, DefaultUnauthenticatedIdleTimeout)
	lim := connLimits{
		total:           opts.MaxConnections,
		perSource:       opts.MaxConnectionsPerSource,
		unauthPerSource: opts.MaxUnauthenticatedPerSource,
		unauthIdle:      opts.UnauthenticatedIdleTimeout,
	}
	return &Server{proxy: p, limits: lim, HTTP: &http.Server{
		Addr:              opts.Addr,
		Handler:           h,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		WriteTimeout:      opts.WriteTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          p.errorLog("proxy server"),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if lc := limitConnOf(c); lc != nil {
				ctx = context.WithValue(ctx, limitConnKey{}, lc)
			}
			if hc, ok := c.(*headConn); ok {
				return context.WithValue(ctx, headConnKey{}, hc)
			}
			return ctx
		},
		ConnState: func(c net.Conn, s http.ConnState) {
			if lc := limitConnOf(c); lc != nil {
				lc.setState(s)
			}
		},
	}}
}

func setInt(n *int, def int) {
	if *n <= 0 {
		*n = def
	}
}

// Serve serves on ln until Shutdown. ln's address becomes one the SSRF
// guard refuses as an upstream. It returns http.ErrServerClosed after
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.proxy.guard.addSelf(ln.Addr())
	s.refusePublicAddresses()
	return s.HTTP.Serve(headListener{newLimitListener(ln, s.limits, s.proxy.metrics, s.proxy.log)})
}

// RefuseAddr adds another address of this process, such as the ops
// listener, to the targets the proxy refuses.
func (s *Server) RefuseAddr(addr net.Addr) { s.proxy.guard.addSelf(addr) }

// refusePublicAddresses resolves the public host once (a Service's
// ClusterIP, say) and refuses its addresses on the public port: the proxy
// must not be made to call itself through its own Service.
func (s *Server) refusePublicAddresses() {
	p := s.proxy
	port, err := strconv.ParseUint(p.publicPort, 10, 16)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := p.guard.resolve(ctx, p.publicHost)
	if err != nil {
		p.log.V(1).Info("the public host does not resolve here; only its name is refused", "host", p.publicHost)
		return
	}
	for _, ip := range ips {
		p.guard.addSelf(net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
	}
}

// ListenAndServe listens on the configured address and serves.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.HTTP.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Shutdown stops accepting connections, lets in-flight requests and
// intercepted tunnels finish their current requests and waits for blind
// tunnels, all bounded by ctx; what is left when ctx ends is closed. Then
// it writes every pending audit line.
func (s *Server) Shutdown(ctx context.Context) error {
	tunnelErr := make(chan error, 1)
	go func() { tunnelErr <- s.proxy.tunnels.shutdown(ctx) }()
	err := s.HTTP.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		_ = s.HTTP.Close()
	}
	err = errors.Join(err, <-tunnelErr)
	s.proxy.upstreams.closeIdle()
	// Lines of requests that finished within the last batch window.
	s.proxy.audit.flush()
	return err
}
