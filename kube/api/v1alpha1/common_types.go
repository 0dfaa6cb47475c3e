package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Param is a named value. The value is any JSON; most values are strings.
type Param struct {
	Name string `json:"name"`
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Value apiextensionsv1.JSON `json:"value"`
}

// ParamSpec declares a parameter: its type, description, allowed values and default.
type ParamSpec struct {
	Name string `json:"name"`
	// +optional
	Type string `json:"type,omitempty"`
	// +optional
	Description string `json:"description,omitempty"`
	// +optional
	Properties map[string]PropertySpec `json:"properties,omitempty"`
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Default *apiextensionsv1.JSON `json:"default,omitempty"`
	// +optional
	Enum []string `json:"enum,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PropertySpec is the type of one key of an object parameter.
type PropertySpec struct {
	// +optional
	Type string `json:"type,omitempty"`
}

// Condition is one observation of an object's state.
type Condition struct {
	Type string `json:"type"`
	// Status is True, False or Unknown.
	Status string `json:"status"`
	// +optional
	Severity string `json:"severity,omitempty"`
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// Status holds the fields every status of this group shares.
type Status struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	Conditions []Condition `json:"conditions,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Addressable is a resolved address: a URL, the audience of tokens it
// accepts and the CA certificates that verify it.
type Addressable struct {
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	URL string `json:"url,omitempty"`
	// +optional
	CACerts string `json:"CACerts,omitempty"`
	// +optional
	Audience string `json:"audience,omitempty"`
}

// ProxyStatus is the resolved proxy of a Connector or ConnectorClass.
type ProxyStatus struct {
	// +optional
	HTTPAddress *Addressable `json:"httpAddress,omitempty"`
}

// KReference names an object that resolves to an address.
type KReference struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// +optional
	Group string `json:"group,omitempty"`
	// +optional
	Address string `json:"address,omitempty"`
}

// Destination is an address given by reference, URI, or both.
type Destination struct {
	// +optional
	Ref *KReference `json:"ref,omitempty"`
	// +optional
	URI string `json:"uri,omitempty"`
	// +optional
	CACerts string `json:"CACerts,omitempty"`
	// +optional
	Audience string `json:"audience,omitempty"`
}

// Rego holds a Rego policy.
type Rego struct {
	// +optional
	Rego string `json:"rego,omitempty"`
}
