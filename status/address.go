package status

import (
	"fmt"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Resolver values of the connectors.cpaas.io/proxy-resolver annotation.
const (
	ResolverHost = "host"
	ResolverPath = "path"
)

// classProxy is the proxy that serves a class's Connectors.
type classProxy struct {
	// url is the proxy's base address, without a trailing slash.
	url      string
	audience string
	caCerts  string
	// node is set when the node's own proxy serves the class.
	node bool
}

// resolveClassProxy returns the class's proxy: spec.proxy when set (a
// Service reference, with spec.proxy.uri as a path below it, or an absolute
// spec.proxy.uri), else the node proxy. Errors name the field.
func (c *controller) resolveClassProxy(cls *v1alpha1.ConnectorClass) (classProxy, error) {
	p := cls.Spec.Proxy
	if p == nil || (p.Ref == nil && p.URI == "") {
		node := classProxy{url: c.opts.PublicURL.String(), audience: c.opts.Audience, node: true}
		if c.opts.PublicURL.Scheme() == "https" {
			node.caCerts = string(c.opts.ProxyCACert)
		}
		return node, nil
	}
	out := classProxy{audience: p.Audience, caCerts: p.CACerts}
	switch {
	case p.Ref != nil:
		if p.Ref.Kind != "Service" {
			return classProxy{}, fmt.Errorf("spec.proxy.ref.kind: %q is not Service", p.Ref.Kind)
		}
		if p.Ref.Name == "" || p.Ref.Namespace == "" {
			return classProxy{}, fmt.Errorf("spec.proxy.ref: name and namespace are required")
		}
		if p.Ref.Address != "" {
			return classProxy{}, fmt.Errorf("spec.proxy.ref.address: not supported")
		}
		path := ""
		if p.URI != "" {
			u, err := url.Parse(p.URI)
			if err != nil || u.IsAbs() || u.Host != "" {
				return classProxy{}, fmt.Errorf("spec.proxy.uri: %q must be a path when spec.proxy.ref is set", p.URI)
			}
			path = strings.TrimSuffix(u.Path, "/")
		}
		out.url = "http://" + p.Ref.Name + "." + p.Ref.Namespace + ".svc." + c.opts.ClusterDomain + path
	default:
		u, err := url.Parse(p.URI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			return classProxy{}, fmt.Errorf("spec.proxy.uri: %q is not an absolute http(s) URL", p.URI)
		}
		out.url = strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
	}
	return out, nil
}

// resolver returns the class's resolver, host unless annotated path.
func resolver(cls *v1alpha1.ConnectorClass) (string, error) {
	switch v := cls.Annotations[v1alpha1.ProxyResolverAnnotation]; v {
	case "", ResolverHost:
		return ResolverHost, nil
	case ResolverPath:
		return ResolverPath, nil
	default:
		return "", fmt.Errorf("metadata.annotations[%s]: %q is not host or path", v1alpha1.ProxyResolverAnnotation, v)
	}
}

// serviceName is the host-form Service of a Connector, c-<name>, or an
// error when the name cannot be a Service name (a DNS-1035 label).
func serviceName(connector string) (string, error) {
	name := "c-" + connector
	if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
		return "", fmt.Errorf("metadata.name: %q cannot name the Service %q: %s", connector, name, strings.Join(errs, "; "))
	}
	return name, nil
}

// hostAddress is the host-form URL of a Connector under a class proxy:
// the proxy's scheme and port with the host c-<name>.<ns>.svc.<domain>.
func (c *controller) hostAddress(p classProxy, svc, namespace string) (string, error) {
	u, err := url.Parse(p.url)
	if err != nil {
		return "", err
	}
	host := svc + "." + namespace + ".svc." + c.opts.ClusterDomain
	if port := u.Port(); port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// externalName is the DNS name the host-form Service points at: the class
// proxy's host, completed with the cluster domain when it is a Service name.
func (c *controller) externalName(p classProxy) (string, error) {
	u, err := url.Parse(p.url)
	if err != nil {
		return "", err
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	if strings.HasSuffix(host, ".svc") {
		host += "." + c.opts.ClusterDomain
	}
	if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 {
		return "", fmt.Errorf("proxy host %q cannot be an ExternalName: %s", host, strings.Join(errs, "; "))
	}
	return host, nil
}
