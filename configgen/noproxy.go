package configgen

import (
	"net/netip"
	"net/url"
	"strings"

	"github.com/connectors-node/connectors-node/grammar/publicurl"
)

// defaultNoProxy is where no_proxy starts: loopback, then the cluster-local
// suffixes of the cluster domain; for the default domain
//
//	localhost,127.0.0.1,::1,.svc,.svc.cluster.local,.cluster.local
func defaultNoProxy(domain string) []string {
	if domain = normalHost(domain); domain == "" {
		domain = publicurl.DefaultClusterDomain
	}
	return []string{"localhost", "127.0.0.1", "::1", ".svc", ".svc." + domain, "." + domain}
}

// noProxy builds the no_proxy list: defaultNoProxy, then the forward
// proxy's host, then each Connector's reverse-proxy host (clients reach
// the reverse proxy directly, never through the forward proxy), without
// repeats. Every entry that would match the host of a mounted Connector's
// address or address extension is then dropped, so traffic to that tool
// goes through the forward proxy, which injects the credential.
func noProxy(in *Input, proxy *url.URL) string {
	entries := defaultNoProxy(in.ClusterDomain)
	entries = append(entries, normalHost(proxy.Hostname()))
	for _, c := range in.Connectors {
		entries = append(entries, hostOf(c.ProxyAddress))
	}

	var tools []string
	for _, c := range in.Connectors {
		tools = append(tools, hostOf(c.Object.Spec.Address))
		for _, ext := range c.Object.Spec.AddressExtensions {
			tools = append(tools, hostOf(paramString(ext.Value.Raw)))
		}
	}

	kept := make([]string, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if e == "" || seen[e] || matchesAny(e, tools) {
			continue
		}
		seen[e] = true
		kept = append(kept, e)
	}
	return strings.Join(kept, ",")
}

func matchesAny(entry string, hosts []string) bool {
	for _, h := range hosts {
		if h != "" && noProxyMatch(entry, h) {
			return true
		}
	}
	return false
}

// noProxyMatch reports whether a no_proxy entry would exempt host in any
// common client. Clients differ (Go skips the bare domain for ".x", curl
// does not), so this takes the widest reading: "x" and ".x" both match x
// and every subdomain of x; an IP matches the same IP in any spelling.
func noProxyMatch(entry, host string) bool {
	if ea, err := netip.ParseAddr(entry); err == nil {
		ha, err := netip.ParseAddr(host)
		return err == nil && ea.Unmap() == ha.Unmap()
	}
	domain := strings.TrimPrefix(entry, ".")
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// hostOf returns the lower-case host name of an address, without port,
// brackets or trailing dot; "" when it has none. An address without a
// scheme is read as host[:port][/path].
func hostOf(address string) string {
	if address == "" {
		return ""
	}
	if !strings.Contains(address, "://") {
		address = "//" + address
	}
	u, err := url.Parse(address)
	if err != nil {
		return ""
	}
	return normalHost(u.Hostname())
}

func normalHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
