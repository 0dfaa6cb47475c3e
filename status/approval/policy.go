package approval

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// PolicyGrantPrefix starts the name of the Role and RoleBinding of a
// policy's defaultPermission: connectors-policy-<policy>.
const PolicyGrantPrefix = "connectors-policy-"

// ReasonSubjectSkipped is the Warning Event on an AccessPolicy whose
// bindingTemplate names a subject that may not read the matched
// Connectors: it is left out of the grant.
const ReasonSubjectSkipped = "SubjectSkipped"

// The groups of every ServiceAccount, and of those of one namespace.
const (
	allServiceAccounts       = "system:serviceaccounts"
	serviceAccountsOfPrefix  = "system:serviceaccounts:"
	authenticatedGroup       = "system:authenticated"
	serviceAccountUserPrefix = "system:serviceaccount:"
)

// ReconcilePolicy brings one AccessPolicy's status and the grant of its
// defaultPermission up to date: the Connectors spec.connector selects
// (status.matchedConnectors), and a Role granting connectors/proxy on
// exactly those Connectors, bound to the ServiceAccounts of the
// bindingTemplate that may read them.
func (c *Controller) ReconcilePolicy(ctx context.Context, key types.NamespacedName) error {
	p := &v1alpha1.AccessPolicy{}
	if err := c.opts.Client.Get(ctx, key, p); err != nil {
		if apierrors.IsNotFound(err) {
			// The owner references remove the grant too, once the
			// garbage collector runs.
			_, err := c.revokePolicy(ctx, key)
			return err
		}
		return fmt.Errorf("reading access policy %s: %w", key, err)
	}
	before := p.Status.DeepCopy()
	if err := c.evaluatePolicy(ctx, p); err != nil {
		return err
	}
	setPolicyReady(p, c.now())
	p.Status.ObservedGeneration = p.Generation
	if !reflect.DeepEqual(before, &p.Status) {
		if err := c.opts.Client.Status().Update(ctx, p); err != nil {
			return fmt.Errorf("writing access policy %s status: %w", key, err)
		}
	}
	return nil
}

