package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AccessPolicy says which Connectors of its namespace need which checks
// before a workload may use them through the proxy, and what is granted by
// default or once the checks pass. docs/approvals.md describes the flow.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=alauda
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec AccessPolicySpec `json:"spec,omitempty"`
	// +optional
	Status AccessPolicyStatus `json:"status,omitempty"`
}

// AccessPolicySpec selects Connectors and says what is granted for them.
type AccessPolicySpec struct {
	// Connector selects the Connectors of the policy's namespace it covers;
	// empty selects them all.
	// +optional
	Connector *ResourceSelector `json:"connector,omitempty"`
	// DefaultPermission is granted without any check.
	// +optional
	DefaultPermission *DefaultPermission `json:"defaultPermission,omitempty"`
	// CheckGrantedPermission is granted for one workload once its checks pass.
	// +optional
	CheckGrantedPermission *CheckGrantedPermission `json:"checkGrantedPermission,omitempty"`
}

// ResourceSelector selects objects by label and/or name. All given terms
// must match.
//
// +structType=atomic
type ResourceSelector struct {
	metav1.LabelSelector `json:",inline"`
	// Names is an explicit list of names to match.
	// +optional
	Names []string `json:"names,omitempty"`
}

// DefaultPermission is a Role and its RoleBinding granted without a check.
type DefaultPermission struct {
	// RoleTemplate names the rules of the Role.
	RoleTemplate RoleTemplate `json:"roleTemplate"`
	// BindingTemplate names the subjects of the RoleBinding.
	BindingTemplate BindingTemplate `json:"bindingTemplate"`
}

// RoleTemplate names a template of Role rules.
type RoleTemplate struct {
	// +optional
	Ref *RoleTemplateRef `json:"ref,omitempty"`
}

// RoleTemplateRef points at the ConfigMap holding a role template.
type RoleTemplateRef struct {
	// ConfigMap, in the service's namespace, whose data["rules"] is a YAML
	// list of rbac/v1 PolicyRules.
	// +optional
	ConfigMap *corev1.LocalObjectReference `json:"configMap,omitempty"`
}

// BindingTemplate lists the subjects of a generated RoleBinding.
type BindingTemplate struct {
	// +optional
	ServiceAccounts []ServiceAccountTemplate `json:"serviceAccounts,omitempty"`
}

// ServiceAccountTemplate selects ServiceAccounts by name in the selected
// namespaces; no names means every ServiceAccount there.
type ServiceAccountTemplate struct {
	// +optional
	Names []string `json:"names,omitempty"`
	// +optional
	NamespaceSelector *ResourceSelector `json:"namespaceSelector,omitempty"`
}

// CheckGrantedPermission is granted once every check passes.
type CheckGrantedPermission struct {
	Spec CheckGrantedPermissionSpec `json:"spec"`
}

// CheckGrantedPermissionSpec is the checks and the Role granted after them.
type CheckGrantedPermissionSpec struct {
	// Checks must all pass.
	// +kubebuilder:validation:MinItems=1
	Checks []CheckRule `json:"checks"`
	// RoleTemplate is the Role granted to the requesting subject.
	RoleTemplate RoleTemplate `json:"roleTemplate"`
}

// CheckRule is one check: a ConfigMap holding its spec, or the spec itself.
type CheckRule struct {
	// Name identifies the check in AccessRequest status.
	Name string `json:"name"`
	// +optional
	Ref *CheckRuleRef `json:"ref,omitempty"`
	// +optional
	Spec *CheckRuleSpec `json:"spec,omitempty"`
}

// CheckRuleRef points at the ConfigMap whose data["spec"] is a CheckRuleSpec.
type CheckRuleRef struct {
	ConfigMap corev1.LocalObjectReference `json:"configMap"`
}

// CheckRuleSpec finds the objects that decide a check and reads their state.
type CheckRuleSpec struct {
	Selector CheckSelector `json:"selector"`
	// +optional
	State *CheckState `json:"state,omitempty"`
}

// CheckSelector names the kind of the deciding objects and the labels they
// carry. Label values may hold JSONPath expressions in braces, evaluated on
// {"object": <the request's context object>}.
//
// +structType=atomic
type CheckSelector struct {
	metav1.LabelSelector `json:",inline"`
	// ObjectRef gives the apiVersion and kind of the deciding objects.
	ObjectRef corev1.ObjectReference `json:"objectRef"`
}

// CheckState says how a deciding object's state is read: by default its
// status.state (approved, rejected, pending).
type CheckState struct {
	// Rego is a Rego module (package approval) whose status.state decides;
	// empty reads status.state.
	// +optional
	Rego string `json:"rego,omitempty"`
}

// AccessPolicyStatus is what the controller observed of a policy.
type AccessPolicyStatus struct {
	Status `json:",inline"`
	// MatchedConnectors are the Connectors spec.connector selects.
	// +optional
	MatchedConnectors []corev1.LocalObjectReference `json:"matchedConnectors,omitempty"`
}

// AccessPolicyList is a list of AccessPolicies.
//
// +kubebuilder:object:root=true
type AccessPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessPolicy `json:"items"`
}
