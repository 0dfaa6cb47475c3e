package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestClassProxyAndConnectorAddress(t *testing.T) {
	const public = "http://connectors-proxy.connectors-system.svc"
	svc := func(name, ns, uri string) *ConnectorClass {
		return &ConnectorClass{Spec: ConnectorClassSpec{Proxy: &ProxySpec{Destination: Destination{
			Ref: &KReference{Kind: "Service", Name: name, Namespace: ns}, URI: uri}}}}
	}
	uri := func(u string) *ConnectorClass {
		return &ConnectorClass{Spec: ConnectorClassSpec{Proxy: &ProxySpec{Destination: Destination{URI: u}}}}
	}
	annotated := func(c *ConnectorClass, resolver string) *ConnectorClass {
		c = c.DeepCopy()
		c.ObjectMeta = metav1.ObjectMeta{Annotations: map[string]string{ProxyResolverAnnotation: resolver}}
		return c
	}
	conn := &Connector{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "harbor"}}
	tests := []struct {
		name      string
		class     *ConnectorClass
		own, addr string
	}{
		{name: "no class proxy", class: &ConnectorClass{},
			addr: public + "/namespaces/default/connectors/harbor"},
		{name: "upstream's built-in Service is this proxy", class: svc("connectors-proxy-service", "connectors-system", ""),
			addr: public + "/namespaces/default/connectors/harbor"},
		{name: "this proxy's own Service", class: uri("http://connectors-proxy.connectors-system.svc.cluster.local"),
			addr: public + "/namespaces/default/connectors/harbor"},
		{name: "built-in, host resolver", class: annotated(&ConnectorClass{}, ProxyResolverHost),
			addr: "http://c-harbor.default.svc.cluster.local"},
		{name: "built-in, path resolver", class: annotated(&ConnectorClass{}, ProxyResolverPath),
			addr: public + "/namespaces/default/connectors/harbor"},
		{name: "own Service", class: svc("oci-plugin", "plugins", "/proxy"),
			own: "http://oci-plugin.plugins.svc/proxy", addr: "http://oci-plugin.plugins.svc/proxy"},
		{name: "own Service, path resolver", class: annotated(svc("oci-plugin", "plugins", ""), ProxyResolverPath),
			own: "http://oci-plugin.plugins.svc", addr: "http://oci-plugin.plugins.svc/namespaces/default/connectors/harbor"},
		{name: "own URI", class: uri("https://proxy.example.com/"),
			own: "https://proxy.example.com", addr: "https://proxy.example.com"},
		{name: "upstream's Service name in another namespace is not this proxy", class: svc("connectors-proxy-service", "default", ""),
			own: "http://connectors-proxy-service.default.svc", addr: "http://connectors-proxy-service.default.svc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.class.OwnProxy(public); got != tt.own {
				t.Errorf("OwnProxy = %q, want %q", got, tt.own)
			}
			if got := conn.ProxyAddressFor(tt.class, public, "cluster.local"); got != tt.addr {
				t.Errorf("ProxyAddressFor = %q, want %q", got, tt.addr)
			}
		})
	}
	set := conn.DeepCopy()
	set.Status.Proxy = &ProxyStatus{HTTPAddress: &Addressable{URL: "http://c-harbor.default.svc.cluster.local"}}
	if got := set.ProxyAddressFor(svc("x", "y", ""), public, "cluster.local"); got != "http://c-harbor.default.svc.cluster.local" {
		t.Errorf("status address does not win: %q", got)
	}
}