// evaluatePolicy matches the Connectors, then syncs the default grant,
// setting ConnectorsMatched and PermissionSynced.
func (c *Controller) evaluatePolicy(ctx context.Context, p *v1alpha1.AccessPolicy) error {
	now := c.now()
	key := client.ObjectKeyFromObject(p)
	synced := func(status metav1.ConditionStatus, reason, msg string) {
		setCondition(&p.Status.Conditions, v1alpha1.ConditionPermissionSynced, status, reason, msg, now)
	}
	// nothing removes the grant: status and reason say why.
	nothing := func(status metav1.ConditionStatus, reason, msg string) error {
		removed, err := c.revokePolicy(ctx, key)
		if err != nil {
			return err
		}
		if removed && c.recorder != nil {
			c.recorder.Eventf(p, corev1.EventTypeNormal, v1alpha1.ReasonPermissionCleanUp, "removed the default grant: %s", msg)
		}
		synced(status, reason, msg)
		return nil
	}

	var conns v1alpha1.ConnectorList
	if err := c.opts.Client.List(ctx, &conns, client.InNamespace(p.Namespace)); err != nil {
		return fmt.Errorf("listing connectors in %s: %w", p.Namespace, err)
	}
	var names []string
	for _, conn := range conns.Items {
		ok, err := selects(p.Spec.Connector, conn.Name, conn.Labels)
		if err != nil {
			msg := fmt.Sprintf("spec.connector: %v", err)
			p.Status.MatchedConnectors = nil
			setCondition(&p.Status.Conditions, v1alpha1.ConditionConnectorsMatched, metav1.ConditionFalse, v1alpha1.ReasonInvalid, msg, now)
			return nothing(metav1.ConditionFalse, v1alpha1.ReasonSyncFailed, "nothing is granted: "+msg)
		}
		if ok && conn.DeletionTimestamp == nil {
			names = append(names, conn.Name)
		}
	}
	slices.Sort(names)
	p.Status.MatchedConnectors = nil
	for _, n := range names {
		p.Status.MatchedConnectors = append(p.Status.MatchedConnectors, corev1.LocalObjectReference{Name: n})
	}
	setCondition(&p.Status.Conditions, v1alpha1.ConditionConnectorsMatched, metav1.ConditionTrue, v1alpha1.ReasonMatched,
		fmt.Sprintf("spec.connector selects %d Connectors", len(names)), now)

	dp := p.Spec.DefaultPermission
	switch {
	case dp == nil:
		return nothing(metav1.ConditionTrue, v1alpha1.ReasonNoPermissionRequired, "the policy has no defaultPermission")
	case len(names) == 0:
		// A Role without resourceNames would grant every Connector.
		return nothing(metav1.ConditionTrue, v1alpha1.ReasonNoPermissionRequired, "spec.connector selects no Connector: nothing is granted by default")
	}
	grant, err := c.defaultGrant(ctx, p, names)
	var bad *templateError
	if errors.As(err, &bad) {
		return nothing(metav1.ConditionFalse, v1alpha1.ReasonSyncFailed, "nothing is granted: "+bad.Error())
	}
	if err != nil {
		return err
	}
	if len(grant.skipped) > 0 && c.recorder != nil {
		c.recorder.Eventf(p, corev1.EventTypeWarning, ReasonSubjectSkipped,
			"not granted connectors/proxy: %s may not get the Connectors %s of namespace %s", subjectNames(grant.skipped), strings.Join(names, ", "), p.Namespace)
	}
	if len(grant.binding.Subjects) == 0 {
		return nothing(metav1.ConditionTrue, v1alpha1.ReasonNoPermissionRequired,
			fmt.Sprintf("no subject of spec.defaultPermission.bindingTemplate may get the matched Connectors (%d left out)", len(grant.skipped)))
	}
	created, err := c.apply(ctx, grant.role, func(cur, want client.Object) bool {
		return reflect.DeepEqual(cur.(*rbacv1.Role).Rules, want.(*rbacv1.Role).Rules)
	}, func(cur, want client.Object) { cur.(*rbacv1.Role).Rules = want.(*rbacv1.Role).Rules })
	if errors.As(err, &bad) {
		return nothing(metav1.ConditionFalse, v1alpha1.ReasonSyncFailed, "nothing is granted: "+bad.Error())
	}
	if err != nil {
		return err
	}
	if _, err := c.apply(ctx, grant.binding, func(cur, want client.Object) bool {
		return reflect.DeepEqual(cur.(*rbacv1.RoleBinding).Subjects, want.(*rbacv1.RoleBinding).Subjects)
	}, func(cur, want client.Object) {
		cur.(*rbacv1.RoleBinding).Subjects = want.(*rbacv1.RoleBinding).Subjects
	}); errors.As(err, &bad) {
		return nothing(metav1.ConditionFalse, v1alpha1.ReasonSyncFailed, "nothing is granted: "+bad.Error())
	} else if err != nil {
		return err
	}
	msg := fmt.Sprintf("Role and RoleBinding %s grant %s connectors/proxy on %s", grant.role.Name,
		subjectNames(grant.binding.Subjects), strings.Join(names, ", "))
	if created && c.recorder != nil {
		c.recorder.Event(p, corev1.EventTypeNormal, v1alpha1.ReasonSynced, msg)
	}
	synced(metav1.ConditionTrue, v1alpha1.ReasonSynced, msg)
	return nil
}

// defaultGrant is a policy's Role and RoleBinding, and the subjects of its
// bindingTemplate left out because they may not read the Connectors.
type defaultGrant struct {
	role    *rbacv1.Role
	binding *rbacv1.RoleBinding
	skipped []rbacv1.Subject
}

