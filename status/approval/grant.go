package approval

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// ManagedByLabel and ManagedByValue mark the Roles and RoleBindings the
// controller generates; the admission policy in deploy/ keeps them its own.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "connectors-node"
	// GrantPrefix starts the name of every generated Role and RoleBinding.
	GrantPrefix = "connectors-access-"
)

// templateError is a role template that cannot be granted: the request
// records it, nothing is granted.
type templateError struct{ msg string }

func (e *templateError) Error() string { return e.msg }

func asTemplateError(err error, target **templateError) bool { return errors.As(err, target) }

// grantName names the Role and RoleBinding of a request.
func grantName(ar *v1alpha1.AccessRequest) string { return GrantPrefix + ar.Name }

// grant creates or updates the request's Role and RoleBinding: the rules of
// every matched policy's role template, rendered for the pod, each limited
// to the Connector by resourceNames, bound to the subject.
func (c *Controller) grant(ctx context.Context, ar *v1alpha1.AccessRequest, pod *corev1.Pod) error {
	var rules []rbacv1.PolicyRule
	for _, p := range ar.Status.Policies {
		cg := p.PolicySpec.CheckGrantedPermission
		if cg == nil || cg.Spec.RoleTemplate.Ref == nil || cg.Spec.RoleTemplate.Ref.ConfigMap == nil || cg.Spec.RoleTemplate.Ref.ConfigMap.Name == "" {
			return &templateError{fmt.Sprintf("AccessPolicy %s: checkGrantedPermission.spec.roleTemplate.ref.configMap.name is required", p.Name)}
		}
		rs, err := c.roleRules(ctx, cg.Spec.RoleTemplate.Ref.ConfigMap.Name, ar, pod)
		if err != nil {
			return err
		}
		rules = append(rules, rs...)
	}
	owner := metav1.OwnerReference{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "AccessRequest", Name: ar.Name, UID: ar.UID,
		Controller: ptr(true), BlockOwnerDeletion: ptr(false),
	}
	meta := metav1.ObjectMeta{
		Namespace: ar.Namespace, Name: grantName(ar),
		Labels:          map[string]string{ManagedByLabel: ManagedByValue, v1alpha1.AccessRequestLabel: ar.Name},
		OwnerReferences: []metav1.OwnerReference{owner},
	}
	role := &rbacv1.Role{ObjectMeta: meta, Rules: rules}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: *meta.DeepCopy(),
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: ar.Spec.Subject.Name, Namespace: ar.Spec.Subject.Namespace}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
	}
	created, err := c.apply(ctx, role, func(cur, want client.Object) bool {
		return reflect.DeepEqual(cur.(*rbacv1.Role).Rules, want.(*rbacv1.Role).Rules)
	}, func(cur, want client.Object) { cur.(*rbacv1.Role).Rules = want.(*rbacv1.Role).Rules })
	if err != nil {
		return err
	}
	if _, err := c.apply(ctx, binding, func(cur, want client.Object) bool {
		return reflect.DeepEqual(cur.(*rbacv1.RoleBinding).Subjects, want.(*rbacv1.RoleBinding).Subjects)
	}, func(cur, want client.Object) {
		cur.(*rbacv1.RoleBinding).Subjects = want.(*rbacv1.RoleBinding).Subjects
	}); err != nil {
		return err
	}
	if created && c.recorder != nil {
		c.recorder.Eventf(ar, corev1.EventTypeNormal, v1alpha1.ReasonSynced,
			"granted %s/%s get on connectors/%s for connector %s", ar.Spec.Subject.Namespace, ar.Spec.Subject.Name,
			v1alpha1.PodProxySubresource(pod.Namespace, pod.Name), ar.Spec.ConnectorRef.Name)
	}
	return nil
}

