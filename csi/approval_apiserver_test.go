package csi_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status/approval"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// approvalEnv is a real API server with the approval controller running,
// upstream's templates installed, a Connector that an AccessPolicy gates
// with the ApprovalTask check, and the CSI plugin with approval on.
type approvalEnv struct {
	t        *testing.T
	env      *apiserver.Env
	cl       client.WithWatch
	h        *harness
	reviewer *kube.Reviewer
	ns       string
}

const approvalConnector = "prod-harbor"

func startApproval(t *testing.T) *approvalEnv {
	t.Helper()
	root := apiserver.RepoRoot()
	env := apiserver.Start(t, apiserver.Options{CRDDirs: []string{
		filepath.Join(root, "deploy", "base", "crds"),
		filepath.Join(root, "test", "standins", "approvaltask"),
	}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cl, err := client.NewWithWatch(env.Config, client.Options{Scheme: apiserver.Scheme()})
	require.NoError(t, err)

	// Upstream's templates, in the service's namespace.
	sys := env.Namespace(t, "connectors-system")
	templates, err := manifests.Load(filepath.Join(root, "deploy", "base", "approval-templates.yaml"))
	require.NoError(t, err)
	for _, u := range templates {
		u.SetNamespace(sys)
	}
	require.NoError(t, manifests.Create(ctx, env.Client, templates))

	ns := env.Namespace(t, "devops")
	class := "oci-" + ns
	for _, obj := range []client.Object{
		&v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: class}},
		&v1alpha1.Connector{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: approvalConnector},
			Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: class, Address: "https://harbor.example.com"},
		},
		approvalPolicy(ns),
	} {
		require.NoError(t, env.Client.Create(ctx, obj))
	}
	env.ServiceAccount(t, ns, "builder")
	// The builder may read the Connector, not use it through the proxy.
	env.AllowConnectors(t, ns, ns, "builder")

	ctrl, err := approval.New(approval.Options{Client: cl, Events: env.Kube, Namespace: sys, CheckPeriod: 100 * time.Millisecond})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ctrl.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	cache, err := kube.NewCache(kube.CacheOptions{Config: env.Config})
	require.NoError(t, err)
	require.NoError(t, cache.Start(ctx))
	require.True(t, cache.WaitForSync(ctx))
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{
		Client: env.Kube, Audience: audience, ProxyPermission: true, PodProxyPermission: true, DenyTTL: time.Nanosecond,
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		err := reviewer.Authorize(ctx, kube.ServiceAccountUser(ns, "builder"), ns, approvalConnector)
		var fe *kube.ForbiddenError
		return errors.As(err, &fe) && fe.Resource == "connectors/proxy"
	}, time.Minute, 50*time.Millisecond, "RBAC lets the builder read the Connector")
	events, err := kube.NewEventRecorder(ctx, env.Kube, csi.DriverName)
	require.NoError(t, err)
	t.Cleanup(events.Shutdown)

	h := newHarness(t, func(o *csi.Options) {
		o.Objects = cache
		o.Authorizer = reviewer
		o.Approvals = &kube.AccessRequests{Client: cl}
		o.Events = events
		o.Ready = cache.Synced
	})
	return &approvalEnv{t: t, env: env, cl: cl, h: h, reviewer: reviewer, ns: ns}
}

// approvalPolicy is upstream's example: prod-harbor needs the pipeline's
// ApprovalTask, then the pod gets the pod-scoped proxy permission.
func approvalPolicy(ns string) *v1alpha1.AccessPolicy {
	return &v1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prod-harbor-approval"},
		Spec: v1alpha1.AccessPolicySpec{
			Connector: &v1alpha1.ResourceSelector{Names: []string{approvalConnector}},
			CheckGrantedPermission: &v1alpha1.CheckGrantedPermission{Spec: v1alpha1.CheckGrantedPermissionSpec{
				Checks: []v1alpha1.CheckRule{{
					Name: "manual-approval",
					Ref:  &v1alpha1.CheckRuleRef{ConfigMap: corev1.LocalObjectReference{Name: "connectors-approvals-in-pipeline"}},
				}},
				RoleTemplate: v1alpha1.RoleTemplate{Ref: &v1alpha1.RoleTemplateRef{
					ConfigMap: &corev1.LocalObjectReference{Name: "connectors-use-connectors-proxy-in-pod"},
				}},
			}},
		},
	}
}

