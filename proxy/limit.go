package proxy

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Why a connection was refused or closed early: the values of the reason
// label of connectors_proxy_connections_refused_total and
// connectors_proxy_connections_closed_total.
const (
	// reasonTotal: MaxConnections were open and none could be evicted.
	reasonTotal = "total"
	// reasonSource: MaxConnectionsPerSource were open from the source.
	reasonSource = "source"
	// reasonUnauthenticated: MaxUnauthenticatedPerSource connections of
	// the source had not authenticated.
	reasonUnauthenticated = "unauthenticated"
	// reasonEvicted: an idle connection of a source holding more than the
	// newcomer's source made room under MaxConnections.
	reasonEvicted = "evicted"
	// reasonUnauthenticatedIdle: a connection that never authenticated was
	// idle for UnauthenticatedIdleTimeout.
	reasonUnauthenticatedIdle = "unauthenticated_idle"
)

// refusals are the 503 answers to a connection beyond a limit, by reason.
var refusals = map[string][]byte{
	reasonTotal:           refusal("too many connections to the proxy, try again"),
	reasonSource:          refusal("too many connections from this address, try again"),
	reasonUnauthenticated: refusal("too many unauthenticated connections from this address, send a token or try again"),
}

func refusal(msg string) []byte {
	body := msg + "\r\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Connection: close\r\n" +
		"Retry-After: 1\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

// connLimits are the limits a limitListener enforces (ServerOptions).
type connLimits struct {
	total, perSource, unauthPerSource int
	unauthIdle                        time.Duration
}

// limitListener bounds the open connections, in total and per source
// address, and those of a source that have not authenticated yet. A
// connection beyond a per-source limit is answered 503 and closed. When
// the total is reached, an idle connection of the source holding the most
// (at least two more than the newcomer's source) is closed to make room,
// one that never authenticated first, the longest idle first; when none
// is, the newcomer is answered 503. A connection counts until it is
// closed, also after a hijack (CONNECT tunnels).
type limitListener struct {
	net.Listener
	limits  connLimits
	metrics *metrics
	log     logr.Logger

	mu      sync.Mutex
	open    int
	sources map[netip.Addr]*source
}

// source is the connections open from one address.
type source struct {
	addr  netip.Addr
	conns map[*limitConn]struct{}
	// unauth counts the conns that have not authenticated.
	unauth int
}

func newLimitListener(ln net.Listener, lim connLimits, m *metrics, log logr.Logger) *limitListener {
	return &limitListener{Listener: ln, limits: lim, metrics: m, log: log, sources: map[netip.Addr]*source{}}
}

// sourceAddr is the client address a connection is counted under: the IP
// of its remote address, an IPv4-mapped IPv6 address as IPv4, without a
// zone. Addresses that are not IP share the zero Addr.
func sourceAddr(c net.Conn) netip.Addr {
	var ip netip.Addr
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		ip = ap.Addr()
	}
	return ip.Unmap().WithZone("")
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc, victim, reason, limit := l.admit(c)
		if victim != nil {
			l.metrics.connsClosed.WithLabelValues(reasonEvicted).Inc()
			l.log.V(1).Info("idle connection closed to admit another source", "source", victim.src.addr.String(),
				"authenticated", victim.authed, "newSource", lc.src.addr.String(), "limit", l.limits.total)
			_ = victim.Conn.Close()
		}
		if lc != nil {
			return lc, nil
		}
		l.metrics.connsRefused.WithLabelValues(reason).Inc()
		l.log.V(1).Info("connection refused", "reason", reason, "limit", limit, "source", sourceAddr(c).String())
		go refuse(c, refusals[reason])
	}
}

// admit counts c in or says which limit refuses it. victim, when not nil,
// was already taken out of the counts and must be closed.
func (l *limitListener) admit(c net.Conn) (lc *limitConn, victim *limitConn, reason string, limit int) {
	addr := sourceAddr(c)
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sources[addr]
	n := 0
	if s != nil {
		n = len(s.conns)
		if n >= l.limits.perSource {
			return nil, nil, reasonSource, l.limits.perSource
		}
		if s.unauth >= l.limits.unauthPerSource {
			return nil, nil, reasonUnauthenticated, l.limits.unauthPerSource
		}
	}
	if l.open >= l.limits.total {
		victim = l.victimLocked(n)
		if victim == nil {
			return nil, nil, reasonTotal, l.limits.total
		}
		l.releaseLocked(victim)
	}
	if s == nil {
		s = &source{addr: addr, conns: map[*limitConn]struct{}{}}
		l.sources[addr] = s
	}
	lc = &limitConn{Conn: c, l: l, src: s, idle: true, idleSince: time.Now()}
	s.conns[lc] = struct{}{}
	s.unauth++
	l.open++
	l.metrics.connsOpen.Inc()
	lc.armLocked()
	return lc, victim, "", 0
}