// defaultGrant renders the defaultPermission of p for the Connectors names.
func (c *Controller) defaultGrant(ctx context.Context, p *v1alpha1.AccessPolicy, names []string) (*defaultGrant, error) {
	dp := p.Spec.DefaultPermission
	name := PolicyGrantPrefix + p.Name
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, &templateError{fmt.Sprintf("the grant's name %s: %s", name, strings.Join(errs, "; "))}
	}
	ref := dp.RoleTemplate.Ref
	if ref == nil || ref.ConfigMap == nil || ref.ConfigMap.Name == "" {
		return nil, &templateError{"spec.defaultPermission.roleTemplate.ref.configMap.name is required"}
	}
	rules, err := c.defaultRules(ctx, ref.ConfigMap.Name, names)
	if err != nil {
		return nil, err
	}
	subjects, err := c.defaultSubjects(ctx, dp.BindingTemplate)
	if err != nil {
		return nil, err
	}
	g := &defaultGrant{}
	var kept []rbacv1.Subject
	for _, s := range subjects {
		ok, err := c.mayGetAny(ctx, p.Namespace, names, s)
		if err != nil {
			return nil, err
		}
		if ok {
			kept = append(kept, s)
		} else {
			g.skipped = append(g.skipped, s)
		}
	}
	owner := metav1.OwnerReference{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "AccessPolicy", Name: p.Name, UID: p.UID,
		Controller: ptr(true), BlockOwnerDeletion: ptr(false),
	}
	meta := metav1.ObjectMeta{
		Namespace: p.Namespace, Name: name,
		Labels:          map[string]string{ManagedByLabel: ManagedByValue, v1alpha1.AccessPolicyLabel: p.Name},
		OwnerReferences: []metav1.OwnerReference{owner},
	}
	g.role = &rbacv1.Role{ObjectMeta: meta, Rules: rules}
	g.binding = &rbacv1.RoleBinding{
		ObjectMeta: *meta.DeepCopy(),
		Subjects:   kept,
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
	}
	return g, nil
}

// defaultRules reads a role template from the service's namespace. The
// default grant is connectors/proxy only, get or *, and each rule is
// limited to the matched Connectors by resourceNames.
func (c *Controller) defaultRules(ctx context.Context, name string, connectors []string) ([]rbacv1.PolicyRule, error) {
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
	want := v1alpha1.ConnectorResource + "/" + v1alpha1.ProxySubresource
	for i := range rules {
		r := &rules[i]
		switch {
		case !slices.Equal(r.APIGroups, []string{v1alpha1.GroupVersion.Group}):
			return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s rule %d: apiGroups must be [%s]", c.opts.Namespace, name, i, v1alpha1.GroupVersion.Group)}
		case !slices.Equal(r.Resources, []string{want}):
			return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s rule %d: a default permission grants resources [%s] only", c.opts.Namespace, name, i, want)}
		case len(r.Verbs) == 0 || slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "*" && v != "get" }):
			return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s rule %d: verbs must be get or *", c.opts.Namespace, name, i)}
		case len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0:
			return nil, &templateError{fmt.Sprintf("ConfigMap %s/%s rule %d: nonResourceURLs and resourceNames are not allowed", c.opts.Namespace, name, i)}
		}
		r.ResourceNames = slices.Clone(connectors)
	}
	return rules, nil
}

// defaultSubjects expands a bindingTemplate as upstream does: names in
// the selected namespaces are ServiceAccounts; no names is the group of
// every ServiceAccount of each selected namespace; no names and an empty
// (or no) namespaceSelector is the group of every ServiceAccount. An
// empty name in names counts as none.
func (c *Controller) defaultSubjects(ctx context.Context, bt v1alpha1.BindingTemplate) ([]rbacv1.Subject, error) {
	var namespaces []corev1.Namespace
	listed := false
	var out []rbacv1.Subject
	add := func(s rbacv1.Subject) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for i, sat := range bt.ServiceAccounts {
		names := slices.DeleteFunc(slices.Clone(sat.Names), func(n string) bool { return n == "" })
		all := sat.NamespaceSelector == nil || emptySelector(sat.NamespaceSelector)
		if all && len(names) == 0 {
			add(rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: allServiceAccounts})
			continue
		}
		if !listed {
			var list corev1.NamespaceList
			if err := c.opts.Client.List(ctx, &list); err != nil {
				return nil, fmt.Errorf("listing namespaces: %w", err)
			}
			namespaces, listed = list.Items, true
		}
		for _, ns := range namespaces {
			if ns.DeletionTimestamp != nil {
				continue
			}
			if !all {
				ok, err := selects(sat.NamespaceSelector, ns.Name, ns.Labels)
				if err != nil {
					return nil, &templateError{fmt.Sprintf("spec.defaultPermission.bindingTemplate.serviceAccounts[%d].namespaceSelector: %v", i, err)}
				}
				if !ok {
					continue
				}
			}
			if len(names) == 0 {
				add(rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: serviceAccountsOfPrefix + ns.Name})
				continue
			}
			for _, n := range names {
				add(rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns.Name, Name: n})
			}
		}
	}
	slices.SortFunc(out, func(a, b rbacv1.Subject) int {
		return strings.Compare(a.Kind+"/"+a.Namespace+"/"+a.Name, b.Kind+"/"+b.Namespace+"/"+b.Name)
	})
	return out, nil
}

