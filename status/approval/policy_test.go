package approval_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status/approval"
)

// defaultPolicy creates a policy of the fixture's namespace with a
// defaultPermission: the role template, bound to the ServiceAccount
// templates sats.
func (f *fixture) defaultPolicy(t *testing.T, name string, connector *v1alpha1.ResourceSelector, template string, sats ...v1alpha1.ServiceAccountTemplate) *v1alpha1.AccessPolicy {
	t.Helper()
	p := &v1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: v1alpha1.AccessPolicySpec{
			Connector: connector,
			DefaultPermission: &v1alpha1.DefaultPermission{
				RoleTemplate:    v1alpha1.RoleTemplate{Ref: &v1alpha1.RoleTemplateRef{ConfigMap: &corev1.LocalObjectReference{Name: template}}},
				BindingTemplate: v1alpha1.BindingTemplate{ServiceAccounts: sats},
			},
		},
	}
	require.NoError(t, f.env.Client.Create(context.Background(), p))
	return p
}

// reconcilePolicy reconciles the policy and reads it back.
func (f *fixture) reconcilePolicy(t *testing.T, name string) *v1alpha1.AccessPolicy {
	t.Helper()
	ctx := context.Background()
	key := client.ObjectKey{Namespace: f.ns, Name: name}
	require.NoError(t, f.ctrl.ReconcilePolicy(ctx, key))
	p := &v1alpha1.AccessPolicy{}
	require.NoError(t, f.env.Client.Get(ctx, key, p))
	return p
}

// mayUse asks the API server whether the ServiceAccount ns/sa may use the
// Connector name of the fixture's namespace through the proxy.
func (f *fixture) mayUse(t *testing.T, ns, sa, name string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:" + ns + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: f.ns, Verb: "get", Group: v1alpha1.GroupVersion.Group, Resource: v1alpha1.ConnectorResource,
			Subresource: v1alpha1.ProxySubresource, Name: name,
		},
	}}
	require.NoError(t, f.env.Client.Create(context.Background(), sar))
	return sar.Status.Allowed
}

func (f *fixture) policyGrant(t *testing.T, policy string) (*rbacv1.Role, *rbacv1.RoleBinding) {
	t.Helper()
	ctx := context.Background()
	key := client.ObjectKey{Namespace: f.ns, Name: approval.PolicyGrantPrefix + policy}
	role, binding := &rbacv1.Role{}, &rbacv1.RoleBinding{}
	err := f.env.Client.Get(ctx, key, role)
	if apierrors.IsNotFound(err) {
		require.True(t, apierrors.IsNotFound(f.env.Client.Get(ctx, key, binding)), "a RoleBinding without its Role")
		return nil, nil
	}
	require.NoError(t, err)
	require.NoError(t, f.env.Client.Get(ctx, key, binding))
	return role, binding
}

func policyCond(p *v1alpha1.AccessPolicy, t string) v1alpha1.Condition {
	if c := v1alpha1.FindCondition(p.Status.Conditions, t); c != nil {
		return *c
	}
	return v1alpha1.Condition{}
}