// pod runs a pod of the builder in the PipelineRun run.
func (a *approvalEnv) pod(name, run string) kubelet.Pod {
	a.t.Helper()
	ctx := context.Background()
	require.NoError(a.t, kubelet.RegisterNode(ctx, a.env.Kube, "node-1"))
	p, err := kubelet.RunPod(ctx, a.env.Kube, kubelet.Pod{Namespace: a.ns, Name: name, ServiceAccount: "builder"}, "node-1", "10.0.0.9")
	require.NoError(a.t, err)
	pod, err := a.env.Kube.CoreV1().Pods(a.ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(a.t, err)
	pod.Labels = map[string]string{"tekton.dev/pipelineRun": run}
	_, err = a.env.Kube.CoreV1().Pods(a.ns).Update(ctx, pod, metav1.UpdateOptions{})
	require.NoError(a.t, err)
	return p
}

// request is kubelet's publish of the pod's volume naming prod-harbor.
func (a *approvalEnv) request(p kubelet.Pod) *csipb.NodePublishVolumeRequest {
	a.t.Helper()
	tok, err := kubelet.MintToken(context.Background(), a.env.Kube, p, audience, 10*time.Minute)
	require.NoError(a.t, err)
	id := "vol-" + p.Name
	req := publishRequest(a.t, id, a.h.target(id))
	req.VolumeContext[csi.AttrPodNamespace] = a.ns
	req.VolumeContext[csi.AttrPodName] = p.Name
	req.VolumeContext[csi.AttrPodUID] = p.UID
	req.VolumeContext[csi.AttrServiceAccount] = "builder"
	req.VolumeContext[csi.AttrConnectors] = approvalConnector
	req.VolumeContext[csi.TokensKey] = tokensJSON(a.t, audience, tok.Token, tok.ExpirationTimestamp)
	return req
}

// approvalTask creates the PipelineRun's ApprovalTask and, as the
// manual-approval-gate controller would, writes its state.
func (a *approvalEnv) approvalTask(run, state string) {
	a.t.Helper()
	ctx := context.Background()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("openshift-pipelines.org/v1alpha1")
	u.SetKind("ApprovalTask")
	u.SetNamespace(a.ns)
	u.SetName("approve-" + run)
	u.SetLabels(map[string]string{"tekton.dev/pipelineRun": run})
	require.NoError(a.t, a.env.Client.Create(ctx, u))
	a.setApprovalState(run, state)
}

func (a *approvalEnv) setApprovalState(run, state string) {
	a.t.Helper()
	ctx := context.Background()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("openshift-pipelines.org/v1alpha1")
	u.SetKind("ApprovalTask")
	require.NoError(a.t, a.env.Client.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: "approve-" + run}, u))
	require.NoError(a.t, unstructured.SetNestedField(u.Object, state, "status", "state"))
	require.NoError(a.t, a.env.Client.Status().Update(ctx, u))
}

// accessRequest is the one AccessRequest of the pod.
func (a *approvalEnv) accessRequest(p kubelet.Pod) *v1alpha1.AccessRequest {
	a.t.Helper()
	var list v1alpha1.AccessRequestList
	require.NoError(a.t, a.env.Client.List(context.Background(), &list, client.InNamespace(a.ns),
		client.MatchingLabels{v1alpha1.ContextObjectNameLabel: p.Name}))
	require.Len(a.t, list.Items, 1, "one AccessRequest for pod %s", p.Name)
	return &list.Items[0]
}

