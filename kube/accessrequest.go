package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Approval is where an AccessRequest stands, as the CSI plugin reads it.
type Approval int

const (
	// ApprovalPending means the checks or the grant are not done yet; retry.
	ApprovalPending Approval = iota
	// ApprovalGranted means the pod-scoped permission is synced.
	ApprovalGranted
	// ApprovalRejected means a check rejected the request; final.
	ApprovalRejected
	// ApprovalDenied means no policy can grant it, or the request is no longer
	// valid (the pod ended, the Connector is gone).
	ApprovalDenied
)

// ApprovalStatus is an AccessRequest's state and what to tell the user.
type ApprovalStatus struct {
	// Request is namespace/name of the AccessRequest.
	Request types.NamespacedName
	State   Approval
	// Message says why, from the request's conditions.
	Message string
}

// AccessRequests creates and reads the AccessRequests of pods that need
// approval to use a Connector.
type AccessRequests struct {
	// Client creates and reads AccessRequests. Required.
	Client client.Client
}

// Request returns the AccessRequest for pod (running as serviceAccount) to
// use connector, creating it when absent, and its state. One pod, one
// Connector, one ServiceAccount: one request, whose name is derived from
// them, so retries reuse it.
func (a *AccessRequests) Request(ctx context.Context, pod PodRef, serviceAccount string, connector types.NamespacedName) (ApprovalStatus, error) {
	want := NewAccessRequest(pod, serviceAccount, connector)
	key := client.ObjectKeyFromObject(want)
	st := ApprovalStatus{Request: key}
	got := &v1alpha1.AccessRequest{}
	err := a.Client.Get(ctx, key, got)
	if apierrors.IsNotFound(err) {
		err = a.Client.Create(ctx, want)
		if apierrors.IsAlreadyExists(err) {
			err = a.Client.Get(ctx, key, got)
		} else if err == nil {
			got = want
		}
	}
	if err != nil {
		return st, fmt.Errorf("access request %s: %w", key, Classify(err))
	}
	if got.Spec.Subject != want.Spec.Subject || got.Spec.ConnectorRef != want.Spec.ConnectorRef ||
		got.Spec.Context.ObjectRef != want.Spec.Context.ObjectRef {
		return st, fmt.Errorf("access request %s exists with another subject, connector or pod: %w", key, ErrForbidden)
	}
	st.State, st.Message = approvalOf(got)
	return st, nil
}

// approvalOf reads an AccessRequest's conditions.
func approvalOf(ar *v1alpha1.AccessRequest) (Approval, string) {
	conds := ar.Status.Conditions
	if c := v1alpha1.FindCondition(conds, v1alpha1.ConditionAccessCheckReady); c != nil &&
		c.Status == string(metav1.ConditionFalse) && c.Reason == v1alpha1.ReasonRejected {
		return ApprovalRejected, c.Message
	}
	for _, t := range []string{v1alpha1.ConditionContextObjectValid, v1alpha1.ConditionConnectorResolved, v1alpha1.ConditionAccessPolicyMatched} {
		if c := v1alpha1.FindCondition(conds, t); c != nil && c.Status == string(metav1.ConditionFalse) {
			return ApprovalDenied, c.Message
		}
	}
	if c := v1alpha1.FindCondition(conds, v1alpha1.ConditionAccessPermissionSync); c != nil && c.Reason == v1alpha1.ReasonPermissionCleanUp {
		return ApprovalDenied, c.Message
	}
	ready := v1alpha1.FindCondition(conds, v1alpha1.ConditionReady)
	switch {
	case ready == nil:
		return ApprovalPending, "the approval controller has not seen the request yet"
	case ready.Status == string(metav1.ConditionTrue):
		return ApprovalGranted, ready.Message
	default:
		return ApprovalPending, ready.Message
	}
}

// NewAccessRequest is the AccessRequest the CSI plugin creates for pod to
// use connector: in the Connector's namespace, labelled with the pod, as
// upstream does, and owned by the pod when they share a namespace, so it
// goes with the pod.
func NewAccessRequest(pod PodRef, serviceAccount string, connector types.NamespacedName) *v1alpha1.AccessRequest {
	sum := sha256.Sum256([]byte(pod.Namespace + "\x00" + pod.Name + "\x00" + pod.UID + "\x00" + serviceAccount + "\x00" + connector.Name))
	name := connector.Name
	if len(name) > 40 {
		name = name[:40]
	}
	ar := &v1alpha1.AccessRequest{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: connector.Namespace,
			Name:      name + "-" + hex.EncodeToString(sum[:8]),
			Labels: map[string]string{
				v1alpha1.ContextObjectKindLabel:      "Pod",
				v1alpha1.ContextObjectNameLabel:      labelValue(pod.Name),
				v1alpha1.ContextObjectNamespaceLabel: pod.Namespace,
				v1alpha1.ConnectorLabel:              labelValue(connector.Name),
			},
		},
		Spec: v1alpha1.AccessRequestSpec{
			Subject:      rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: pod.Namespace},
			ConnectorRef: corev1.LocalObjectReference{Name: connector.Name},
			Context: v1alpha1.AccessRequestContext{ObjectRef: corev1.ObjectReference{
				APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: types.UID(pod.UID),
			}},
		},
	}
	if pod.Namespace == connector.Namespace && pod.UID != "" {
		ar.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: types.UID(pod.UID)}}
	}
	return ar
}

// labelValue keeps a name within a label value's 63 characters.
func labelValue(s string) string {
	if len(s) > 63 {
		return s[:63]
	}
	return s
}
