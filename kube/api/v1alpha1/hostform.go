package v1alpha1

import (
	"fmt"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Labels the status writer sets on a Connector's host-form Service. A
// Service carrying HostFormManagedByLabel=HostFormManagedByValue is the
// project's: the shipped ValidatingAdmissionPolicy lets only the status
// writer create or update a Service with it.
const (
	HostFormManagedByLabel = "app.kubernetes.io/managed-by"
	HostFormManagedByValue = "connectors-node"
	HostFormConnectorLabel = "connectors.alauda.io/connector"
)

// HostFormServiceName is the name of a Connector's host-form Service.
func HostFormServiceName(connector string) string { return "c-" + connector }

// ResolveDestination resolves a class's proxy or API address, at field:
// a Service reference as http://<name>.<namespace>.svc.<clusterDomain> with
// uri as a path below it, or an absolute http(s) uri. The URL has no
// trailing slash; errors name the field.
func ResolveDestination(field string, d Destination, clusterDomain string) (string, error) {
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
		return "http://" + d.Ref.Name + "." + d.Ref.Namespace + ".svc." + clusterDomain + path, nil
	case d.URI != "":
		u, err := url.Parse(d.URI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			return "", fmt.Errorf("%s.uri: %q is not an absolute http(s) URL", field, d.URI)
		}
		return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), nil
	}
	return "", fmt.Errorf("%s: ref or uri is required", field)
}

// ServingProxyURL is the base address of the proxy that serves the class's
// Connectors, as the status writer resolves it: spec.proxy when it names a
// Service or a URI (ResolveDestination), else the node proxy at public.
// node reports the latter. class may be nil.
func (c *ConnectorClass) ServingProxyURL(public, clusterDomain string) (proxy string, node bool, err error) {
	if c == nil || c.Spec.Proxy == nil || (c.Spec.Proxy.Ref == nil && c.Spec.Proxy.URI == "") {
		return public, true, nil
	}
	u, err := ResolveDestination("spec.proxy", c.Spec.Proxy.Destination, clusterDomain)
	return u, false, err
}

// HostFormExternalName is the DNS name a host-form Service points at for a
// proxy at proxyURL: the proxy's host, completed with the cluster domain
// when it is a Service name (<svc>.<ns>.svc).
func HostFormExternalName(proxyURL, clusterDomain string) (string, error) {
	u, err := url.Parse(proxyURL)
	if err != nil {
		return "", err
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	if strings.HasSuffix(host, ".svc") {
		host += "." + clusterDomain
	}
	if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 {
		return "", fmt.Errorf("proxy host %q cannot be an ExternalName: %s", host, strings.Join(errs, "; "))
	}
	return host, nil
}

// HostFormTarget is the ExternalName the status writer gives the
// host-form Services of the class's Connectors: HostFormExternalName of
// ServingProxyURL. class may be nil (the node proxy at public).
func (c *ConnectorClass) HostFormTarget(public, clusterDomain string) (string, error) {
	proxy, _, err := c.ServingProxyURL(public, clusterDomain)
	if err != nil {
		return "", err
	}
	return HostFormExternalName(proxy, clusterDomain)
}
