package csi

import (
	"net/url"
	"strings"

	"github.com/go-logr/logr"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/proxy/match"
)

// proxyAddress is the reverse-proxy address the volume's files send the
// pod's token to. A Connector's status.proxy.httpAddress.url is used only
// when its host is one of the proxy's own names (the public URL's host, or
// another name of the same Service) or the proxy the Connector's class
// declares in spec.proxy: whoever may write a Connector's status must not
// be able to collect tokens. Otherwise the address is derived from the
// public URL, and the log says why.
func (n *nodeServer) proxyAddress(log logr.Logger, c *v1alpha1.Connector, class *v1alpha1.ConnectorClass) string {
	// The address without status: the class's own proxy, or the
	// resolver's host or path form under the public URL.
	bare := *c
	bare.Status.Proxy = nil
	derived := bare.ProxyAddressFor(class, n.opts.PublicURL.String(), n.opts.ClusterDomain)
	if c.Status.Proxy == nil || c.Status.Proxy.HTTPAddress == nil || c.Status.Proxy.HTTPAddress.URL == "" {
		return derived
	}
	raw := c.Status.Proxy.HTTPAddress.URL
	u, err := url.Parse(raw)
	var reason string
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		reason = "it is not an http(s) URL with a host"
	case u.User != nil:
		reason = "it carries userinfo"
	case !n.trustedProxyHost(match.NormalizeHost(u.Hostname()), c, class):
		reason = "its host is neither one of the proxy's names, the connector's own host-form Service, nor the proxy its class declares"
	default:
		return raw
	}
	host := ""
	if u != nil {
		host = u.Hostname() // never the userinfo
	}
	log.Info("not using the connector's status.proxy.httpAddress.url; the volume points at the derived address",
		"connector", c.Key(), "status_host", host, "reason", reason, "address", derived)
	return derived
}

// trustedProxyHost reports whether host is the proxy's own, the
// Connector's own host-form Service c-<name>.<ns>.svc (which the status
// writer creates, owned by the Connector, leading to the proxy), or the
// class's declared proxy (spec.proxy.uri, or the Service spec.proxy.ref
// names).
func (n *nodeServer) trustedProxyHost(host string, c *v1alpha1.Connector, class *v1alpha1.ConnectorClass) bool {
	domain := n.opts.ClusterDomain
	if match.SameService(host, match.NormalizeHost(n.opts.PublicURL.Hostname()), domain) {
		return true
	}
	if match.SameService(host, "c-"+c.Name+"."+c.Namespace+".svc", domain) {
		return true
	}
	if class == nil || class.Spec.Proxy == nil {
		return false
	}
	p := class.Spec.Proxy
	if p.URI != "" {
		if u, err := url.Parse(p.URI); err == nil && u.Hostname() != "" && match.SameService(host, match.NormalizeHost(u.Hostname()), domain) {
			return true
		}
	}
	if r := p.Ref; r != nil && r.Name != "" && r.Namespace != "" && (r.Kind == "" || strings.EqualFold(r.Kind, "Service")) {
		return match.SameService(host, strings.ToLower(r.Name+"."+r.Namespace+".svc"), domain)
	}
	return false
}
