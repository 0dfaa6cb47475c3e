package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RefusedError is returned for an upstream address the SSRF guard refuses.
// The proxy answers it with 403.
type RefusedError struct {
	Host   string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("target %s refused: %s", e.Host, e.Reason)
}

// alwaysDenied are ranges no upstream may resolve to.
var alwaysDenied = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local address"},
	{netip.MustParsePrefix("fe80::/10"), "link-local address"},
	{netip.MustParsePrefix("100.100.100.200/32"), "metadata address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "metadata address"},
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified address"},
	{netip.MustParsePrefix("::/128"), "unspecified address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast address"},
	{netip.MustParsePrefix("ff00::/8"), "multicast address"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast address"},
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// guard resolves upstream hosts, refuses forbidden addresses and dials the
// checked IPs.
type guard struct {
	resolve       Resolver
	deny          []netip.Prefix
	allowLoopback bool
	dialer        net.Dialer

	mu   sync.RWMutex
	self []netip.AddrPort // the proxy's listen addresses
	// local holds the node's interface addresses, for listeners on an
	// unspecified address.
	local []netip.Addr
}

func newGuard(opts *Options) *guard {
	g := &guard{
		resolve:       opts.Resolver,
		deny:          opts.DenyCIDRs,
		allowLoopback: opts.AllowLoopback,
		dialer:        net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second},
	}
	if g.resolve == nil {
		g.resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return g
}

// addSelf records a listen address of the proxy; targets on it are refused.
func (g *guard) addSelf(addr net.Addr) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	var local []netip.Addr
	if ap.Addr().IsUnspecified() {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					local = append(local, p.Addr().Unmap())
				}
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.self = append(g.self, ap)
	g.local = append(g.local, local...)
}

// check resolves host and returns its IPs when every one of them is allowed.
func (g *guard) check(ctx context.Context, host, port string) ([]netip.Addr, error) {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return nil, &RefusedError{Host: host, Reason: "bad port"}
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if ip.Zone() != "" {
			return nil, &RefusedError{Host: host, Reason: "zoned address"}
		}
		ips = []netip.Addr{ip}
	} else if looksNumeric(host) {
		// 127.1, 2130706433, 0x7f.1 and friends: some resolvers read them as
		// IPv4 addresses; refuse rather than guess.
		return nil, &RefusedError{Host: host, Reason: "non-canonical numeric address"}
	} else {
		ips, err = g.resolve(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", host, err)
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("resolving %s: no addresses", host)
		}
	}
	for i, ip := range ips {
		ip = ip.Unmap().WithZone("")
		ips[i] = ip
		if reason := g.refused(ip, uint16(p)); reason != "" {
			return nil, &RefusedError{Host: host, Reason: reason}
		}
	}
	return ips, nil
}

func (g *guard) refused(ip netip.Addr, port uint16) string {
	if nat64.Contains(ip) {
		b := ip.As16()
		if r := g.refused(netip.AddrFrom4([4]byte(b[12:16])), port); r != "" {
			return r
		}
	}
	for _, d := range alwaysDenied {
		if d.prefix.Contains(ip) {
			return d.reason
		}
	}
	if ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return "link-local address"
	}
	if ip.IsLoopback() && !g.allowLoopback {
		return "loopback address"
	}
	for _, d := range g.deny {
		if d.Contains(ip) {
			return "denied range " + d.String()
		}
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, s := range g.self {
		if s.Port() != port {
			continue
		}
		if s.Addr() == ip {
			return "the proxy's own listener"
		}
		if s.Addr().IsUnspecified() {
			if ip.IsLoopback() {
				return "the proxy's own listener"
			}
			for _, l := range g.local {
				if l == ip {
					return "the proxy's own listener"
				}
			}
		}
	}
	return ""
}

// looksNumeric reports host names made only of digits, hex digits, 'x' and
// dots that are not canonical IP literals, such as 127.1 or 0x7f000001.
func looksNumeric(host string) bool {
	if host == "" {
		return false
	}
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" { // trailing dot
		h := strings.TrimSuffix(host, ".")
		if h == host {
			return false
		}
		return looksNumeric(h)
	}
	// A DNS name's last label is never all-numeric; inet_aton style
	// addresses end in a number (decimal, octal or 0x-hex).
	l := strings.ToLower(last)
	if strings.HasPrefix(l, "0x") {
		l = l[2:]
		return l == "" || strings.Trim(l, "0123456789abcdef") == ""
	}
	return strings.Trim(l, "0123456789") == ""
}

// DialContext dials addr ("host:port") after the guard's check, trying the
// checked IPs in order.
func (g *guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := g.check(ctx, host, port)
	if err != nil {
		return nil, err
	}
	var firstErr error
	for _, ip := range ips {
		c, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}