func condition(ar *v1alpha1.AccessRequest, t string) v1alpha1.Condition {
	if c := v1alpha1.FindCondition(ar.Status.Conditions, t); c != nil {
		return *c
	}
	return v1alpha1.Condition{}
}

// proxyAllows is the proxy's admission decision for a request carrying
// the pod's bound token: TokenReview, then the access review.
func (a *approvalEnv) proxyAllows(p kubelet.Pod) error {
	a.t.Helper()
	ctx := context.Background()
	tok, err := kubelet.MintToken(ctx, a.env.Kube, p, audience, 10*time.Minute)
	require.NoError(a.t, err)
	user, err := a.reviewer.Authenticate(ctx, tok.Token)
	require.NoError(a.t, err)
	require.Equal(a.t, []string{p.Name}, user.Extra[kube.ExtraPodName], "the token is bound to its pod")
	return a.reviewer.Authorize(ctx, user, a.ns, approvalConnector)
}

// TestApprovalPendingApprovedAndPodEnd walks upstream's flow for one pod:
// the publish waits (Unavailable, a clear message and Event) while the
// ApprovalTask is pending, mounts once it is approved, and the proxy then
// serves that pod and no other pod of the same ServiceAccount; when the
// pod ends the grant is gone.
func TestApprovalPendingApprovedAndPodEnd(t *testing.T) {
	a := startApproval(t)
	ctx := context.Background()
	build := a.pod("build-1", "pr-1")
	sibling := a.pod("build-2", "pr-other")
	req := a.request(build)

	// Pending: no ApprovalTask yet, then one that waits.
	err := a.h.publish(ctx, req)
	require.Equal(t, codes.Unavailable, status.Code(err), "a pending approval is retryable: %v", err)
	msg := status.Convert(err).Message()
	assert.Contains(t, msg, "waiting for approval")
	assert.Contains(t, msg, "AccessRequest "+a.ns+"/")
	assertNoVolume(t, a.h.mounter, req.TargetPath)
	ar := a.accessRequest(build)
	assert.Equal(t, rbacv1.Subject{Kind: "ServiceAccount", Name: "builder", Namespace: a.ns}, ar.Spec.Subject)
	assert.Equal(t, build.UID, string(ar.Spec.Context.ObjectRef.UID))
	a.approvalTask("pr-1", "pending")
	require.Eventually(t, func() bool {
		ar = a.accessRequest(build)
		c := condition(ar, v1alpha1.ConditionAccessCheckReady)
		return c.Status == "Unknown" && c.Reason == v1alpha1.ReasonPending && len(ar.Status.Policies) == 1 &&
			len(ar.Status.Policies[0].MatchedChecks) == 1 && ar.Status.Policies[0].MatchedChecks[0].Ref.Name == "approve-pr-1"
	}, time.Minute, 50*time.Millisecond, "the request waits for the ApprovalTask")
	assert.NotEqual(t, "True", condition(ar, v1alpha1.ConditionReady).Status, "not ready while pending")
	err = a.h.publish(ctx, req)
	require.Equal(t, codes.Unavailable, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "waiting for ApprovalTask "+a.ns+"/approve-pr-1 to be approved")
	a.accessRequest(build) // still one request: reused
	require.Eventually(t, func() bool {
		var evs eventsv1.EventList
		if err := a.env.Client.List(ctx, &evs, client.InNamespace(a.ns)); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == build.Name && e.Reason == csi.ReasonWaitingForApproval {
				return true
			}
		}
		return false
	}, time.Minute, 100*time.Millisecond, "the pod has an Event saying it waits for approval")
	require.ErrorIs(t, a.proxyAllows(build), kube.ErrForbidden, "no proxy use before approval")

	// Approved: the grant is synced, the volume mounts, the proxy serves
	// this pod only.
	a.setApprovalState("pr-1", "approved")
	require.Eventually(t, func() bool { return a.h.publish(ctx, req) == nil }, time.Minute, 100*time.Millisecond, "mounts once approved")
	assert.NotEmpty(t, readVolumeFile(t, req.TargetPath, "context.token"))
	ar = a.accessRequest(build)
	assert.Equal(t, "True", condition(ar, v1alpha1.ConditionReady).Status)
	assert.Equal(t, v1alpha1.ReasonSynced, condition(ar, v1alpha1.ConditionAccessPermissionSync).Reason)
	role := &rbacv1.Role{}
	require.NoError(t, a.env.Client.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: approval.GrantPrefix + ar.Name}, role))
	assert.Equal(t, []rbacv1.PolicyRule{{
		APIGroups: []string{"connectors.alauda.io"}, Resources: []string{"connectors/proxy/v1/pod/" + a.ns + "/build-1"},
		ResourceNames: []string{approvalConnector}, Verbs: []string{"*"},
	}}, role.Rules)
	require.Eventually(t, func() bool {
		var evs corev1.EventList
		if err := a.env.Client.List(ctx, &evs, client.InNamespace(a.ns)); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "AccessRequest" && e.InvolvedObject.Name == ar.Name && e.Reason == v1alpha1.ReasonSynced {
				return true
			}
		}
		return false
	}, time.Minute, 100*time.Millisecond, "the AccessRequest has an Event naming the grant")
	require.NoError(t, a.proxyAllows(build), "the proxy serves the approved pod")
	require.ErrorIs(t, a.proxyAllows(sibling), kube.ErrForbidden, "the proxy refuses another pod of the same ServiceAccount")
	// The ServiceAccount as such (a token bound to no pod) gets nothing.
	require.ErrorIs(t, a.reviewer.Authorize(ctx, kube.ServiceAccountUser(a.ns, "builder"), a.ns, approvalConnector), kube.ErrForbidden)
	require.NoError(t, a.h.unpublish(ctx, req.VolumeId, req.TargetPath))

	// The pod ends: the grant is removed, for good.
	pod, err := a.env.Kube.CoreV1().Pods(a.ns).Get(ctx, build.Name, metav1.GetOptions{})
	require.NoError(t, err)
	pod.Status.Phase = corev1.PodSucceeded
	_, err = a.env.Kube.CoreV1().Pods(a.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		err := a.env.Client.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: approval.GrantPrefix + ar.Name}, &rbacv1.Role{})
		return apierrors.IsNotFound(err)
	}, time.Minute, 50*time.Millisecond, "the Role goes when the pod ends")
	err = a.env.Client.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: approval.GrantPrefix + ar.Name}, &rbacv1.RoleBinding{})
	require.True(t, apierrors.IsNotFound(err), "the RoleBinding goes too: %v", err)
	require.Eventually(t, func() bool {
		c := condition(a.accessRequest(build), v1alpha1.ConditionAccessPermissionSync)
		return c.Reason == v1alpha1.ReasonPermissionCleanUp
	}, time.Minute, 50*time.Millisecond)
	require.Eventually(t, func() bool { return errors.Is(a.proxyAllows(build), kube.ErrForbidden) }, time.Minute, 50*time.Millisecond,
		"the ended pod's token no longer uses the Connector")
}

