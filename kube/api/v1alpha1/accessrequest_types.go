package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AccessRequest is one workload's request to use one Connector through the
// proxy, for one context object (a Pod). It lives in the Connector's
// namespace; its spec does not change after creation.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=alauda
// +kubebuilder:printcolumn:name="Connector",type=string,JSONPath=`.spec.connectorRef.name`
// +kubebuilder:printcolumn:name="Subject",type=string,JSONPath=`.spec.subject.name`
// +kubebuilder:printcolumn:name="ContextValid",type=string,JSONPath=`.status.conditions[?(@.type=="ContextObjectValid")].status`
// +kubebuilder:printcolumn:name="Permission",type=string,JSONPath=`.status.conditions[?(@.type=="AccessPermissionSync")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec AccessRequestSpec `json:"spec,omitempty"`
	// +optional
	Status AccessRequestStatus `json:"status,omitempty"`
}

// AccessRequestSpec is who asks for which Connector, for which object.
type AccessRequestSpec struct {
	// Subject asks for access; a ServiceAccount.
	Subject rbacv1.Subject `json:"subject"`
	// ConnectorRef names the Connector, in the request's namespace.
	ConnectorRef corev1.LocalObjectReference `json:"connectorRef"`
	// Context is the object the access is for.
	Context AccessRequestContext `json:"context"`
}

// AccessRequestContext names the object an access is for.
type AccessRequestContext struct {
	// ObjectRef is the context object; only v1 Pods are supported.
	ObjectRef corev1.ObjectReference `json:"objectRef"`
}

// AccessRequestStatus is the controller's progress on a request.
type AccessRequestStatus struct {
	Status `json:",inline"`
	// Policies are snapshots of the AccessPolicies matched when the request
	// was first seen; later policy changes do not alter them.
	// +optional
	// +listType=map
	// +listMapKey=name
	Policies []PolicyStatus `json:"policies,omitempty"`
}

// PolicyStatus is one matched policy and its checks' results.
type PolicyStatus struct {
	// Name of the AccessPolicy.
	Name string `json:"name"`
	// PolicySpec is the policy's spec when it was matched.
	PolicySpec AccessPolicySpec `json:"policySpec"`
	// +optional
	MatchedChecks []MatchedCheck `json:"matchedChecks,omitempty"`
	// PermissionSync says whether this policy's grant is synced.
	// +optional
	PermissionSync *metav1.Condition `json:"permissionSync,omitempty"`
}

// MatchedCheck is one check's deciding object and its result.
type MatchedCheck struct {
	// Name of the check rule.
	Name string `json:"name"`
	// Ref is the deciding object.
	// +structType=atomic
	Ref corev1.ObjectReference `json:"ref"`
	// Condition is the check's result: True passed, False rejected,
	// Unknown pending.
	Condition Condition `json:"condition"`
}

// AccessRequestList is a list of AccessRequests.
//
// +kubebuilder:object:root=true
type AccessRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessRequest `json:"items"`
}
