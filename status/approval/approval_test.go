package approval_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status/approval"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// fixture is a real API server with the templates, a Connector, an
// approved ApprovalTask of PipelineRun pr-1 and a controller reconciled by
// hand.
type fixture struct {
	env  *apiserver.Env
	ctrl *approval.Controller
	sys  string
	ns   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := apiserver.RepoRoot()
	env := apiserver.Start(t, apiserver.Options{CRDDirs: []string{
		filepath.Join(root, "deploy", "base", "crds"),
		filepath.Join(root, "test", "standins", "approvaltask"),
	}})
	ctx := context.Background()
	cl, err := client.NewWithWatch(env.Config, client.Options{Scheme: apiserver.Scheme()})
	require.NoError(t, err)
	f := &fixture{env: env, sys: env.Namespace(t, "system"), ns: env.Namespace(t, "team")}
	templates, err := manifests.Load(filepath.Join(root, "deploy", "base", "approval-templates.yaml"))
	require.NoError(t, err)
	for _, u := range templates {
		u.SetNamespace(f.sys)
	}
	require.NoError(t, manifests.Create(ctx, env.Client, templates))
	require.NoError(t, env.Client.Create(ctx, &v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "prod"},
		Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: "oci", Address: "https://registry.example.com"},
	}))
	task := &unstructured.Unstructured{}
	task.SetAPIVersion("openshift-pipelines.org/v1alpha1")
	task.SetKind("ApprovalTask")
	task.SetNamespace(f.ns)
	task.SetName("approve")
	task.SetLabels(map[string]string{"tekton.dev/pipelineRun": "pr-1"})
	require.NoError(t, env.Client.Create(ctx, task))
	require.NoError(t, unstructured.SetNestedField(task.Object, "approved", "status", "state"))
	require.NoError(t, env.Client.Status().Update(ctx, task))
	f.ctrl, err = approval.New(approval.Options{Client: cl, Namespace: f.sys})
	require.NoError(t, err)
	return f
}

func (f *fixture) policy(t *testing.T, roleTemplate string) {
	t.Helper()
	require.NoError(t, f.env.Client.Create(context.Background(), &v1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "gate"},
		Spec: v1alpha1.AccessPolicySpec{CheckGrantedPermission: &v1alpha1.CheckGrantedPermission{Spec: v1alpha1.CheckGrantedPermissionSpec{
			Checks:       []v1alpha1.CheckRule{{Name: "manual", Ref: &v1alpha1.CheckRuleRef{ConfigMap: corev1.LocalObjectReference{Name: "connectors-approvals-in-pipeline"}}}},
			RoleTemplate: v1alpha1.RoleTemplate{Ref: &v1alpha1.RoleTemplateRef{ConfigMap: &corev1.LocalObjectReference{Name: roleTemplate}}},
		}}},
	}))
}

func (f *fixture) pod(t *testing.T, name, sa, run string) *corev1.Pod {
	t.Helper()
	f.env.ServiceAccount(t, f.ns, sa)
	p, err := f.env.Kube.CoreV1().Pods(f.ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tekton.dev/pipelineRun": run}},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "main", Image: "registry.invalid/main:1"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return p
}

// request creates an AccessRequest for pod as subject sa and reconciles
// it until it settles.
func (f *fixture) request(t *testing.T, pod *corev1.Pod, sa string) *v1alpha1.AccessRequest {
	t.Helper()
	ctx := context.Background()
	ar := kube.NewAccessRequest(kube.PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}, sa,
		types.NamespacedName{Namespace: f.ns, Name: "prod"})
	require.NoError(t, f.env.Client.Create(ctx, ar))
	key := client.ObjectKeyFromObject(ar)
	for range 3 {
		_, err := f.ctrl.Reconcile(ctx, key)
		require.NoError(t, err)
	}
	require.NoError(t, f.env.Client.Get(ctx, key, ar))
	return ar
}

func (f *fixture) noGrant(t *testing.T, ar *v1alpha1.AccessRequest) {
	t.Helper()
	err := f.env.Client.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: approval.GrantPrefix + ar.Name}, &rbacv1.Role{})
	require.True(t, apierrors.IsNotFound(err), "no Role is granted: %v", err)
}

func cond(ar *v1alpha1.AccessRequest, t string) v1alpha1.Condition {
	if c := v1alpha1.FindCondition(ar.Status.Conditions, t); c != nil {
		return *c
	}
	return v1alpha1.Condition{}
}

