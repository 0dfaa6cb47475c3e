package csi

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/grammar/match"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// proxyAddress is the reverse-proxy address the volume's files send the
// pod's token to. A Connector's status.proxy.httpAddress.url is used only
// when its host is one of the proxy's own names (the public URL's host, or
// another name of the same Service), the proxy the Connector's class
// declares in spec.proxy, or the Connector's own host-form Service when
// that Service is the project's and leads to the proxy (hostFormService):
// whoever may write a Connector's status or create Services must not be
// able to collect tokens. Otherwise the address is derived from the public
// URL, and the log says why.
func (n *nodeServer) proxyAddress(ctx context.Context, log logr.Logger, c *v1alpha1.Connector, class *v1alpha1.ConnectorClass) string {
	if c.Status.Proxy == nil || c.Status.Proxy.HTTPAddress == nil || c.Status.Proxy.HTTPAddress.URL == "" {
		return n.derivedAddress(ctx, log, c, class)
	}
	raw := c.Status.Proxy.HTTPAddress.URL
	u, err := url.Parse(raw)
	var reason string
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		reason = "it is not an http(s) URL with a host"
	case u.User != nil:
		reason = "it carries userinfo"
	case n.isHostForm(match.NormalizeHost(u.Hostname()), c):
		err := n.hostFormService(ctx, c, class)
		if err == nil {
			return raw
		}
		// The derived address is the class's own proxy, or the path form:
		// never the same Service again.
		addr, hostForm := n.derived(c, class)
		if hostForm {
			addr = c.PathAddress(n.opts.PublicURL.String())
		}
		log.Info("not using the connector's host-form status.proxy.httpAddress.url; the volume points at the derived address",
			"connector", c.Key(), "status_host", u.Hostname(), "reason", err.Error(), "address", addr)
		return addr
	case !n.trustedProxyHost(match.NormalizeHost(u.Hostname()), class):
		reason = "its host is neither one of the proxy's names, the connector's own host-form Service, nor the proxy its class declares"
	default:
		return raw
	}
	host := ""
	if u != nil {
		host = u.Hostname() // never the userinfo
	}
	derived := n.derivedAddress(ctx, log, c, class)
	log.Info("not using the connector's status.proxy.httpAddress.url; the volume points at the derived address",
		"connector", c.Key(), "status_host", host, "reason", reason, "address", derived)
	return derived
}

// derivedAddress is the address without status: the class's own proxy,
// or the resolver's host or path form under the public URL. A host-form
// address whose Service is not the project's (hostFormService) is replaced
// by the path form, and the log says why.
func (n *nodeServer) derivedAddress(ctx context.Context, log logr.Logger, c *v1alpha1.Connector, class *v1alpha1.ConnectorClass) string {
	addr, hostForm := n.derived(c, class)
	if !hostForm {
		return addr
	}
	if err := n.hostFormService(ctx, c, class); err != nil {
		path := c.PathAddress(n.opts.PublicURL.String())
		log.Info("not using the connector's host-form address; the volume points at the path form",
			"connector", c.Key(), "reason", err.Error(), "address", path)
		return path
	}
	return addr
}

// derived returns the address without status, and whether it is the
// Connector's host form.
func (n *nodeServer) derived(c *v1alpha1.Connector, class *v1alpha1.ConnectorClass) (string, bool) {
	bare := *c
	bare.Status.Proxy = nil
	addr := bare.ProxyAddressFor(class, n.opts.PublicURL.String(), n.opts.ClusterDomain)
	u, err := url.Parse(addr)
	return addr, err == nil && n.isHostForm(match.NormalizeHost(u.Hostname()), c)
}

// isHostForm reports whether host names the Connector's own host-form
// Service c-<name>.<ns>.svc, under any of the Service's names.
func (n *nodeServer) isHostForm(host string, c *v1alpha1.Connector) bool {
	return match.SameService(host, v1alpha1.HostFormServiceName(c.Name)+"."+c.Namespace+".svc", n.opts.ClusterDomain)
}

// hostFormService returns nil when the Connector's host-form Service is
// the one the status writer keeps: it exists, carries the project's
// labels, is controlled by this Connector (by UID), and is an ExternalName
// Service to the proxy that serves the class (the name the status writer
// would set). Otherwise the error says why, naming no secret. Only the
// status writer may create or update a Service with the project's
// managed-by label (the shipped ValidatingAdmissionPolicy), so a user who
// may create Services cannot forge one that passes.
func (n *nodeServer) hostFormService(ctx context.Context, c *v1alpha1.Connector, class *v1alpha1.ConnectorClass) error {
	name := v1alpha1.HostFormServiceName(c.Name)
	if n.opts.Services == nil {
		return errors.New("the plugin reads no Services, so it cannot check the host-form Service")
	}
	svc, err := n.opts.Services.Service(ctx, c.Namespace, name)
	if errors.Is(err, kube.ErrNotFound) {
		return fmt.Errorf("service %s/%s does not exist", c.Namespace, name)
	}
	if err != nil {
		return fmt.Errorf("reading service %s/%s: %w", c.Namespace, name, err)
	}
	if svc.Labels[v1alpha1.HostFormManagedByLabel] != v1alpha1.HostFormManagedByValue || svc.Labels[v1alpha1.HostFormConnectorLabel] != c.Name {
		return fmt.Errorf("service %s/%s lacks the labels %s=%s and %s=%s", c.Namespace, name,
			v1alpha1.HostFormManagedByLabel, v1alpha1.HostFormManagedByValue, v1alpha1.HostFormConnectorLabel, c.Name)
	}
	ref := metav1.GetControllerOf(svc)
	if ref == nil || ref.UID != c.UID || ref.Kind != "Connector" || ref.APIVersion != v1alpha1.GroupVersion.String() {
		return fmt.Errorf("service %s/%s is not controlled by this connector (uid %s)", c.Namespace, name, c.UID)
	}
	want, err := class.HostFormTarget(n.opts.PublicURL.String(), n.opts.ClusterDomain)
	if err != nil {
		return fmt.Errorf("the proxy of the connector's class has no host-form target: %w", err)
	}
	got := strings.TrimSuffix(strings.ToLower(svc.Spec.ExternalName), ".")
	if svc.Spec.Type != corev1.ServiceTypeExternalName || got != want {
		return fmt.Errorf("service %s/%s is not an ExternalName Service to the proxy %s", c.Namespace, name, want)
	}
	return nil
}

// trustedProxyHost reports whether host is the proxy's own or the class's
// declared proxy (spec.proxy.uri, or the Service spec.proxy.ref names).
// The Connector's host-form name is checked apart (hostFormService).
func (n *nodeServer) trustedProxyHost(host string, class *v1alpha1.ConnectorClass) bool {
	domain := n.opts.ClusterDomain
	if match.SameService(host, match.NormalizeHost(n.opts.PublicURL.Hostname()), domain) {
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