func emptySelector(s *v1alpha1.ResourceSelector) bool {
	return len(s.Names) == 0 && len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// mayGetAny asks the API server whether the subject may get the
// Connectors of namespace, or at least one of names: upstream grants the
// proxy only to subjects that may already read the Connector, so that a
// policy cannot reach across the namespace and project boundaries.
func (c *Controller) mayGetAny(ctx context.Context, namespace string, names []string, s rbacv1.Subject) (bool, error) {
	for _, name := range append([]string{""}, names...) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Verb: "get", Group: v1alpha1.GroupVersion.Group,
				Resource: v1alpha1.ConnectorResource, Name: name,
			},
		}}
		switch {
		case s.Kind == rbacv1.ServiceAccountKind:
			sar.Spec.User = serviceAccountUserPrefix + s.Namespace + ":" + s.Name
			sar.Spec.Groups = []string{allServiceAccounts, serviceAccountsOfPrefix + s.Namespace, authenticatedGroup}
		case s.Name == allServiceAccounts:
			sar.Spec.Groups = []string{allServiceAccounts, authenticatedGroup}
		default:
			sar.Spec.Groups = []string{allServiceAccounts, s.Name, authenticatedGroup}
		}
		if err := c.opts.Client.Create(ctx, sar); err != nil {
			return false, fmt.Errorf("asking whether %s may get connectors in %s: %w", subjectNames([]rbacv1.Subject{s}), namespace, err)
		}
		if sar.Status.Allowed {
			return true, nil
		}
	}
	return false, nil
}

// subjectNames names subjects for a message: ServiceAccount ns/name,
// Group name.
func subjectNames(subjects []rbacv1.Subject) string {
	parts := make([]string, len(subjects))
	for i, s := range subjects {
		if s.Kind == rbacv1.ServiceAccountKind {
			parts[i] = "ServiceAccount " + s.Namespace + "/" + s.Name
		} else {
			parts[i] = s.Kind + " " + s.Name
		}
	}
	return strings.Join(parts, ", ")
}

// revokePolicy deletes a policy's default grant; removed says whether
// there was anything to delete.
func (c *Controller) revokePolicy(ctx context.Context, key types.NamespacedName) (removed bool, err error) {
	removed, err = c.deleteGrant(ctx, key.Namespace, PolicyGrantPrefix+key.Name, v1alpha1.AccessPolicyLabel, key.Name)
	if removed {
		c.opts.Log.Info("default grant removed", "accesspolicy", key.String())
	}
	return removed, err
}

// policyReadyFrom are the conditions a policy's Ready sums up, in order.
var policyReadyFrom = []string{v1alpha1.ConditionConnectorsMatched, v1alpha1.ConditionPermissionSynced}

// setPolicyReady sets Ready: True when every condition above is True, else
// the first one that is not, with its reason and message.
func setPolicyReady(p *v1alpha1.AccessPolicy, now metav1.Time) {
	for _, t := range policyReadyFrom {
		c := v1alpha1.FindCondition(p.Status.Conditions, t)
		if c == nil {
			setCondition(&p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionUnknown, v1alpha1.ReasonPending, t+" is not evaluated yet", now)
			return
		}
		if c.Status != string(metav1.ConditionTrue) {
			setCondition(&p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionStatus(c.Status), c.Reason, c.Message, now)
			return
		}
	}
	setCondition(&p.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSynced, "the policy is applied", now)
}