// TestApprovalControllerGrantsOnlyThePodScopedPermission: a role template
// that grants anything but get on connectors/proxy/v1/pod/<ns>/<pod>
// (here the Connector-wide connectors/proxy, and Secrets) fails the sync
// and grants nothing; the built-in one grants exactly that, for one
// Connector.
func TestApprovalControllerGrantsOnlyThePodScopedPermission(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	require.NoError(t, f.env.Client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.sys, Name: "too-broad"},
		Data: map[string]string{"rules": "- apiGroups: [connectors.alauda.io]\n  resources: [connectors/proxy]\n  verbs: ['*']\n" +
			"- apiGroups: ['']\n  resources: [secrets]\n  verbs: [get]\n"},
	}))
	f.policy(t, "too-broad")
	ar := f.request(t, f.pod(t, "build-1", "builder", "pr-1"), "builder")
	require.Equal(t, v1alpha1.ReasonPassed, cond(ar, v1alpha1.ConditionAccessCheckReady).Reason)
	sync := cond(ar, v1alpha1.ConditionAccessPermissionSync)
	require.Equal(t, v1alpha1.ReasonSyncFailed, sync.Reason, "%+v", sync)
	require.Contains(t, sync.Message, "resources must be the pod-scoped connectors/proxy/v1/pod/"+f.ns+"/build-1 only")
	require.NotEqual(t, "True", cond(ar, v1alpha1.ConditionReady).Status)
	f.noGrant(t, ar)

	// A template in another namespace is never read.
	require.NoError(t, f.env.Client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "local"},
		Data:       map[string]string{"rules": "- apiGroups: ['*']\n  resources: ['*']\n  verbs: ['*']\n"},
	}))
	policy := &v1alpha1.AccessPolicy{}
	require.NoError(t, f.env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "gate"}, policy))
	require.NoError(t, f.env.Client.Delete(ctx, policy))
	f.policy(t, "local")
	ar = f.request(t, f.pod(t, "build-2", "builder", "pr-1"), "builder")
	require.Equal(t, v1alpha1.ReasonSyncFailed, cond(ar, v1alpha1.ConditionAccessPermissionSync).Reason)
	require.Contains(t, cond(ar, v1alpha1.ConditionAccessPermissionSync).Message, "ConfigMap "+f.sys+"/local")
	f.noGrant(t, ar)

	require.NoError(t, f.env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "gate"}, policy))
	require.NoError(t, f.env.Client.Delete(ctx, policy))
	f.policy(t, "connectors-use-connectors-proxy-in-pod")
	ar = f.request(t, f.pod(t, "build-3", "builder", "pr-1"), "builder")
	require.Equal(t, "True", cond(ar, v1alpha1.ConditionReady).Status, "%+v", ar.Status.Conditions)
	role := &rbacv1.Role{}
	require.NoError(t, f.env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: approval.GrantPrefix + ar.Name}, role))
	require.Equal(t, []rbacv1.PolicyRule{{
		APIGroups: []string{"connectors.alauda.io"}, Resources: []string{"connectors/proxy/v1/pod/" + f.ns + "/build-3"},
		ResourceNames: []string{"prod"}, Verbs: []string{"*"},
	}}, role.Rules)
	binding := &rbacv1.RoleBinding{}
	require.NoError(t, f.env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: approval.GrantPrefix + ar.Name}, binding))
	require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "builder", Namespace: f.ns}}, binding.Subjects)
	require.Equal(t, ar.UID, metav1.GetControllerOf(role).UID, "the grant is owned by its request")
}

// TestApprovalControllerValidatesThePodContext: a request whose subject
// is not the pod's ServiceAccount, or whose pod is gone or replaced, or
// whose pod lacks the PipelineRun label the check needs, grants nothing.
func TestApprovalControllerValidatesThePodContext(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.policy(t, "connectors-use-connectors-proxy-in-pod")

	// Another ServiceAccount claims the approved pod's context.
	pod := f.pod(t, "build-1", "builder", "pr-1")
	f.env.ServiceAccount(t, f.ns, "intruder")
	ar := f.request(t, pod, "intruder")
	c := cond(ar, v1alpha1.ConditionContextObjectValid)
	require.Equal(t, "False", c.Status)
	require.Equal(t, v1alpha1.ReasonInvalid, c.Reason)
	require.Contains(t, c.Message, `runs as ServiceAccount "builder", not the subject "intruder"`)
	f.noGrant(t, ar)

	// A pod replaced by another of the same name.
	ghost := pod.DeepCopy()
	ghost.UID = "00000000-0000-0000-0000-000000000000"
	ar = f.request(t, ghost, "builder")
	require.Equal(t, v1alpha1.ReasonNotFound, cond(ar, v1alpha1.ConditionContextObjectValid).Reason)
	f.noGrant(t, ar)

	// A pod outside any PipelineRun can never be approved by it.
	lone := f.pod(t, "lone", "builder", "")
	ar = f.request(t, lone, "builder")
	c = cond(ar, v1alpha1.ConditionAccessCheckReady)
	require.Equal(t, v1alpha1.ReasonRejected, c.Reason, "%+v", ar.Status.Conditions)
	require.Contains(t, c.Message, "tekton.dev/pipelineRun")
	f.noGrant(t, ar)

	// A deleted pod's request ends; its grant with it.
	ok := f.request(t, f.pod(t, "build-2", "builder", "pr-1"), "builder")
	require.Equal(t, "True", cond(ok, v1alpha1.ConditionReady).Status)
	require.NoError(t, f.env.Kube.CoreV1().Pods(f.ns).Delete(ctx, "build-2", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	require.Eventually(t, func() bool {
		_, err := f.ctrl.Reconcile(ctx, client.ObjectKeyFromObject(ok))
		require.NoError(t, err)
		require.NoError(t, f.env.Client.Get(ctx, client.ObjectKeyFromObject(ok), ok))
		return cond(ok, v1alpha1.ConditionAccessPermissionSync).Reason == v1alpha1.ReasonPermissionCleanUp
	}, 30*time.Second, 100*time.Millisecond)
	f.noGrant(t, ok)
}
