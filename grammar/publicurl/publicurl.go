package publicurl

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Default is the public address of the proxy Service in deploy/.
const Default = "http://connectors-proxy.connectors-system.svc"

// DefaultClusterDomain is the cluster DNS domain when none is configured.
const DefaultClusterDomain = "cluster.local"

// URL is a checked public address. The zero value is no address: callers
// that take an optional URL use OrDefault.
type URL struct {
	scheme string
	// host is host[:port] as written (brackets kept for IPv6).
	host string
}

// Parse checks raw: scheme http or https, a host, an optional port from 1
// to 65535, and no user, path (other than "/"), query or fragment.
func Parse(raw string) (URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return URL{}, fmt.Errorf("%q is not http(s)://host[:port]", raw)
	}
	if u.User != nil {
		// The address is echoed in the error: never its password.
		return URL{}, fmt.Errorf("%q carries userinfo; want http(s)://host[:port]", u.Redacted())
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" ||
		strings.HasSuffix(raw, "#") {
		return URL{}, fmt.Errorf("%q is not http(s)://host[:port]", raw)
	}
	if u.Hostname() == "" {
		return URL{}, fmt.Errorf("%q has no host", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return URL{}, fmt.Errorf("%q has a bad port %q", raw, p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return URL{}, fmt.Errorf("%q has an empty port", raw)
	}
	return URL{scheme: u.Scheme, host: u.Host}, nil
}

// MustParse is Parse for constants and tests; it panics on a bad address.
func MustParse(raw string) URL {
	u, err := Parse(raw)
	if err != nil {
		panic("publicurl: " + err.Error())
	}
	return u
}

// OrDefault returns u, or Default when u is the zero value.
func (u URL) OrDefault() URL {
	if u.IsZero() {
		return MustParse(Default)
	}
	return u
}

// IsZero reports whether u is the zero value.
func (u URL) IsZero() bool { return u.scheme == "" }

// String is scheme://host[:port], with no trailing slash; "" for the zero
// value.
func (u URL) String() string {
	if u.IsZero() {
		return ""
	}
	return u.scheme + "://" + u.host
}

// Scheme is http or https.
func (u URL) Scheme() string { return u.scheme }

// Host is host[:port] as written.
func (u URL) Host() string { return u.host }

// Hostname is the host without port and IPv6 brackets, as written.
func (u URL) Hostname() string { return (&url.URL{Host: u.host}).Hostname() }

// Port is the port, or the scheme's default (80 or 443) when none is
// written.
func (u URL) Port() string {
	if p := (&url.URL{Host: u.host}).Port(); p != "" {
		return p
	}
	if u.scheme == "https" {
		return "443"
	}
	return "80"
}

// CheckClusterDomain checks a cluster DNS domain such as cluster.local: a
// DNS subdomain, with an optional trailing dot.
func CheckClusterDomain(domain string) error {
	if errs := validation.IsDNS1123Subdomain(strings.TrimSuffix(domain, ".")); len(errs) > 0 {
		return fmt.Errorf("%q is not a DNS domain: %s", domain, strings.Join(errs, "; "))
	}
	return nil
}