// TestApprovalDefaultPermissionGrantsTheMatchedConnectors: a policy's
// defaultPermission grants connectors/proxy on exactly the Connectors
// spec.connector selects, to the ServiceAccounts of its bindingTemplate
// that may read them, with no check; its status names the Connectors and
// says the grant is synced. A subject that may not read the Connectors
// (another namespace's) is left out; the grant follows the Connectors and
// the policy, and goes when the policy does.
func TestApprovalDefaultPermissionGrantsTheMatchedConnectors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	require.NoError(t, f.env.Client.Create(ctx, &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "dev", Labels: map[string]string{"env": "dev"}},
		Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: "oci", Address: "https://dev.example.com"},
	}))
	other := f.env.Namespace(t, "other")
	for _, sa := range []string{"builder", "deployer"} {
		f.env.ServiceAccount(t, f.ns, sa)
		f.env.AllowConnectors(t, f.ns, f.ns, sa)
	}
	f.env.ServiceAccount(t, other, "builder") // may not read the team's Connectors
	require.False(t, f.mayUse(t, f.ns, "builder", "dev"), "no proxy use before the policy")

	f.defaultPolicy(t, "dev-default", &v1alpha1.ResourceSelector{LabelSelector: metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}},
		"connectors-use-connectors-proxy", v1alpha1.ServiceAccountTemplate{
			Names:             []string{"builder"},
			NamespaceSelector: &v1alpha1.ResourceSelector{Names: []string{f.ns, other}},
		})
	var p *v1alpha1.AccessPolicy
	require.Eventually(t, func() bool { // RBAC reaches the authorizer through a cache
		p = f.reconcilePolicy(t, "dev-default")
		return policyCond(p, v1alpha1.ConditionPermissionSynced).Reason == v1alpha1.ReasonSynced
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, []corev1.LocalObjectReference{{Name: "dev"}}, p.Status.MatchedConnectors)
	for _, c := range []string{v1alpha1.ConditionConnectorsMatched, v1alpha1.ConditionPermissionSynced, v1alpha1.ConditionReady} {
		require.Equal(t, "True", policyCond(p, c).Status, "%s: %+v", c, p.Status.Conditions)
	}
	require.Equal(t, v1alpha1.ReasonSynced, policyCond(p, v1alpha1.ConditionPermissionSynced).Reason)
	require.Equal(t, p.Generation, p.Status.ObservedGeneration)
	role, binding := f.policyGrant(t, "dev-default")
	require.NotNil(t, role, "the default grant is synced")
	require.Equal(t, []rbacv1.PolicyRule{{
		APIGroups: []string{"connectors.alauda.io"}, Resources: []string{"connectors/proxy"},
		ResourceNames: []string{"dev"}, Verbs: []string{"*"},
	}}, role.Rules)
	require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: f.ns, Name: "builder"}}, binding.Subjects,
		"the other namespace's builder may not read the Connector: left out")
	require.Equal(t, p.UID, metav1.GetControllerOf(role).UID, "the grant is owned by its policy")
	require.True(t, f.mayUse(t, f.ns, "builder", "dev"), "the builder uses the dev Connector")
	require.False(t, f.mayUse(t, f.ns, "builder", "prod"), "not the Connector the policy does not select")
	require.False(t, f.mayUse(t, f.ns, "deployer", "dev"), "not a ServiceAccount the policy does not name")
	require.False(t, f.mayUse(t, other, "builder", "dev"), "not another namespace's ServiceAccount")

	// Every ServiceAccount of the namespace: its group, kept once the
	// group may read the Connectors.
	p.Spec.DefaultPermission.BindingTemplate.ServiceAccounts = []v1alpha1.ServiceAccountTemplate{{Names: []string{}, NamespaceSelector: &v1alpha1.ResourceSelector{Names: []string{f.ns}}}}
	require.NoError(t, f.env.Client.Update(ctx, p))
	p = f.reconcilePolicy(t, "dev-default")
	require.Equal(t, v1alpha1.ReasonNoPermissionRequired, policyCond(p, v1alpha1.ConditionPermissionSynced).Reason, "%+v", p.Status.Conditions)
	require.Contains(t, policyCond(p, v1alpha1.ConditionPermissionSynced).Message, "no subject")
	role, _ = f.policyGrant(t, "dev-default")
	require.Nil(t, role, "the group may not read the Connectors yet")
	require.NoError(t, f.env.Client.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "read-connectors"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connectors"}, Verbs: []string{"get"}}},
	}))
	require.NoError(t, f.env.Client.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "read-connectors"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-connectors"},
		Subjects:   []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:" + f.ns}},
	}))
	require.Eventually(t, func() bool { // RBAC reaches the authorizer through a cache
		p = f.reconcilePolicy(t, "dev-default")
		return policyCond(p, v1alpha1.ConditionPermissionSynced).Reason == v1alpha1.ReasonSynced
	}, 30*time.Second, 100*time.Millisecond)
	p.Spec.DefaultPermission.BindingTemplate.ServiceAccounts = []v1alpha1.ServiceAccountTemplate{{Names: []string{}, NamespaceSelector: &v1alpha1.ResourceSelector{Names: []string{f.ns}}}}
	require.NoError(t, f.env.Client.Update(ctx, p))
	p = f.reconcilePolicy(t, "dev-default")
	require.Equal(t, p.Generation, p.Status.ObservedGeneration)
	_, binding = f.policyGrant(t, "dev-default")
	require.Equal(t, []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:" + f.ns}}, binding.Subjects)
	require.True(t, f.mayUse(t, f.ns, "deployer", "dev"))

	// A second matching Connector joins the grant.
	require.NoError(t, f.env.Client.Create(ctx, &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "dev-2", Labels: map[string]string{"env": "dev"}},
		Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: "oci", Address: "https://dev2.example.com"},
	}))
	p = f.reconcilePolicy(t, "dev-default")
	require.Equal(t, []corev1.LocalObjectReference{{Name: "dev"}, {Name: "dev-2"}}, p.Status.MatchedConnectors)
	role, _ = f.policyGrant(t, "dev-default")
	require.Equal(t, []string{"dev", "dev-2"}, role.Rules[0].ResourceNames)

	// No Connector matched: nothing is granted (a Role without
	// resourceNames would grant them all).
	p.Spec.Connector = &v1alpha1.ResourceSelector{Names: []string{"none"}}
	require.NoError(t, f.env.Client.Update(ctx, p))
	p = f.reconcilePolicy(t, "dev-default")
	require.Empty(t, p.Status.MatchedConnectors)
	require.Equal(t, v1alpha1.ReasonNoPermissionRequired, policyCond(p, v1alpha1.ConditionPermissionSynced).Reason)
	role, _ = f.policyGrant(t, "dev-default")
	require.Nil(t, role, "no grant without a matched Connector")
	require.False(t, f.mayUse(t, f.ns, "builder", "dev"))

	// Without defaultPermission, and once deleted, the grant is gone.
	p.Spec.Connector = nil
	require.NoError(t, f.env.Client.Update(ctx, p))
	f.reconcilePolicy(t, "dev-default")
	role, _ = f.policyGrant(t, "dev-default")
	require.NotNil(t, role, "an empty spec.connector selects every Connector")
	require.Equal(t, []string{"dev", "dev-2", "prod"}, role.Rules[0].ResourceNames)
	p = f.reconcilePolicy(t, "dev-default")
	p.Spec.DefaultPermission = nil
	require.NoError(t, f.env.Client.Update(ctx, p))
	p = f.reconcilePolicy(t, "dev-default")
	require.Equal(t, v1alpha1.ReasonNoPermissionRequired, policyCond(p, v1alpha1.ConditionPermissionSynced).Reason)
	role, _ = f.policyGrant(t, "dev-default")
	require.Nil(t, role, "no defaultPermission, no grant")

	f.defaultPolicy(t, "gone", nil, "connectors-use-connectors-proxy", v1alpha1.ServiceAccountTemplate{
		Names: []string{"builder"}, NamespaceSelector: &v1alpha1.ResourceSelector{Names: []string{f.ns}},
	})
	f.reconcilePolicy(t, "gone")
	role, _ = f.policyGrant(t, "gone")
	require.NotNil(t, role)
	gone := &v1alpha1.AccessPolicy{}
	require.NoError(t, f.env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "gone"}, gone))
	require.NoError(t, f.env.Client.Delete(ctx, gone))
	require.NoError(t, f.ctrl.ReconcilePolicy(ctx, client.ObjectKeyFromObject(gone)))
	role, _ = f.policyGrant(t, "gone")
	require.Nil(t, role, "a deleted policy's grant is removed")
}

