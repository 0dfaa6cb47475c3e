package v1alpha1

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Connector is a tool instance (a Git server, a registry, an API) and the
// credential used to reach it.
//
// +genclient
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=alauda
// +kubebuilder:printcolumn:name="Class",type=string,JSONPath=`.spec.connectorClassName`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Proxy",type=string,JSONPath=`.status.proxy.httpAddress.url`,priority=1
type Connector struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ConnectorSpec `json:"spec,omitempty"`
	// +optional
	Status ConnectorStatus `json:"status,omitempty"`
}

// ConnectorSpec is what a Connector points at and how it authenticates.
type ConnectorSpec struct {
	// ConnectorClassName names the cluster-scoped ConnectorClass.
	// +optional
	ConnectorClassName string `json:"connectorClassName,omitempty"`
	// Address is the tool's URL; it may carry a path prefix. It is an
	// absolute http or https URL with a host, without userinfo, fragment,
	// "." or ".." path segments, whitespace, control characters or
	// characters RFC 3986 does not allow unencoded.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/(?:[A-Za-z0-9._~!$&'()*+,=:@-]|%(?:[0146-9A-Fa-f][0-9A-Fa-f]|2[0-46-9A-Ea-e]|3[0-9ACDEFacdef]|5[0-9ABDEFabdef]))*)*(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$`
	// +kubebuilder:validation:XValidation:rule=`self.matches(r"^[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]*$")`,message="spec.address must not hold whitespace, control characters or characters RFC 3986 does not allow unencoded"
	// +kubebuilder:validation:XValidation:rule=`isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''`,message="spec.address must be an absolute http or https URL with a host"
	// +kubebuilder:validation:XValidation:rule=`!self.matches(r"^[^?]*/(?:\.|%2[Ee]){1,2}(?:[/?]|$)")`,message="spec.address must not have a . or .. path segment"
	Address string `json:"address,omitempty"`
	// AddressExtensions are further addresses of the same tool (a token
	// realm, a blob host). Credentials are injected for these too. A value
	// that is a string must follow the grammar of Address; values of other
	// JSON types are not addresses.
	// +optional
	// +listType=atomic
	AddressExtensions []Param `json:"addressExtensions,omitempty"`
	// +optional
	Auth ConnectorAuth `json:"auth,omitempty"`
	// +optional
	// +listType=atomic
	Params []Param `json:"params,omitempty"`
	// CACertSecretRef references a Secret (in the Connector's namespace)
	// with PEM CA certificates that verify the tool's TLS endpoint.
	// +optional
	CACertSecretRef *corev1.LocalObjectReference `json:"caCertSecretRef,omitempty"`
}

// ConnectorAuth names the auth type and the Secret that holds the credential.
type ConnectorAuth struct {
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	SecretRef *corev1.ObjectReference `json:"secretRef,omitempty"`
	// +optional
	// +listType=atomic
	Params []Param `json:"params,omitempty"`
}

// ConnectorStatus is the observed state of a Connector.
type ConnectorStatus struct {
	Status `json:",inline"`
	// +optional
	API *ConnectorAPIStatus `json:"api,omitempty"`
	// +optional
	Proxy *ProxyStatus `json:"proxy,omitempty"`
}

// ConnectorAPIStatus is the Connector's API path.
type ConnectorAPIStatus struct {
	// +optional
	Path string `json:"path,omitempty"`
}

// ConnectorList is a list of Connectors.
//
// +kubebuilder:object:root=true
type ConnectorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Connector `json:"items"`
}

// ProxyAddress returns the Connector's reverse-proxy address:
// status.proxy.httpAddress.url when a controller set it, otherwise the path
// form under the node service's public address,
// <public>/namespaces/<ns>/connectors/<name>. It does not judge the status
// address; the CSI plugin trusts one only on the proxy's own hosts.
func (c *Connector) ProxyAddress(public string) string {
	if c.Status.Proxy != nil && c.Status.Proxy.HTTPAddress != nil && c.Status.Proxy.HTTPAddress.URL != "" {
		return c.Status.Proxy.HTTPAddress.URL
	}
	return c.PathAddress(public)
}

// PathAddress is the Connector's path-form address under the proxy at
// public: <public>/namespaces/<ns>/connectors/<name>.
func (c *Connector) PathAddress(public string) string {
	return strings.TrimSuffix(public, "/") + PathPrefix(c.Namespace, c.Name)
}

// PathPrefix is the path-form prefix of a Connector on the reverse proxy.
func PathPrefix(namespace, name string) string {
	return "/namespaces/" + namespace + "/connectors/" + name
}

// APIPathPrefix starts every path of the Connectors API.
const APIPathPrefix = "/connectors/v1alpha1/"

// APIPath is a Connector's path on the Connectors API, as upstream writes
// it into status.api.path: /connectors/v1alpha1/<ns>/<name>/path. A tool's
// API path follows it.
func APIPath(namespace, name string) string {
	return APIPathPrefix + namespace + "/" + name + "/path"
}

// Key is <namespace>/<name>.
func (c *Connector) Key() string { return c.Namespace + "/" + c.Name }