// TestApprovalRejectedMountsOnlyTheErrorFile: a rejected ApprovalTask
// makes the volume hold only .error.json, a google.rpc.Status.
func TestApprovalRejectedMountsOnlyTheErrorFile(t *testing.T) {
	a := startApproval(t)
	ctx := context.Background()
	p := a.pod("promote-1", "pr-2")
	req := a.request(p)
	require.Equal(t, codes.Unavailable, status.Code(a.h.publish(ctx, req)))
	a.approvalTask("pr-2", "rejected")
	require.Eventually(t, func() bool { return a.h.publish(ctx, req) == nil }, time.Minute, 100*time.Millisecond)
	entries, err := os.ReadDir(req.TargetPath)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if e.Name()[0] != '.' || e.Name() == csi.ErrorFile {
			names = append(names, e.Name())
		}
	}
	assert.Equal(t, []string{csi.ErrorFile}, names, "only the error file is mounted")
	var st struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	require.NoError(t, json.Unmarshal([]byte(readVolumeFile(t, req.TargetPath, csi.ErrorFile)), &st))
	assert.Equal(t, int(codes.PermissionDenied), st.Code)
	assert.Contains(t, st.Message, `access to connector "`+a.ns+`/`+approvalConnector+`" was rejected`)
	assert.Contains(t, st.Message, "ApprovalTask "+a.ns+"/approve-pr-2 rejected the request")
	ar := a.accessRequest(p)
	assert.Equal(t, v1alpha1.ReasonRejected, condition(ar, v1alpha1.ConditionAccessCheckReady).Reason)
	assert.Equal(t, "False", condition(ar, v1alpha1.ConditionReady).Status)
	require.ErrorIs(t, a.proxyAllows(p), kube.ErrForbidden)
	require.NoError(t, a.h.unpublish(ctx, req.VolumeId, req.TargetPath))
}

