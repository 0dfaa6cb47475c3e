package match

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Address is a parsed Connector address (spec.address or an address
// extension). The zero value matches nothing.
type Address struct {
	// Scheme is http or https.
	Scheme string
	// Host is lower-case, without a trailing dot or IPv6 brackets.
	Host string
	// Port is the effective port (80 or 443 when the URL has none).
	Port string
	// Prefix holds the decoded path segments of the address; empty for "/".
	Prefix []string
}

// Target is a parsed request target.
type Target struct {
	Scheme   string
	Host     string
	Port     string
	Segments []string
	// unsafe is set when the path has dot segments or encoded separators;
	// such a target matches no path.
	unsafe bool
}

// ErrUserinfo is returned for URLs that carry userinfo.
var ErrUserinfo = errors.New("userinfo in URL")

// ParseAddress parses a Connector address. It first checks the grammar the
// CRDs enforce at the API server (v1alpha1.CheckAddress), so that an
// address stored before that rule, and refused by it, matches nothing.
func ParseAddress(raw string) (Address, error) {
	if err := v1alpha1.CheckAddress(raw); err != nil {
		return Address{}, fmt.Errorf("address %q %w", raw, err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Address{}, fmt.Errorf("address %q: %w", raw, err)
	}
	t, err := ParseURL(u)
	if err != nil {
		return Address{}, fmt.Errorf("address %q: %w", raw, err)
	}
	if t.unsafe {
		return Address{}, fmt.Errorf("address %q: path has dot segments or encoded separators", raw)
	}
	return Address{Scheme: t.Scheme, Host: t.Host, Port: t.Port, Prefix: t.Segments}, nil
}

// ParseURL parses an absolute request target.
func ParseURL(u *url.URL) (Target, error) {
	if u.User != nil {
		return Target{}, ErrUserinfo
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return Target{}, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	host, port, err := Authority(u.Host, DefaultPort(scheme))
	if err != nil {
		return Target{}, err
	}
	segs, unsafe := Segments(u.EscapedPath())
	return Target{Scheme: scheme, Host: host, Port: port, Segments: segs, unsafe: unsafe}, nil
}

// ParseAuthority parses a CONNECT authority (host:port) as an https target
// with no path; match it with Address.MatchesAuthority.
func ParseAuthority(authority string) (Target, error) {
	host, port, err := Authority(authority, "")
	if err != nil {
		return Target{}, err
	}
	return Target{Scheme: "https", Host: host, Port: port}, nil
}

// DefaultPort is the port a scheme implies.
func DefaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// Authority splits host[:port] into a normalized host and a port, using
// defPort when there is none. An empty defPort makes the port mandatory.
func Authority(hostport, defPort string) (host, port string, err error) {
	if hostport == "" {
		return "", "", errors.New("empty host")
	}
	host, port = hostport, defPort
	if h, p, splitErr := net.SplitHostPort(hostport); splitErr == nil {
		host, port = h, p
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	}
	if port == "" {
		return "", "", fmt.Errorf("authority %q has no port", hostport)
	}
	if n, convErr := strconv.Atoi(port); convErr != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", "", fmt.Errorf("authority %q has a bad port", hostport)
	}
	if !isASCII(host) {
		return "", "", fmt.Errorf("authority %q has a non-ASCII host", hostport)
	}
	host = NormalizeHost(host)
	if host == "" || strings.ContainsAny(host, "/\\@ %") || hasEmptyLabel(host) {
		return "", "", fmt.Errorf("authority %q has a bad host", hostport)
	}
	return host, port, nil
}

// hasEmptyLabel reports whether a normalized host has an empty label: a
// leading or trailing dot (one trailing dot is dropped by NormalizeHost
// before), or "..".
func hasEmptyLabel(host string) bool {
	return strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") || strings.Contains(host, "..")
}

// isASCII reports whether s has only ASCII bytes. Hosts outside ASCII are
// refused rather than case-folded: Unicode folding maps, for example, the
// Kelvin sign onto "k".
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// NormalizeHost lower-cases a host and drops exactly one trailing dot: the
// one grammar of hosts here allows one trailing dot (the root label) and no
// other empty label. A host with another empty label ("a..b", ".a", "a..")
// keeps it, so it equals no host that Authority accepts, and Authority
// refuses it.
func NormalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// Segments splits an escaped path into decoded segments, dropping the
// leading and a trailing empty segment. unsafe reports dot segments, also
// between encoded slashes ("..%2F"), encoded '\' or a raw one, a segment
// that does not decode, a ';' (servers such as Tomcat and Jetty drop
// ";params" before resolving dot segments, so "..;" climbs out of a
// prefix) and a '%' left after decoding (double encoding). An encoded '/'
// alone is safe: a segment holding one (GitLab's "group%2Fproject") equals
// no segment of an address, and a server that decodes it sees more
// segments below the same prefix.
func Segments(escaped string) (segs []string, unsafe bool) {
	p := strings.TrimPrefix(escaped, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, false
	}
	parts := strings.Split(p, "/")
	segs = make([]string, 0, len(parts))
	for _, s := range parts {
		d, err := url.PathUnescape(s)
		if err != nil || strings.ContainsAny(d, "\\;%") || hasDotSegment(d) {
			unsafe = true
		}
		segs = append(segs, d)
	}
	return segs, unsafe
}

// hasDotSegment reports whether a decoded segment, split at the slashes it
// may hold, has a "." or ".." piece.
func hasDotSegment(d string) bool {
	for {
		piece, rest, more := strings.Cut(d, "/")
		if piece == "." || piece == ".." {
			return true
		}
		if !more {
			return false
		}
		d = rest
	}
}

// Matches reports whether t falls under a, and how specific the match is:
// a higher score is a longer path prefix. The score of a match is at least 1.
func (a Address) Matches(t Target) (score int, ok bool) {
	if !a.MatchesAuthority(t) || t.unsafe || len(t.Segments) < len(a.Prefix) {
		return 0, false
	}
	for i, s := range a.Prefix {
		if t.Segments[i] != s {
			return 0, false
		}
	}
	return len(a.Prefix) + 1, true
}

// MatchesAuthority compares scheme, host and port only (for CONNECT).
func (a Address) MatchesAuthority(t Target) bool {
	return a.Host != "" && a.Scheme == t.Scheme && a.Host == t.Host && a.Port == t.Port
}

// Below returns the escaped path of t's URL below the prefix of a (the
// first len(a.Prefix) segments removed), with a leading '/' or "".
// escapedPath must be the path t was parsed from and t must match a.
func (a Address) Below(escapedPath string) string {
	p := escapedPath
	for range a.Prefix {
		p = strings.TrimPrefix(p, "/")
		i := strings.IndexByte(p, '/')
		if i < 0 {
			return ""
		}
		p = p[i:]
	}
	if p == "/" && len(a.Prefix) > 0 {
		return "/"
	}
	return p
}

// Candidate is one address of one Connector.
type Candidate struct {
	// Index identifies the Connector to the caller (its position in a list).
	Index   int
	Address Address
}

// Best returns the candidate matching t with the longest prefix; on a tie
// the earliest candidate wins.
func Best(cands []Candidate, t Target) (Candidate, bool) {
	best, bestScore := Candidate{}, 0
	for _, c := range cands {
		if s, ok := c.Address.Matches(t); ok && s > bestScore {
			best, bestScore = c, s
		}
	}
	return best, bestScore > 0
}

// AnyAuthority returns the first candidate whose scheme, host and port match t.
func AnyAuthority(cands []Candidate, t Target) (Candidate, bool) {
	for _, c := range cands {
		if c.Address.MatchesAuthority(t) {
			return c, true
		}
	}
	return Candidate{}, false
}

// SameService reports whether two normalized host names name the same
// Kubernetes Service: <svc>.<ns>, <svc>.<ns>.svc and
// <svc>.<ns>.svc.<clusterDomain> are one. Other names must be equal.
func SameService(a, b, clusterDomain string) bool {
	return a == b || serviceBase(a, clusterDomain) == serviceBase(b, clusterDomain)
}

// serviceBase strips the .svc and .svc.<domain> suffixes of a Service name;
// a host without them that is not <svc>.<ns> has no base.
func serviceBase(host, domain string) string {
	for _, suffix := range []string{".svc." + domain, ".svc"} {
		if base, ok := strings.CutSuffix(host, suffix); ok {
			return base
		}
	}
	if strings.Count(host, ".") == 1 {
		return host // <svc>.<ns>, found through the search path
	}
	return "\x00" + host
}