// victimLocked picks the connection to close for a newcomer whose source
// has n open: an idle one of the source with the most open, if that is at
// least n+2 (so the two do not trade places), one that never
// authenticated before one that did, the longest idle first.
func (l *limitListener) victimLocked(n int) *limitConn {
	var best *limitConn
	for _, s := range l.sources {
		if len(s.conns) < n+2 || best != nil && len(s.conns) < len(best.src.conns) {
			continue
		}
		for c := range s.conns {
			if c.idle && (best == nil || c.evictsBefore(best)) {
				best = c
			}
		}
	}
	return best
}

// evictsBefore orders eviction candidates: the source with more open
// first, then one that never authenticated, then the longest idle.
func (c *limitConn) evictsBefore(o *limitConn) bool {
	if a, b := len(c.src.conns), len(o.src.conns); a != b {
		return a > b
	}
	if c.authed != o.authed {
		return !c.authed
	}
	return c.idleSince.Before(o.idleSince)
}

// releaseLocked takes c out of the counts, once.
func (l *limitListener) releaseLocked(c *limitConn) {
	if c.released {
		return
	}
	c.released = true
	c.stopTimerLocked()
	s := c.src
	delete(s.conns, c)
	if !c.authed {
		s.unauth--
	}
	if len(s.conns) == 0 {
		delete(l.sources, s.addr)
	}
	l.open--
	l.metrics.connsOpen.Dec()
}

// refuse writes the 503 without waiting on a slow client for long.
func refuse(c net.Conn, resp []byte) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(resp)
	_ = c.Close()
}

// limitConn is one counted connection. The fields below l are guarded by
// l.mu.
type limitConn struct {
	net.Conn
	l   *limitListener
	src *source

	released bool
	// authed is set once a request on the connection carried a token that
	// passed review and the pod binding.
	authed bool
	// idle is true between requests (and before the first): the
	// connection may be evicted, and if it never authenticated it is
	// closed after UnauthenticatedIdleTimeout.
	idle      bool
	idleSince time.Time
	// epoch tells a stale idle timer from the current one.
	epoch uint64
	timer *time.Timer
}

// Close closes the connection and gives its counts back, once.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return err
}

// authenticated marks the connection as having carried an authenticated
// request: it no longer counts as unauthenticated and keeps the server's
// idle timeout.
func (c *limitConn) authenticated() {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.authed || c.released {
		return
	}
	c.authed = true
	c.src.unauth--
	c.stopTimerLocked()
}

// setState follows http.Server's view of the connection.
func (c *limitConn) setState(s http.ConnState) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	switch s {
	case http.StateIdle:
		c.idle, c.idleSince = true, time.Now()
		c.armLocked()
	case http.StateActive, http.StateHijacked:
		c.idle = false
		c.stopTimerLocked()
	}
}

// armLocked starts the idle timer of a connection that never
// authenticated.
func (c *limitConn) armLocked() {
	c.stopTimerLocked()
	if c.authed || c.released || c.l.limits.unauthIdle <= 0 {
		return
	}
	epoch := c.epoch
	c.timer = time.AfterFunc(c.l.limits.unauthIdle, func() { c.idleExpired(epoch) })
}

func (c *limitConn) stopTimerLocked() {
	c.epoch++
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// idleExpired closes the connection if it is still idle and
// unauthenticated since the timer of epoch was armed.
func (c *limitConn) idleExpired(epoch uint64) {
	c.l.mu.Lock()
	expired := epoch == c.epoch && c.idle && !c.authed && !c.released
	c.l.mu.Unlock()
	if !expired {
		return
	}
	c.l.metrics.connsClosed.WithLabelValues(reasonUnauthenticatedIdle).Inc()
	c.l.log.V(1).Info("unauthenticated connection closed after idling", "source", c.src.addr.String(),
		"timeout", c.l.limits.unauthIdle.String())
	_ = c.Close()
}

// limitConnOf finds the limitConn under the connection http.Server holds.
func limitConnOf(c net.Conn) *limitConn {
	if hc, ok := c.(*headConn); ok {
		c = hc.Conn
	}
	lc, _ := c.(*limitConn)
	return lc
}

type limitConnKey struct{}

// markAuthenticated records that the client connection serving ctx carried
// an authenticated request.
func markAuthenticated(ctx context.Context) {
	if lc, _ := ctx.Value(limitConnKey{}).(*limitConn); lc != nil {
		lc.authenticated()
	}
}