// TestApprovalPolicyChangeDoesNotAlterAnInFlightRequest: the policy
// matched when the request was first seen is kept in status.policies; a
// later edit or deletion of the AccessPolicy does not change it.
func TestApprovalPolicyChangeDoesNotAlterAnInFlightRequest(t *testing.T) {
	a := startApproval(t)
	ctx := context.Background()
	p := a.pod("deploy-1", "pr-4")
	req := a.request(p)
	require.Equal(t, codes.Unavailable, status.Code(a.h.publish(ctx, req)))
	var snapshot v1alpha1.AccessPolicySpec
	require.Eventually(t, func() bool {
		ar := a.accessRequest(p)
		if len(ar.Status.Policies) != 1 {
			return false
		}
		snapshot = ar.Status.Policies[0].PolicySpec
		return true
	}, time.Minute, 50*time.Millisecond)
	assert.Equal(t, approvalPolicy(a.ns).Spec, snapshot, "status.policies holds the policy's spec")

	// The policy now asks for a check that can never pass, then goes away.
	policy := &v1alpha1.AccessPolicy{}
	require.NoError(t, a.env.Client.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: "prod-harbor-approval"}, policy))
	policy.Spec.CheckGrantedPermission.Spec.Checks[0].Ref.ConfigMap.Name = "no-such-template"
	require.NoError(t, a.env.Client.Update(ctx, policy))
	time.Sleep(300 * time.Millisecond) // a few check periods
	require.NoError(t, a.env.Client.Delete(ctx, policy))

	a.approvalTask("pr-4", "approved")
	require.Eventually(t, func() bool { return a.h.publish(ctx, req) == nil }, time.Minute, 100*time.Millisecond,
		"the request is granted by the policy it matched")
	assert.Equal(t, snapshot, a.accessRequest(p).Status.Policies[0].PolicySpec)
	require.NoError(t, a.h.unpublish(ctx, req.VolumeId, req.TargetPath))

	// A pod that comes after the deletion matches no policy: denied.
	later := a.pod("deploy-2", "pr-4")
	lreq := a.request(later)
	require.Eventually(t, func() bool { return status.Code(a.h.publish(ctx, lreq)) == codes.PermissionDenied }, time.Minute, 100*time.Millisecond)
	assert.Contains(t, status.Convert(a.h.publish(ctx, lreq)).Message(), "no AccessPolicy")
}

