package approval

import (
	"context"
	"fmt"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Reconcile brings one AccessRequest's status and grant up to date. again
// says to look again after CheckPeriod: a check is pending, or a grant is
// live and its pod must be watched for its end.
func (c *Controller) Reconcile(ctx context.Context, key types.NamespacedName) (again bool, err error) {
	ar := &v1alpha1.AccessRequest{}
	if err := c.opts.Client.Get(ctx, key, ar); err != nil {
		if apierrors.IsNotFound(err) {
			// The grant's owner references remove it too; this is for
			// clusters without a garbage collector running yet.
			_, err := c.revoke(ctx, key)
			return false, err
		}
		return false, fmt.Errorf("reading access request %s: %w", key, err)
	}
	if isFinal(ar) {
		return false, nil
	}
	before := ar.Status.DeepCopy()
	again, err = c.evaluate(ctx, ar)
	if err != nil {
		return false, err
	}
	setReady(ar, c.now())
	ar.Status.ObservedGeneration = ar.Generation
	if !reflect.DeepEqual(before, &ar.Status) {
		if err := c.opts.Client.Status().Update(ctx, ar); err != nil {
			return false, fmt.Errorf("writing access request %s status: %w", key, err)
		}
	}
	return again, nil
}

// isFinal: the grant was removed after the pod or the Connector went away.
func isFinal(ar *v1alpha1.AccessRequest) bool {
	c := v1alpha1.FindCondition(ar.Status.Conditions, v1alpha1.ConditionAccessPermissionSync)
	return c != nil && c.Reason == v1alpha1.ReasonPermissionCleanUp
}

// evaluate runs the steps in order, each setting its condition; a step
// that fails stops the later ones.
func (c *Controller) evaluate(ctx context.Context, ar *v1alpha1.AccessRequest) (bool, error) {
	now := c.now()
	key := client.ObjectKeyFromObject(ar)

	// 1. The context object: a live pod running as the subject.
	pod, reason, msg, err := c.contextPod(ctx, ar)
	if err != nil {
		return false, err
	}
	if pod == nil {
		setCondition(&ar.Status.Conditions, v1alpha1.ConditionContextObjectValid, metav1.ConditionFalse, reason, msg, now)
		return false, c.cleanUp(ctx, ar, msg)
	}
	setCondition(&ar.Status.Conditions, v1alpha1.ConditionContextObjectValid, metav1.ConditionTrue, v1alpha1.ReasonActive, msg, now)

	// 2. The Connector, in the request's namespace.
	conn := &v1alpha1.Connector{}
	err = c.opts.Client.Get(ctx, types.NamespacedName{Namespace: ar.Namespace, Name: ar.Spec.ConnectorRef.Name}, conn)
	if apierrors.IsNotFound(err) || ar.Spec.ConnectorRef.Name == "" {
		msg := fmt.Sprintf("connector %q not found", ar.Namespace+"/"+ar.Spec.ConnectorRef.Name)
		setCondition(&ar.Status.Conditions, v1alpha1.ConditionConnectorResolved, metav1.ConditionFalse, v1alpha1.ReasonNotFound, msg, now)
		return false, c.cleanUp(ctx, ar, msg)
	}
	if err != nil {
		return false, fmt.Errorf("reading connector of %s: %w", key, err)
	}
	setCondition(&ar.Status.Conditions, v1alpha1.ConditionConnectorResolved, metav1.ConditionTrue, v1alpha1.ReasonResolved, "", now)

	// 3. The policies, matched once: later policy changes do not alter an
	// in-flight request.
	if v1alpha1.FindCondition(ar.Status.Conditions, v1alpha1.ConditionAccessPolicyMatched) == nil {
		if err := c.matchPolicies(ctx, ar, conn); err != nil {
			return false, err
		}
	}
	if len(ar.Status.Policies) == 0 {
		msg := fmt.Sprintf("no AccessPolicy in namespace %q with checkGrantedPermission selects connector %q", ar.Namespace, conn.Name)
		setCondition(&ar.Status.Conditions, v1alpha1.ConditionAccessPolicyMatched, metav1.ConditionFalse, v1alpha1.ReasonNoMatched, msg, now)
		return false, nil
	}
	names := make([]string, len(ar.Status.Policies))
	for i, p := range ar.Status.Policies {
		names[i] = p.Name
	}
	setCondition(&ar.Status.Conditions, v1alpha1.ConditionAccessPolicyMatched, metav1.ConditionTrue, v1alpha1.ReasonMatched,
		fmt.Sprintf("matched AccessPolicies %q", names), now)

	// 4. The checks of every matched policy.
	checks := c.evaluateChecks(ctx, ar, pod)
	setCondition(&ar.Status.Conditions, v1alpha1.ConditionAccessCheckReady, checks.status, checks.reason, checks.message, now)
	switch checks.status {
	case metav1.ConditionFalse:
		setCondition(&ar.Status.Conditions, v1alpha1.ConditionAccessPermissionSync, metav1.ConditionFalse, checks.reason, checks.message, now)
		if _, err := c.revoke(ctx, key); err != nil {
			return false, err
		}
		// A rejection is final; a failed check is retried.
		return checks.reason != v1alpha1.ReasonRejected, nil
	case metav1.ConditionUnknown:
		setCondition(&ar.Status.Conditions, v1alpha1.ConditionAccessPermissionSync, metav1.ConditionUnknown, v1alpha1.ReasonPending, "waiting for the checks", now)
		return true, nil
	}

	// 5. The grant: a Role and RoleBinding for the pod-scoped permission.
	if err := c.grant(ctx, ar, pod); err != nil {
		var bad *templateError
		if !asTemplateError(err, &bad) {
			return false, err
		}
		setCondition(&ar.Status.Conditions, v1alpha1.ConditionAccessPermissionSync, metav1.ConditionFalse, v1alpha1.ReasonSyncFailed, bad.Error(), now)
		for i := range ar.Status.Policies {
			ar.Status.Policies[i].PermissionSync = syncCondition(ar.Status.Policies[i].PermissionSync, ar, metav1.ConditionFalse, v1alpha1.ReasonSyncFailed, bad.Error(), now)
		}
		return true, nil
	}
	msg = fmt.Sprintf("Role and RoleBinding %s grant %s get on connectors/%s for connector %q",
		grantName(ar), ar.Spec.Subject.Name, v1alpha1.PodProxySubresource(pod.Namespace, pod.Name), conn.Name)
	setCondition(&ar.Status.Conditions, v1alpha1.ConditionAccessPermissionSync, metav1.ConditionTrue, v1alpha1.ReasonSynced, msg, now)
	for i := range ar.Status.Policies {
		ar.Status.Policies[i].PermissionSync = syncCondition(ar.Status.Policies[i].PermissionSync, ar, metav1.ConditionTrue, v1alpha1.ReasonSynced, msg, now)
	}
	return true, nil
}

// contextPod returns the request's pod when it is valid and live, else nil
// with the reason and message of ContextObjectValid.
func (c *Controller) contextPod(ctx context.Context, ar *v1alpha1.AccessRequest) (*corev1.Pod, string, string, error) {
	ref, sub := ar.Spec.Context.ObjectRef, ar.Spec.Subject
	switch {
	case ref.APIVersion != "v1" || ref.Kind != "Pod":
		return nil, v1alpha1.ReasonInvalid, fmt.Sprintf("spec.context.objectRef must be a v1 Pod, not %s %s", ref.APIVersion, ref.Kind), nil
	case ref.Name == "" || ref.Namespace == "":
		return nil, v1alpha1.ReasonInvalid, "spec.context.objectRef needs a name and a namespace", nil
	case sub.Kind != rbacv1.ServiceAccountKind || sub.Name == "" || sub.Namespace != ref.Namespace:
		return nil, v1alpha1.ReasonInvalid, "spec.subject must be a ServiceAccount of the pod's namespace", nil
	}
	pod := &corev1.Pod{}
	err := c.opts.Client.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, pod)
	if apierrors.IsNotFound(err) {
		return nil, v1alpha1.ReasonNotFound, fmt.Sprintf("pod %s/%s not found", ref.Namespace, ref.Name), nil
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("reading pod %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	switch {
	case ref.UID != "" && ref.UID != pod.UID:
		return nil, v1alpha1.ReasonNotFound, fmt.Sprintf("pod %s/%s with uid %s not found: another pod has its name", ref.Namespace, ref.Name, ref.UID), nil
	case pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return nil, v1alpha1.ReasonCompleted, fmt.Sprintf("pod %s/%s has ended", ref.Namespace, ref.Name), nil
	case sa != sub.Name:
		return nil, v1alpha1.ReasonInvalid, fmt.Sprintf("pod %s/%s runs as ServiceAccount %q, not the subject %q", ref.Namespace, ref.Name, sa, sub.Name), nil
	}
	return pod, "", fmt.Sprintf("pod %s/%s is running", ref.Namespace, ref.Name), nil
}

// cleanUp removes the grant for good: the request reaches its final state.
func (c *Controller) cleanUp(ctx context.Context, ar *v1alpha1.AccessRequest, why string) error {
	removed, err := c.revoke(ctx, client.ObjectKeyFromObject(ar))
	if err != nil {
		return err
	}
	if removed && c.recorder != nil {
		c.recorder.Eventf(ar, corev1.EventTypeNormal, v1alpha1.ReasonPermissionCleanUp, "removed the grant: %s", why)
	}
	setCondition(&ar.Status.Conditions, v1alpha1.ConditionAccessPermissionSync, metav1.ConditionTrue, v1alpha1.ReasonPermissionCleanUp,
		"the grant is removed: "+why, c.now())
	return nil
}

// matchPolicies snapshots the AccessPolicies of the request's namespace
// that have checkGrantedPermission and select the Connector.
func (c *Controller) matchPolicies(ctx context.Context, ar *v1alpha1.AccessRequest, conn *v1alpha1.Connector) error {
	var list v1alpha1.AccessPolicyList
	if err := c.opts.Client.List(ctx, &list, client.InNamespace(ar.Namespace)); err != nil {
		return fmt.Errorf("listing access policies in %s: %w", ar.Namespace, err)
	}
	for _, p := range list.Items {
		if p.Spec.CheckGrantedPermission == nil {
			continue
		}
		ok, err := selects(p.Spec.Connector, conn.Name, conn.Labels)
		if err != nil {
			c.opts.Log.Info("access policy has a bad connector selector; skipped", "accesspolicy", p.Namespace+"/"+p.Name, "error", err.Error())
			continue
		}
		if ok {
			ar.Status.Policies = append(ar.Status.Policies, v1alpha1.PolicyStatus{Name: p.Name, PolicySpec: *p.Spec.DeepCopy()})
		}
	}
	return nil
}

// selects reports whether sel (nil: all) selects the object name with labels.
func selects(sel *v1alpha1.ResourceSelector, name string, lbls map[string]string) (bool, error) {
	if sel == nil {
		return true, nil
	}
	if len(sel.Names) > 0 && !contains(sel.Names, name) {
		return false, nil
	}
	s, err := metav1.LabelSelectorAsSelector(&sel.LabelSelector)
	if err != nil {
		return false, err
	}
	return s.Matches(labels.Set(lbls)), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (c *Controller) now() metav1.Time { return metav1.NewTime(c.opts.Now().UTC().Truncate(1e9)) }

// setCondition sets a condition, keeping its transition time when its
// status does not change.
func setCondition(conds *[]v1alpha1.Condition, t string, status metav1.ConditionStatus, reason, msg string, now metav1.Time) {
	for i := range *conds {
		c := &(*conds)[i]
		if c.Type != t {
			continue
		}
		if c.Status != string(status) {
			c.LastTransitionTime = &now
		}
		c.Status, c.Reason, c.Message = string(status), reason, msg
		return
	}
	*conds = append(*conds, v1alpha1.Condition{Type: t, Status: string(status), Reason: reason, Message: msg, LastTransitionTime: &now})
}

// readyFrom are the conditions Ready sums up, in order.
var readyFrom = []string{
	v1alpha1.ConditionContextObjectValid,
	v1alpha1.ConditionConnectorResolved,
	v1alpha1.ConditionAccessPolicyMatched,
	v1alpha1.ConditionAccessCheckReady,
	v1alpha1.ConditionAccessPermissionSync,
}

// setReady sets Ready: True when every condition above is True, else the
// first one that is not, with its reason and message.
func setReady(ar *v1alpha1.AccessRequest, now metav1.Time) {
	for _, t := range readyFrom {
		c := v1alpha1.FindCondition(ar.Status.Conditions, t)
		if c == nil {
			setCondition(&ar.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionUnknown, v1alpha1.ReasonPending, t+" is not evaluated yet", now)
			return
		}
		if c.Status != string(metav1.ConditionTrue) || c.Reason == v1alpha1.ReasonPermissionCleanUp {
			st := metav1.ConditionStatus(c.Status)
			if c.Reason == v1alpha1.ReasonPermissionCleanUp {
				st = metav1.ConditionFalse
			}
			setCondition(&ar.Status.Conditions, v1alpha1.ConditionReady, st, c.Reason, c.Message, now)
			return
		}
	}
	setCondition(&ar.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSynced, "the pod-scoped permission is granted", now)
}

// syncCondition is a policy's permissionSync, keeping its time when its
// status does not change.
func syncCondition(prev *metav1.Condition, ar *v1alpha1.AccessRequest, status metav1.ConditionStatus, reason, msg string, now metav1.Time) *metav1.Condition {
	if prev != nil && prev.Status == status {
		now = prev.LastTransitionTime
	}
	return &metav1.Condition{
		Type: v1alpha1.ConditionAccessPermissionSync, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: ar.Generation, LastTransitionTime: now,
	}
}
