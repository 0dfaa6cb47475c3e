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
		node := classProxy{url: strings.TrimSuffix(c.opts.PublicURL, "/"), audience: c.opts.Audience, node: true}
		if strings.HasPrefix(c.opts.PublicURL, "https://") {
			node.caCerts = string(c.opts.ProxyCACert)
		}
		return node, nil
	}
	u, err := c.resolveDestination("spec.proxy", p.Destination)
	if err != nil {
		return classProxy{}, err
	}
	return classProxy{url: u, audience: p.Audience, caCerts: p.CACerts}, nil
}

// resolveDestination resolves a class's proxy or API address, at field:
// a Service reference as http://<name>.<namespace>.svc.<domain> with uri as
// a path below it, or an absolute http(s) uri. The URL has no trailing
// slash; errors name the field.
func (c *controller) resolveDestination(field string, d v1alpha1.Destination) (string, error) {
	switch {
	case d.Ref != nil:
		if d.Ref.Kind != "Service" {
			return "", fmt.Errorf("%s.ref.kind: %q is not Service", field, d.Ref.Kind)
		}
		if d.Ref.Name == "" || d.Ref.Namespace == "" {
			return "", fmt.Errorf("%s.ref: name and namespace are required", field)
		}
		if d.Ref.Address != "" {
			return "", fmt.Errorf("%s.ref.address: not supported", field)
		}
		path := ""
		if d.URI != "" {
			u, err := url.Parse(d.URI)
			if err != nil || u.IsAbs() || u.Host != "" {
				return "", fmt.Errorf("%s.uri: %q must be a path when %s.ref is set", field, d.URI, field)
			}
			path = strings.TrimSuffix(u.Path, "/")
		}
		return "http://" + d.Ref.Name + "." + d.Ref.Namespace + ".svc." + c.opts.ClusterDomain + path, nil
	case d.URI != "":
		u, err := url.Parse(d.URI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			return "", fmt.Errorf("%s.uri: %q is not an absolute http(s) URL", field, d.URI)
		}
		return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), nil
	}
	return "", fmt.Errorf("%s: ref or uri is required", field)
}

// resolveAPI returns the class's API address (status.api.address) from
// spec.api, nil when the class has no API.
func (c *controller) resolveAPI(cls *v1alpha1.ConnectorClass) (*v1alpha1.Addressable, error) {
	if cls.Spec.API == nil {
		return nil, nil
	}
	u, err := c.resolveDestination("spec.api", cls.Spec.API.Destination)
	if err != nil {
		return nil, err
	}
	return &v1alpha1.Addressable{URL: u, CACerts: cls.Spec.API.CACerts, Audience: cls.Spec.API.Audience}, nil
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