// TestApprovalDefaultPermissionMountsWithoutARequest: a policy's
// defaultPermission, synced by the running controller, lets every pod of
// the named ServiceAccount mount and use the Connector with no
// AccessRequest and no check; the leader writes the policy's status. A
// policy that selects another Connector grants nothing here.
func TestApprovalDefaultPermissionMountsWithoutARequest(t *testing.T) {
	a := startApproval(t)
	ctx := context.Background()
	// The gate of startApproval does not apply: remove it.
	require.NoError(t, a.env.Client.Delete(ctx, approvalPolicy(a.ns)))
	sat := v1alpha1.ServiceAccountTemplate{Names: []string{"builder"}, NamespaceSelector: &v1alpha1.ResourceSelector{Names: []string{a.ns}}}
	policy := func(name, connector string) *v1alpha1.AccessPolicy {
		return &v1alpha1.AccessPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: name},
			Spec: v1alpha1.AccessPolicySpec{
				Connector: &v1alpha1.ResourceSelector{Names: []string{connector}},
				DefaultPermission: &v1alpha1.DefaultPermission{
					RoleTemplate:    v1alpha1.RoleTemplate{Ref: &v1alpha1.RoleTemplateRef{ConfigMap: &corev1.LocalObjectReference{Name: "connectors-use-connectors-proxy"}}},
					BindingTemplate: v1alpha1.BindingTemplate{ServiceAccounts: []v1alpha1.ServiceAccountTemplate{sat}},
				},
			},
		}
	}
	require.NoError(t, a.env.Client.Create(ctx, policy("elsewhere", "another")))
	build := a.pod("build-1", "pr-1")
	sibling := a.pod("build-2", "pr-2")
	time.Sleep(300 * time.Millisecond) // a few check periods: nothing to grant
	require.ErrorIs(t, a.proxyAllows(build), kube.ErrForbidden, "a policy for another Connector grants nothing")

	require.NoError(t, a.env.Client.Create(ctx, policy("harbor-default", approvalConnector)))
	p := &v1alpha1.AccessPolicy{}
	require.Eventually(t, func() bool {
		require.NoError(t, a.env.Client.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: "harbor-default"}, p))
		c := v1alpha1.FindCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == "True" && p.Status.ObservedGeneration == p.Generation
	}, time.Minute, 50*time.Millisecond, "the controller writes the policy's status")
	assert.Equal(t, []corev1.LocalObjectReference{{Name: approvalConnector}}, p.Status.MatchedConnectors)
	assert.Equal(t, v1alpha1.ReasonSynced, policyCondition(p, v1alpha1.ConditionPermissionSynced).Reason)

	req := a.request(build)
	require.Eventually(t, func() bool { return a.h.publish(ctx, req) == nil }, time.Minute, 100*time.Millisecond, "mounts with the default grant")
	require.NoError(t, a.proxyAllows(build))
	require.NoError(t, a.proxyAllows(sibling), "the default grant is the ServiceAccount's, for every pod")
	var list v1alpha1.AccessRequestList
	require.NoError(t, a.env.Client.List(ctx, &list, client.InNamespace(a.ns)))
	assert.Empty(t, list.Items, "no AccessRequest with the default grant")
	require.NoError(t, a.h.unpublish(ctx, req.VolumeId, req.TargetPath))

	// The policy goes: so does its grant.
	require.NoError(t, a.env.Client.Delete(ctx, p))
	require.Eventually(t, func() bool {
		err := a.env.Client.Get(ctx, client.ObjectKey{Namespace: a.ns, Name: approval.PolicyGrantPrefix + "harbor-default"}, &rbacv1.RoleBinding{})
		return apierrors.IsNotFound(err)
	}, time.Minute, 50*time.Millisecond)
	require.Eventually(t, func() bool { return errors.Is(a.proxyAllows(sibling), kube.ErrForbidden) }, time.Minute, 50*time.Millisecond)
}

func policyCondition(p *v1alpha1.AccessPolicy, t string) v1alpha1.Condition {
	if c := v1alpha1.FindCondition(p.Status.Conditions, t); c != nil {
		return *c
	}
	return v1alpha1.Condition{}
}
