package v1alpha1

import (
	"net"
	"net/url"
	"strings"
)

// Values of ProxyResolverAnnotation.
const (
	// ProxyResolverHost: each Connector has a host of its own.
	ProxyResolverHost = "host"
	// ProxyResolverPath: Connectors share the proxy's host and are told
	// apart by the path /namespaces/<ns>/connectors/<name>.
	ProxyResolverPath = "path"
)

// UpstreamBuiltinProxyService is the Service name upstream gives its
// built-in proxy. A class whose proxy is that Service in the namespace of
// this proxy's public address is served by this built-in proxy, so the
// classes upstream publishes work unchanged.
const UpstreamBuiltinProxyService = "connectors-proxy-service"

// ProxyURL returns the address of the class's proxy, or "" when the class
// names none: status.proxy.httpAddress.url when a controller resolved it,
// else spec.proxy.uri when it is absolute, else the Service of
// spec.proxy.ref as http://<name>.<namespace>.svc, followed by
// spec.proxy.uri when that is a path.
func (c *ConnectorClass) ProxyURL() string {
	if p := c.Status.Proxy; p != nil && p.HTTPAddress != nil && p.HTTPAddress.URL != "" {
		return strings.TrimSuffix(p.HTTPAddress.URL, "/")
	}
	spec := c.Spec.Proxy
	if spec == nil {
		return ""
	}
	if u, err := url.Parse(spec.URI); err == nil && u.IsAbs() && u.Host != "" {
		return strings.TrimSuffix(spec.URI, "/")
	}
	ref := spec.Ref
	if ref == nil || ref.Name == "" || (ref.Kind != "" && ref.Kind != "Service") {
		return ""
	}
	out := "http://" + ref.Name
	if ref.Namespace != "" {
		out += "." + ref.Namespace
	}
	out += ".svc"
	if strings.HasPrefix(spec.URI, "/") {
		out += strings.TrimSuffix(spec.URI, "/")
	}
	return out
}

// OwnProxy returns the class's proxy when it is not the built-in proxy
// whose public address is public, or "": the class names a proxy
// (ProxyURL), and its host is neither public's host nor upstream's built-in
// proxy Service in public's namespace. Service hosts compare by
// <name>.<namespace>, with or without .svc and a cluster domain.
func (c *ConnectorClass) OwnProxy(public string) string {
	proxy := c.ProxyURL()
	if proxy == "" {
		return ""
	}
	pu, err := url.Parse(proxy)
	if err != nil {
		return proxy
	}
	own := serviceKey(pu.Hostname())
	self := ""
	if u, err := url.Parse(public); err == nil {
		self = serviceKey(u.Hostname())
	}
	if own == self {
		return ""
	}
	if _, ns, ok := strings.Cut(self, "."); ok && own == UpstreamBuiltinProxyService+"."+ns {
		return ""
	}
	return proxy
}

// serviceKey lower-cases a host and cuts ".svc" and what follows it, so
// that a.b, a.b.svc and a.b.svc.cluster.local compare equal.
func serviceKey(host string) string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if i := strings.Index(host, ".svc."); i >= 0 {
		return host[:i]
	}
	return strings.TrimSuffix(host, ".svc")
}

// ProxyAddressFor returns the Connector's reverse-proxy address as
// upstream resolves it for its class: status.proxy.httpAddress.url when a
// controller set it; otherwise by the class's ProxyResolverAnnotation over
// the class's own proxy (OwnProxy), else this built-in proxy at public:
//
//	path          <proxy>/namespaces/<ns>/connectors/<name>
//	host          own proxy: <proxy> itself; built-in:
//	              <scheme>://c-<name>.<ns>.svc.<clusterDomain>[:<public port>]
//	(none)        own proxy: as host, upstream's default; built-in: as path,
//	              which needs no per-Connector Service
//
// class may be nil (no annotation, no own proxy).
func (c *Connector) ProxyAddressFor(class *ConnectorClass, public, clusterDomain string) string {
	if c.Status.Proxy != nil && c.Status.Proxy.HTTPAddress != nil && c.Status.Proxy.HTTPAddress.URL != "" {
		return c.Status.Proxy.HTTPAddress.URL
	}
	resolver, own := "", ""
	if class != nil {
		resolver = class.Annotations[ProxyResolverAnnotation]
		own = class.OwnProxy(public)
	}
	switch {
	case own != "" && resolver == ProxyResolverPath:
		return own + PathPrefix(c.Namespace, c.Name)
	case own != "":
		return own
	case resolver == ProxyResolverHost:
		return hostForm(c, public, clusterDomain)
	default:
		return c.ProxyAddress(public)
	}
}

// hostForm is the built-in proxy's host-form address of a Connector.
func hostForm(c *Connector, public, clusterDomain string) string {
	u, err := url.Parse(public)
	if err != nil {
		return c.ProxyAddress(public)
	}
	host := "c-" + c.Name + "." + c.Namespace + ".svc"
	if clusterDomain != "" {
		host += "." + clusterDomain
	}
	if p := u.Port(); p != "" {
		host = net.JoinHostPort(host, p)
	}
	return u.Scheme + "://" + host
}