// TestApprovalDefaultPermissionGrantsOnlyTheProxy: a role template for a
// defaultPermission that grants anything but connectors/proxy (the
// Connector itself, Secrets, a wildcard, another verb, its own names)
// fails the sync and grants nothing; another's Role of the grant's name is
// left alone; a template outside the service's namespace is never read.
func TestApprovalDefaultPermissionGrantsOnlyTheProxy(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.env.ServiceAccount(t, f.ns, "builder")
	f.env.AllowConnectors(t, f.ns, f.ns, "builder")
	sat := v1alpha1.ServiceAccountTemplate{Names: []string{"builder"}, NamespaceSelector: &v1alpha1.ResourceSelector{Names: []string{f.ns}}}
	for name, rules := range map[string]string{
		"secrets":      "- apiGroups: ['']\n  resources: [secrets]\n  verbs: [get]\n",
		"connectors":   "- apiGroups: [connectors.alauda.io]\n  resources: [connectors]\n  verbs: ['*']\n",
		"wildcard":     "- apiGroups: [connectors.alauda.io]\n  resources: ['connectors/*']\n  verbs: ['*']\n",
		"verbs":        "- apiGroups: [connectors.alauda.io]\n  resources: [connectors/proxy]\n  verbs: [delete]\n",
		"named":        "- apiGroups: [connectors.alauda.io]\n  resources: [connectors/proxy]\n  resourceNames: [prod, other]\n  verbs: ['*']\n",
		"extra-groups": "- apiGroups: [connectors.alauda.io, '']\n  resources: [connectors/proxy]\n  verbs: ['*']\n",
	} {
		require.NoError(t, f.env.Client.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.sys, Name: name}, Data: map[string]string{"rules": rules},
		}))
		f.defaultPolicy(t, "p-"+name, nil, name, sat)
		p := f.reconcilePolicy(t, "p-"+name)
		c := policyCond(p, v1alpha1.ConditionPermissionSynced)
		require.Equal(t, "False", c.Status, "%s: %+v", name, c)
		require.Equal(t, v1alpha1.ReasonSyncFailed, c.Reason, name)
		require.Contains(t, c.Message, "ConfigMap "+f.sys+"/"+name, name)
		require.Equal(t, "False", policyCond(p, v1alpha1.ConditionReady).Status, name)
		role, _ := f.policyGrant(t, "p-"+name)
		require.Nil(t, role, "%s: nothing is granted", name)
	}
	// A Role of the grant's name that is not the controller's is neither
	// taken over nor deleted.
	foreign := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: approval.PolicyGrantPrefix + "p-foreign"}}
	require.NoError(t, f.env.Client.Create(ctx, foreign))
	f.defaultPolicy(t, "p-foreign", nil, "connectors-use-connectors-proxy", sat)
	p := f.reconcilePolicy(t, "p-foreign")
	require.Equal(t, v1alpha1.ReasonSyncFailed, policyCond(p, v1alpha1.ConditionPermissionSynced).Reason)
	require.Contains(t, policyCond(p, v1alpha1.ConditionPermissionSynced).Message, "is not owned by AccessPolicy p-foreign")
	require.NoError(t, f.env.Client.Get(ctx, client.ObjectKeyFromObject(foreign), foreign), "another's Role stays")
	require.Empty(t, foreign.Rules)

	require.NoError(t, f.env.Client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "local"},
		Data:       map[string]string{"rules": "- apiGroups: [connectors.alauda.io]\n  resources: [connectors/proxy]\n  verbs: ['*']\n"},
	}))
	f.defaultPolicy(t, "p-local", nil, "local", sat)
	p = f.reconcilePolicy(t, "p-local")
	require.Equal(t, v1alpha1.ReasonSyncFailed, policyCond(p, v1alpha1.ConditionPermissionSynced).Reason)
	require.Contains(t, policyCond(p, v1alpha1.ConditionPermissionSynced).Message, "ConfigMap "+f.sys+"/local")
	require.False(t, f.mayUse(t, f.ns, "builder", "prod"))
}
