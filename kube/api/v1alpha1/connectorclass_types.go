package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProxyResolverAnnotation on a ConnectorClass selects how its Connectors'
// proxy addresses are formed: "host" or "path".
const ProxyResolverAnnotation = "connectors.cpaas.io/proxy-resolver"

// RequiredParamAnnotation set to "true" on a param of a configuration
// makes it required: a volume that renders the configuration must give it
// a value other than "" in configuration.params.
const RequiredParamAnnotation = "connectors.cpaas.io/required"

// UndeclaredParamsAnnotation set to "allow" on a configuration lets
// configuration.params give it params it does not declare (upstream's
// JFrog class reads such params). Without it they are refused.
const UndeclaredParamsAnnotation = "connectors.cpaas.io/undeclared-params"

// ConnectorClass describes a kind of tool: its parameters, auth types,
// configuration file templates and proxy.
//
// +genclient
// +genclient:nonNamespaced
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=alauda
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ConnectorClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ConnectorClassSpec `json:"spec,omitempty"`
	// +optional
	Status ConnectorClassStatus `json:"status,omitempty"`
}

// ConnectorClassSpec is the description of a kind of tool.
type ConnectorClassSpec struct {
	// +optional
	Address *ParamSpec `json:"address,omitempty"`
	// +optional
	// +listType=atomic
	AddressExtensions []ParamSpec `json:"addressExtensions,omitempty"`
	// +optional
	// +listType=atomic
	Params []ParamSpec `json:"params,omitempty"`
	// +optional
	Auth ConnectorClassAuth `json:"auth,omitempty"`
	// +optional
	Configurations []Configuration `json:"configurations,omitempty"`
	// +optional
	Proxy *ProxySpec `json:"proxy,omitempty"`
	// +optional
	API *APISpec `json:"api,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=authName
	AuthProbes []AuthProbe `json:"authProbes,omitempty"`
	// +optional
	LivenessProbe *Probe `json:"livenessProbe,omitempty"`
}

// ConnectorClassAuth lists the auth types Connectors of the class may use.
type ConnectorClassAuth struct {
	// +optional
	// +listType=map
	// +listMapKey=name
	Types []AuthType `json:"types,omitempty"`
}

// AuthType is one way to authenticate to the tool.
type AuthType struct {
	Name string `json:"name"`
	// SecretType is the type of the Secret that holds the credential,
	// such as kubernetes.io/basic-auth.
	// +optional
	SecretType string `json:"secretType,omitempty"`
	// Optional means a Connector may omit the Secret.
	// +optional
	Optional bool `json:"optional,omitempty"`
	// +optional
	// +listType=atomic
	Params []ParamSpec `json:"params,omitempty"`
	// +optional
	Generator *Rego `json:"generator,omitempty"`
	// +optional
	DisplayName string `json:"displayName,omitempty"`
	// +optional
	Description string `json:"description,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Configuration is a named set of file templates, keyed by file name.
type Configuration struct {
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Data map[string]string `json:"data,omitempty"`
	// Params are accepted from configuration.params at mount time.
	// +optional
	// +listType=atomic
	Params []ParamSpec `json:"params,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ProxySpec is the proxy that serves Connectors of the class.
type ProxySpec struct {
	Destination `json:",inline"`
	// AuthExtractor is a Rego rule that finds the client token in a request.
	// +optional
	AuthExtractor *Rego `json:"authExtractor,omitempty"`
}

// APISpec is the class's plugin API.
type APISpec struct {
	Destination `json:",inline"`
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	OpenAPI *apiextensionsv1.JSON `json:"openapi,omitempty"`
	// +optional
	Permissions *Rego `json:"permissions,omitempty"`
}

// AuthProbe checks a credential of one auth type.
type AuthProbe struct {
	AuthName string `json:"authName"`
	// +optional
	// +listType=atomic
	Params []ParamSpec `json:"params,omitempty"`
	// +optional
	Probe *Probe `json:"probe,omitempty"`
}

// Probe is an HTTP or API check.
type Probe struct {
	// +optional
	API *APIProbe `json:"api,omitempty"`
	// +optional
	HTTP *HTTPProbe `json:"http,omitempty"`
}

// APIProbe checks a path of the class's API.
type APIProbe struct {
	// +optional
	Path string `json:"path,omitempty"`
}

// HTTPProbe checks an HTTP path of the tool.
type HTTPProbe struct {
	Path string `json:"path"`
	// +optional
	Host string `json:"host,omitempty"`
	// +optional
	// +kubebuilder:validation:Enum=http;https
	Scheme string `json:"scheme,omitempty"`
	// +optional
	// +kubebuilder:validation:Enum=GET;POST
	Method string `json:"method,omitempty"`
	// +optional
	// +listType=atomic
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
	// +optional
	DisableRedirect bool `json:"disableRedirect,omitempty"`
	// +optional
	Response *ProbeResponse `json:"response,omitempty"`
}

// HTTPHeader is one header a probe sends.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ProbeResponse says how a probe's answer is judged.
type ProbeResponse struct {
	// +optional
	CEL string `json:"cel,omitempty"`
}

// ConnectorClassStatus is the observed state of a ConnectorClass.
type ConnectorClassStatus struct {
	Status `json:",inline"`
	// +optional
	API *ClassAPIStatus `json:"api,omitempty"`
	// +optional
	Proxy *ProxyStatus `json:"proxy,omitempty"`
}

// ClassAPIStatus is the resolved address of the class's API.
type ClassAPIStatus struct {
	// +optional
	Address *Addressable `json:"address,omitempty"`
}

// ConnectorClassList is a list of ConnectorClasses.
//
// +kubebuilder:object:root=true
type ConnectorClassList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConnectorClass `json:"items"`
}
