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
	u, node, err := cls.ServingProxyURL(c.opts.PublicURL.String(), c.opts.ClusterDomain)
	if err != nil {
		return classProxy{}, err
	}
	if node {
		p := classProxy{url: u, audience: c.opts.Audience, node: true}
		if c.opts.PublicURL.Scheme() == "https" {
			p.caCerts = string(c.opts.ProxyCACert)
		}
		return p, nil
	}
	return classProxy{url: u, audience: cls.Spec.Proxy.Audience, caCerts: cls.Spec.Proxy.CACerts}, nil
}

// resolveAPI returns the class's API address (status.api.address) from
// spec.api, nil when the class has no API.
func (c *controller) resolveAPI(cls *v1alpha1.ConnectorClass) (*v1alpha1.Addressable, error) {
	if cls.Spec.API == nil {
		return nil, nil
	}
	u, err := v1alpha1.ResolveDestination("spec.api", cls.Spec.API.Destination, c.opts.ClusterDomain)
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
	name := v1alpha1.HostFormServiceName(connector)
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
	return v1alpha1.HostFormExternalName(p.url, c.opts.ClusterDomain)
}
