package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ResourceInterfaceResource is the REST and RBAC name of ResourceInterfaces.
const ResourceInterfaceResource = "resourceinterfaces"

// ResourceInterface describes a kind of external resource (a Git
// repository, an OCI artifact) for pipeline tools: the parameters it takes,
// the attributes computed from them and a Connector, and the workspaces it
// provides. The node service does not read it; the CRD exists so that
// upstream's ResourceInterfaces apply beside its ConnectorClasses.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=alauda
// +kubebuilder:printcolumn:name="Category",type=string,JSONPath=`.metadata.labels.resourceinterface\.connectors\.cpaas\.io/category`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ResourceInterface struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ResourceInterfaceSpec `json:"spec,omitempty"`
}

// ResourceInterfaceSpec is what a ResourceInterface takes and provides.
type ResourceInterfaceSpec struct {
	// Params are the inputs of the resource, as Tekton parameters.
	// +optional
	// +listType=atomic
	Params []ParamSpec `json:"params,omitempty"`
	// Attributes are the outputs computed from the params and the Connector.
	// +optional
	// +listType=atomic
	Attributes []ResourceAttribute `json:"attributes,omitempty"`
	// Workspaces are the volumes and credentials the resource provides.
	// +optional
	// +listType=atomic
	Workspaces []ResourceWorkspace `json:"workspaces,omitempty"`
}

// ResourceAttribute is one output value of a ResourceInterface.
type ResourceAttribute struct {
	Name string `json:"name"`
	// Type is string or array.
	// +optional
	Type string `json:"type,omitempty"`
	// Expression computes the value from params and connector; the
	// pipeline front end evaluates it.
	// +optional
	Expression string `json:"expression,omitempty"`
	// +optional
	Parameterize *Parameterize `json:"parameterize,omitempty"`
	// DependsOn lists params.<name> and connector.
	// +optional
	// +listType=atomic
	DependsOn []string `json:"dependsOn,omitempty"`
	// Description is shown to users.
	// +optional
	Description string `json:"description,omitempty"`
}

// Parameterize says how an attribute becomes a pipeline parameter.
type Parameterize struct {
	// Name is the parameter's default name.
	// +optional
	Name string `json:"name,omitempty"`
	// Disable keeps the attribute from becoming a parameter.
	// +optional
	Disable bool `json:"disable,omitempty"`
}

// ResourceWorkspace is one workspace a ResourceInterface provides.
type ResourceWorkspace struct {
	Name string `json:"name"`
	// +optional
	WorkspaceMapping *WorkspaceMapping `json:"workspaceMapping,omitempty"`
	// Value is the default Tekton WorkspaceBinding (a csi volume, a
	// volumeClaimTemplate, ...), kept as written.
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Value *apiextensionsv1.JSON `json:"value,omitempty"`
	// Description is shown to users.
	// +optional
	Description string `json:"description,omitempty"`
}

// WorkspaceMapping names the pipeline workspace a workspace maps to.
type WorkspaceMapping struct {
	// +optional
	Name string `json:"name,omitempty"`
}

// ResourceInterfaceList is a list of ResourceInterfaces.
//
// +kubebuilder:object:root=true
type ResourceInterfaceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ResourceInterface `json:"items"`
}
