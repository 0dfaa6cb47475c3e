package deploy_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// TestApprovalGrantPolicyOnARealAPIServer installs the node topology with
// the approval component's RBAC (escalate and bind on Roles) and writes
// Roles and RoleBindings with the status writer's own token: only the
// pod-scoped proxy grant for one Connector, bound to one ServiceAccount,
// and a policy's default grant of connectors/proxy on named Connectors,
// bound to ServiceAccounts and their groups, pass; nobody else may forge
// or change such a grant.
func TestApprovalGrantPolicyOnARealAPIServer(t *testing.T) {
	objs := kustomize(t, "overlays/node")
	component, err := manifests.Load(filepath.Join("components", "approval", "rbac.yaml"))
	require.NoError(t, err)
	env := apiserver.Start(t, apiserver.Options{})
	ctx := context.Background()
	require.NoError(t, manifests.Create(ctx, env.Client, append(slices.DeleteFunc(objs, func(u *unstructured.Unstructured) bool {
		return u.GetKind() == "CustomResourceDefinition"
	}), component...)))
	require.NoError(t, manifests.WaitForGrantPolicy(ctx, env.Client))
	ns := env.Namespace(t, "connectors")
	writer := clientFor(t, env, env.Token(t, "connectors-system", "connectors-node", nil, time.Hour))

	refused := func(err error, what string) {
		t.Helper()
		require.Error(t, err, "%s was allowed", what)
		require.True(t, apierrors.IsForbidden(err), "%s: %v", what, err)
		require.Contains(t, err.Error(), "connectors-node-access-grants", "%s: refused by the policy", what)
	}
	podRule := rbacv1.PolicyRule{
		APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connectors/proxy/v1/pod/team/build-1"},
		ResourceNames: []string{"prod-harbor"}, Verbs: []string{"*"},
	}

	// The grant the controller writes passes.
	_, err = writer.RbacV1().Roles(ns).Create(ctx, grantRole("connectors-access-a", podRule), metav1.CreateOptions{})
	require.NoError(t, err, "the status writer creates a pod-scoped grant")
	_, err = writer.RbacV1().RoleBindings(ns).Create(ctx, grantBinding("connectors-access-a", "Role", "connectors-access-a", saSubject("builder")), metav1.CreateOptions{})
	require.NoError(t, err, "the status writer binds it")

	// Anything broader is refused, though RBAC (escalate, bind) allows it.
	for what, rule := range map[string]rbacv1.PolicyRule{
		"the Connector-wide proxy permission": {APIGroups: podRule.APIGroups, Resources: []string{"connectors/proxy"}, ResourceNames: podRule.ResourceNames, Verbs: podRule.Verbs},
		"reading Secrets":                     {APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
		"every resource":                      {APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}},
		"another verb":                        {APIGroups: podRule.APIGroups, Resources: podRule.Resources, ResourceNames: podRule.ResourceNames, Verbs: []string{"delete"}},
		"every Connector":                     {APIGroups: podRule.APIGroups, Resources: podRule.Resources, Verbs: podRule.Verbs},
		"two Connectors":                      {APIGroups: podRule.APIGroups, Resources: podRule.Resources, ResourceNames: []string{"a", "b"}, Verbs: podRule.Verbs},
		"a pod-scoped path with a wildcard":   {APIGroups: podRule.APIGroups, Resources: []string{"connectors/proxy/v1/pod/team/*/x"}, ResourceNames: podRule.ResourceNames, Verbs: podRule.Verbs},
	} {
		_, err = writer.RbacV1().Roles(ns).Create(ctx, grantRole("connectors-access-bad", rule), metav1.CreateOptions{})
		refused(err, "granting "+what)
	}
	unlabelled := grantRole("connectors-access-plain", podRule)
	unlabelled.Labels = nil
	_, err = writer.RbacV1().Roles(ns).Create(ctx, unlabelled, metav1.CreateOptions{})
	refused(err, "creating an unlabelled Role")
	_, err = writer.RbacV1().Roles(ns).Create(ctx, grantRole("admin", podRule), metav1.CreateOptions{})
	refused(err, "creating a grant not named connectors-access-<request>")
	// RBAC itself refuses a ClusterRole: bind is granted on Roles only.
	_, err = writer.RbacV1().RoleBindings(ns).Create(ctx, grantBinding("connectors-access-a2", "ClusterRole", "cluster-admin", saSubject("builder")), metav1.CreateOptions{})
	require.True(t, apierrors.IsForbidden(err), "binding cluster-admin: %v", err)
	for what, b := range map[string]*rbacv1.RoleBinding{
		"binding another Role":         grantBinding("connectors-access-a3", "Role", "connectors-access-a", saSubject("builder")),
		"binding a user":               grantBinding("connectors-access-a4", "Role", "connectors-access-a4", rbacv1.Subject{Kind: "User", Name: "mallory", APIGroup: rbacv1.GroupName}),
		"binding two ServiceAccounts":  grantBinding("connectors-access-a5", "Role", "connectors-access-a5", saSubject("builder"), saSubject("other")),
		"binding the group of all SAs": grantBinding("connectors-access-a6", "Role", "connectors-access-a6", rbacv1.Subject{Kind: "Group", Name: "system:serviceaccounts", APIGroup: rbacv1.GroupName}),
	} {
		_, err = writer.RbacV1().RoleBindings(ns).Create(ctx, b, metav1.CreateOptions{})
		refused(err, what)
	}

	// Someone else's Role stays out of reach.
	_, err = env.Kube.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "team-admin"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	refused(writer.RbacV1().Roles(ns).Delete(ctx, "team-admin", metav1.DeleteOptions{}), "deleting another's Role")
	other, err := writer.RbacV1().Roles(ns).Get(ctx, "team-admin", metav1.GetOptions{})
	require.NoError(t, err)
	other.Labels = grantRole("x", podRule).Labels
	other.Rules = []rbacv1.PolicyRule{podRule}
	_, err = writer.RbacV1().Roles(ns).Update(ctx, other, metav1.UpdateOptions{})
	refused(err, "taking over another's Role")

	// Nobody else forges or widens a grant, the admin included.
	for who, c := range map[string]kubernetes.Interface{"the admin": env.Kube} {
		_, err = c.RbacV1().Roles(ns).Create(ctx, grantRole("connectors-access-forged", podRule), metav1.CreateOptions{})
		refused(err, who+" forging a grant")
		cur, err := c.RbacV1().Roles(ns).Get(ctx, "connectors-access-a", metav1.GetOptions{})
		require.NoError(t, err)
		cur.Rules[0].ResourceNames = nil
		_, err = c.RbacV1().Roles(ns).Update(ctx, cur, metav1.UpdateOptions{})
		refused(err, who+" widening a grant")
		b, err := c.RbacV1().RoleBindings(ns).Get(ctx, "connectors-access-a", metav1.GetOptions{})
		require.NoError(t, err)
		b.Subjects = append(b.Subjects, saSubject("other"))
		_, err = c.RbacV1().RoleBindings(ns).Update(ctx, b, metav1.UpdateOptions{})
		refused(err, who+" adding a subject to a grant")
	}

	// A policy's default grant: connectors/proxy on named Connectors, bound
	// to ServiceAccounts and their groups, and nothing broader.
	proxyRule := rbacv1.PolicyRule{
		APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connectors/proxy"},
		ResourceNames: []string{"dev", "dev-2"}, Verbs: []string{"*"},
	}
	_, err = writer.RbacV1().Roles(ns).Create(ctx, policyRole("connectors-policy-p", proxyRule), metav1.CreateOptions{})
	require.NoError(t, err, "the status writer creates a policy's default grant")
	_, err = writer.RbacV1().RoleBindings(ns).Create(ctx, policyBinding("connectors-policy-p", "connectors-policy-p", saSubject("builder"), saSubject("deployer"),
		rbacv1.Subject{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:team"},
		rbacv1.Subject{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts"}), metav1.CreateOptions{})
	require.NoError(t, err, "the status writer binds it to ServiceAccounts and their groups")
	for what, rule := range map[string]rbacv1.PolicyRule{
		"every Connector's proxy":             {APIGroups: proxyRule.APIGroups, Resources: proxyRule.Resources, Verbs: proxyRule.Verbs},
		"the proxy of the Connector named ''": {APIGroups: proxyRule.APIGroups, Resources: proxyRule.Resources, ResourceNames: []string{""}, Verbs: proxyRule.Verbs},
		"the Connector itself":                {APIGroups: proxyRule.APIGroups, Resources: []string{"connectors"}, ResourceNames: proxyRule.ResourceNames, Verbs: proxyRule.Verbs},
		"the Connectors API":                  {APIGroups: proxyRule.APIGroups, Resources: []string{"connectors/apis"}, ResourceNames: proxyRule.ResourceNames, Verbs: proxyRule.Verbs},
		"reading Secrets":                     {APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: proxyRule.ResourceNames, Verbs: []string{"get"}},
		"another verb":                        {APIGroups: proxyRule.APIGroups, Resources: proxyRule.Resources, ResourceNames: proxyRule.ResourceNames, Verbs: []string{"update"}},
	} {
		_, err = writer.RbacV1().Roles(ns).Create(ctx, policyRole("connectors-policy-bad", rule), metav1.CreateOptions{})
		refused(err, "a default grant of "+what)
	}
	_, err = writer.RbacV1().Roles(ns).Create(ctx, policyRole("connectors-access-p", proxyRule), metav1.CreateOptions{})
	refused(err, "a default grant not named connectors-policy-<policy>")
	_, err = writer.RbacV1().Roles(ns).Create(ctx, grantRole("connectors-policy-q", proxyRule), metav1.CreateOptions{})
	refused(err, "a request's grant of the Connector-wide proxy")
	for what, subject := range map[string]rbacv1.Subject{
		"a user":                 {Kind: "User", APIGroup: rbacv1.GroupName, Name: "mallory"},
		"every authenticated":    {Kind: "Group", APIGroup: rbacv1.GroupName, Name: "system:authenticated"},
		"the masters":            {Kind: "Group", APIGroup: rbacv1.GroupName, Name: "system:masters"},
		"a group named like one": {Kind: "Group", APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:team:x"},
	} {
		_, err = writer.RbacV1().RoleBindings(ns).Create(ctx, policyBinding("connectors-policy-b", "connectors-policy-b", saSubject("builder"), subject), metav1.CreateOptions{})
		refused(err, "a default grant to "+what)
	}
	_, err = writer.RbacV1().RoleBindings(ns).Create(ctx, policyBinding("connectors-policy-c", "connectors-policy-p", saSubject("builder")), metav1.CreateOptions{})
	refused(err, "a default grant binding another Role")
	cur, err := env.Kube.RbacV1().RoleBindings(ns).Get(ctx, "connectors-policy-p", metav1.GetOptions{})
	require.NoError(t, err)
	cur.Subjects = append(cur.Subjects, rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "mallory"})
	_, err = env.Kube.RbacV1().RoleBindings(ns).Update(ctx, cur, metav1.UpdateOptions{})
	refused(err, "the admin adding a subject to a default grant")
	require.NoError(t, writer.RbacV1().RoleBindings(ns).Delete(ctx, "connectors-policy-p", metav1.DeleteOptions{}))
	require.NoError(t, writer.RbacV1().Roles(ns).Delete(ctx, "connectors-policy-p", metav1.DeleteOptions{}))

	require.NoError(t, writer.RbacV1().RoleBindings(ns).Delete(ctx, "connectors-access-a", metav1.DeleteOptions{}), "the status writer removes its binding")
	require.NoError(t, writer.RbacV1().Roles(ns).Delete(ctx, "connectors-access-a", metav1.DeleteOptions{}), "the status writer removes its Role")
}

// TestApprovalGrantPolicyNamesTheStatusWriter pins that the grant policy
// names the status writer, and the chart's approval RBAC binds it, in
// each topology.
func TestApprovalGrantPolicyNamesTheStatusWriter(t *testing.T) {
	for _, dir := range []string{"overlays/node", "overlays/split"} {
		objs := kustomize(t, dir)
		vap := find[admissionregistrationv1.ValidatingAdmissionPolicy](t, objs, "ValidatingAdmissionPolicy", "connectors-node-access-grants")
		crb := find[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "connectors-node-status")
		s := crb.Subjects[0]
		require.Equal(t, "request.userInfo.username == 'system:serviceaccount:"+s.Namespace+":"+s.Name+"'", vap.Spec.Variables[0].Expression, dir)
	}
	for topology, sa := range map[string]string{"node": "connectors-node", "split": "connectors-proxy"} {
		objs := render(t, "topology="+topology, "namespace=platform", "approval.enabled=true")
		vap := find[admissionregistrationv1.ValidatingAdmissionPolicy](t, objs, "ValidatingAdmissionPolicy", "connectors-node-access-grants")
		require.Equal(t, "request.userInfo.username == 'system:serviceaccount:platform:"+sa+"'", vap.Spec.Variables[0].Expression, topology)
		crb := find[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "connectors-node-approval")
		require.Equal(t, rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: "platform"}, crb.Subjects[0], topology)
	}
	for _, u := range render(t) {
		require.NotContains(t, u.GetName(), "connectors-node-approval", "the approval RBAC is installed only with approval.enabled")
	}
}

func grantRole(name string, rule rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"app.kubernetes.io/managed-by": "connectors-node", v1alpha1.AccessRequestLabel: name,
		}},
		Rules: []rbacv1.PolicyRule{rule},
	}
}

func grantBinding(name, kind, role string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"app.kubernetes.io/managed-by": "connectors-node", v1alpha1.AccessRequestLabel: name,
		}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role},
		Subjects: subjects,
	}
}

func policyRole(name string, rule rbacv1.PolicyRule) *rbacv1.Role {
	r := grantRole(name, rule)
	r.Labels = map[string]string{"app.kubernetes.io/managed-by": "connectors-node", v1alpha1.AccessPolicyLabel: name}
	return r
}

func policyBinding(name, role string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	b := grantBinding(name, "Role", role, subjects...)
	b.Labels = map[string]string{"app.kubernetes.io/managed-by": "connectors-node", v1alpha1.AccessPolicyLabel: name}
	return b
}

func saSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: "team"}
}