// apply creates want or, when the existing object differs, updates it.
// created says whether it was created.
func (c *Controller) apply(ctx context.Context, want client.Object, same func(cur, want client.Object) bool, copyInto func(cur, want client.Object)) (bool, error) {
	cur := want.DeepCopyObject().(client.Object)
	err := c.opts.Client.Get(ctx, client.ObjectKeyFromObject(want), cur)
	if apierrors.IsNotFound(err) {
		if err := c.opts.Client.Create(ctx, want); err != nil {
			return false, fmt.Errorf("creating %T %s: %w", want, client.ObjectKeyFromObject(want), err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %T %s: %w", want, client.ObjectKeyFromObject(want), err)
	}
	if ref := metav1.GetControllerOf(cur); ref == nil || ref.UID != want.GetOwnerReferences()[0].UID {
		owner := want.GetOwnerReferences()[0]
		return false, &templateError{fmt.Sprintf("%s %s exists and is not owned by %s %s", kindOf(want), client.ObjectKeyFromObject(want), owner.Kind, owner.Name)}
	}
	if same(cur, want) {
		return false, nil
	}
	copyInto(cur, want)
	if err := c.opts.Client.Update(ctx, cur); err != nil {
		return false, fmt.Errorf("updating %T %s: %w", want, client.ObjectKeyFromObject(want), err)
	}
	return false, nil
}

// roleRules reads a role template (data.rules, a YAML list of PolicyRules)
// from the service's namespace and renders it for the pod. Every rule must
// name only the pod-scoped proxy permission of this very pod in the
// connectors group; each is limited to the Connector.
func (c *Controller) roleRules(ctx context.Context, name string, ar *v1alpha1.AccessRequest, pod *corev1.Pod) ([]rbacv1.PolicyRule, error) {
	data, err := c.template(ctx, name, "rules")
	if err != nil {
		return nil, &templateError{err.Error()}
	}
	var rules []rbacv1.PolicyRule
	if err := yaml.UnmarshalStrict([]byte(data), &rules); err != nil {
		return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s data.rules: %v", c.opts.Namespace, name, err)}
	}
	if len(rules) == 0 {
		return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s data.rules is empty", c.opts.Namespace, name)}
	}
	input, err := runtime.DefaultUnstructuredConverter.ToUnstructured(pod)
	if err != nil {
		return nil, err
	}
	data2 := map[string]any{"object": input}
	want := v1alpha1.ConnectorResource + "/" + v1alpha1.PodProxySubresource(pod.Namespace, pod.Name)
	for i := range rules {
		r := &rules[i]
		for j, res := range r.Resources {
			if r.Resources[j], err = expand(res, data2); err != nil {
				return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s rule %d resource: %v", c.opts.Namespace, name, i, err)}
			}
		}
		switch {
		case !slices.Equal(r.APIGroups, []string{v1alpha1.GroupVersion.Group}):
			return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s rule %d: apiGroups must be [%s]", c.opts.Namespace, name, i, v1alpha1.GroupVersion.Group)}
		case len(r.Resources) == 0 || slices.ContainsFunc(r.Resources, func(s string) bool { return s != want }):
			return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s rule %d: resources must be the pod-scoped %s only", c.opts.Namespace, name, i, want)}
		case len(r.Verbs) == 0 || slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "*" && v != "get" }):
			return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s rule %d: verbs must be get or *", c.opts.Namespace, name, i)}
		case len(r.NonResourceURLs) > 0:
			return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s rule %d: nonResourceURLs are not allowed", c.opts.Namespace, name, i)}
		}
		r.ResourceNames = []string{ar.Spec.ConnectorRef.Name}
	}
	return rules, nil
}

// revoke deletes the request's Role and RoleBinding; removed says whether
// there was anything to delete.
func (c *Controller) revoke(ctx context.Context, key types.NamespacedName) (removed bool, err error) {
	removed, err = c.deleteGrant(ctx, key.Namespace, GrantPrefix+key.Name, v1alpha1.AccessRequestLabel, key.Name)
	if removed {
		c.opts.Log.Info("access grant removed", "accessrequest", key.String())
	}
	return removed, err
}

// deleteGrant deletes the RoleBinding and Role name of namespace when they
// carry the controller's labels for their owner (labelKey: owner); an
// object of that name that is not the controller's is left alone.
func (c *Controller) deleteGrant(ctx context.Context, namespace, name, labelKey, owner string) (removed bool, err error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	for _, obj := range []client.Object{&rbacv1.RoleBinding{}, &rbacv1.Role{}} {
		err := c.opts.Client.Get(ctx, key, obj)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("reading %s %s: %w", kindOf(obj), key, err)
		}
		if l := obj.GetLabels(); l[ManagedByLabel] != ManagedByValue || l[labelKey] != owner {
			c.opts.Log.Info("left alone: not the controller's grant", "kind", kindOf(obj), "name", key.String())
			continue
		}
		uid := obj.GetUID()
		err = c.opts.Client.Delete(ctx, obj, client.Preconditions{UID: &uid})
		switch {
		case err == nil:
			removed = true
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// Gone, or replaced since it was read: the next reconcile sees.
		default:
			return removed, fmt.Errorf("deleting %s %s: %w", kindOf(obj), key, err)
		}
	}
	return removed, nil
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *rbacv1.Role:
		return "Role"
	case *rbacv1.RoleBinding:
		return "RoleBinding"
	}
	return fmt.Sprintf("%T", obj)
}

func ptr[T any](v T) *T { return &v }
