package e2e

import (
	"context"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/nodeproc"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// approvalNodeName is the node of the approval stories' own connectors-node,
// which runs with the approval flags and holds the status Lease, so that
// it runs the approval controller.
const approvalNodeName = "e2e-approval-node"

var (
	approvalOnce sync.Once
	approvalErr  error
)

// installApproval creates, once, what the approval component adds to a
// cluster: upstream's templates, the admission policy on grants and the
// approval RBAC of the node's ServiceAccount.
func (h *harness) installApproval(t *testing.T) {
	t.Helper()
	approvalOnce.Do(func() {
		root := apiserver.RepoRoot()
		objs, err := manifests.Load(
			filepath.Join(root, "deploy", "base", "approval-templates.yaml"),
			filepath.Join(root, "deploy", "base", "admission-approval.yaml"),
			filepath.Join(root, "deploy", "components", "approval", "rbac.yaml"),
		)
		if err != nil {
			approvalErr = err
			return
		}
		ctx := context.Background()
		if approvalErr = manifests.Create(ctx, h.env.Client, objs); approvalErr != nil {
			return
		}
		approvalErr = manifests.WaitForGrantPolicy(ctx, h.env.Client)
	})
	if approvalErr != nil {
		t.Fatalf("installing the approval component: %v", approvalErr)
	}
}

// startApprovalNode runs a second connectors-node with the approval flags
// and status on, as the approval component's DaemonSet runs it, and stops
// it when the test ends; its log must hold none of the story's tokens.
func (s *story) startApprovalNode() *nodeproc.Node {
	s.t.Helper()
	ctx := context.Background()
	work := filepath.Join(s.h.work, "approval-node")
	if err := os.MkdirAll(work, 0o750); err != nil {
		s.t.Fatal(err)
	}
	kubeconfig := filepath.Join(work, "node.kubeconfig")
	if err := nodeproc.WriteKubeconfig(ctx, s.h.env, kubeconfig, time.Hour); err != nil {
		s.t.Fatal(err)
	}
	if err := kubelet.RegisterNode(ctx, s.h.env.Kube, approvalNodeName); err != nil {
		s.t.Fatal(err)
	}
	node, err := nodeproc.Start(ctx, nodeproc.Options{
		Binary: s.h.bin, Name: approvalNodeName, Kubeconfig: kubeconfig, Work: work,
		PublicHost: "localhost", Env: []string{"PATH="},
		Args: []string{"--enable-connector-proxy-permissions", "--enable-connectors-approval", "--v=5"},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		node.Stop()
		s.mu.Lock()
		unlogged := s.unlogged
		s.mu.Unlock()
		if err := scanLogFile(node.LogPath, unlogged); err != nil {
			s.t.Error(err)
		}
	})
	return node
}

// approvalPod runs a pod of sa on the approval node, labelled as a step of
// the PipelineRun run, and mints its proxy token.
func (s *story) approvalPod(sa, run string) (kubelet.Pod, kubelet.Token) {
	s.t.Helper()
	ctx := context.Background()
	pod, err := kubelet.RunPod(ctx, s.h.env.Kube, kubelet.Pod{Namespace: s.ns, Name: "step-" + randomHex(6), ServiceAccount: sa}, approvalNodeName, podIP)
	if err != nil {
		s.t.Fatal(err)
	}
	obj, err := s.h.env.Kube.CoreV1().Pods(s.ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	obj.Labels = map[string]string{"tekton.dev/pipelineRun": run}
	if _, err := s.h.env.Kube.CoreV1().Pods(s.ns).Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	tok, err := kubelet.MintToken(ctx, s.h.env.Kube, pod, audience, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	s.podToken("the pod token of "+pod.Name, tok.Token)
	return pod, tok
}

// TestApprovalProxyServesOnlyTheApprovedPod runs upstream's approval flow
// through the real binary: a Git Connector gated by an AccessPolicy with
// the pipeline's ApprovalTask check. The approved pod's volume mounts and
// its requests reach the Git server through the proxy, both ways; another
// pod of the same ServiceAccount, which may read the Connector too, gets
// 403; once the approved pod ends, its grant is gone and its requests get
// 403 as well.
func TestApprovalProxyServesOnlyTheApprovedPod(t *testing.T) {
	g := newGitStory(t, "e2e-approval", gitOptions{}, nil)
	g.h.installApproval(t)
	ctx := context.Background()
	g.create(&v1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: g.ns, Name: "git-approval"},
		Spec: v1alpha1.AccessPolicySpec{
			Connector: &v1alpha1.ResourceSelector{Names: []string{"git"}},
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
	})
	node := g.startApprovalNode()
	key := g.ns + "/git"
	build, buildTok := g.approvalPod(g.sa, "pr-1")
	_, siblingTok := g.approvalPod(g.sa, "pr-2")

	refs := "/private-repo.git/info/refs?service=git-upload-pack"
	reverse := node.PublicURL + "/namespaces/" + g.ns + "/connectors/git" + refs
	forward := func(token string) (int, string) {
		proxy := &neturl.URL{Scheme: "http", Host: node.Proxy, User: neturl.UserPassword(key, token)}
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
		defer c.CloseIdleConnections()
		return g.do(c, g.git.URL+refs, "")
	}
	// both is the status of a GET through the reverse and the forward proxy.
	both := func(token string) (int, int) {
		r, _ := g.get(reverse, basicToken(token))
		f, _ := forward(token)
		return r, f
	}

	t.Log("the build pod waits for approval; the proxy refuses it meanwhile")
	target := filepath.Join(node.Root, "pods", build.UID, "volumes", "kubernetes.io~csi", "connectors", "mount")
	if err := os.MkdirAll(target, 0o750); err != nil {
		t.Fatal(err)
	}
	attrs := map[string]string{"connectors": "git", "configuration.names": "gitconfig"}
	publish := func() error {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return node.Kubelet.Publish(pctx, "csi-"+build.UID, target, build, attrs, map[string]kubelet.Token{audience: buildTok})
	}
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for err = publish(); status.Code(err) == codes.NotFound && time.Now().Before(deadline); err = publish() {
		time.Sleep(200 * time.Millisecond) // the Connector is not in the new node's cache yet
	}
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "waiting for approval") {
		t.Fatalf("publishing before approval: %v, want Unavailable waiting for approval", err)
	}
	if r, f := both(buildTok.Token); r != http.StatusForbidden || f != http.StatusForbidden {
		t.Fatalf("the proxy before approval: reverse %d, forward %d, want 403", r, f)
	}

	t.Log("the ApprovalTask is approved: the volume mounts, the proxy serves the build pod only")
	task := &unstructured.Unstructured{}
	task.SetAPIVersion("openshift-pipelines.org/v1alpha1")
	task.SetKind("ApprovalTask")
	task.SetNamespace(g.ns)
	task.SetName("approve-pr-1")
	task.SetLabels(map[string]string{"tekton.dev/pipelineRun": "pr-1"})
	g.create(task)
	if err := unstructured.SetNestedField(task.Object, "approved", "status", "state"); err != nil {
		t.Fatal(err)
	}
	if err := g.h.env.Client.Status().Update(ctx, task); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for err = publish(); err != nil && time.Now().Before(deadline); err = publish() {
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("publishing after approval: %v", err)
	}
	t.Cleanup(func() {
		uctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := node.Kubelet.Unpublish(uctx, "csi-"+build.UID, target); err != nil {
			t.Errorf("NodeUnpublishVolume: %v", err)
		}
	})
	g.checkVolume(&volume{id: "csi-" + build.UID, target: target, pod: build, attrs: attrs})
	// The proxy's refusals before approval are cached for a few seconds.
	if err := waitFor(30*time.Second, func() bool {
		r, f := both(buildTok.Token)
		return r == http.StatusOK && f == http.StatusOK
	}); err != nil {
		r, f := both(buildTok.Token)
		t.Fatalf("the approved pod through the proxy: reverse %d, forward %d, want 200: %v", r, f, err)
	}
	if users := g.git.Users(); len(users) == 0 || users[0] != gitUser {
		t.Errorf("the Git server saw users %q, want %q: the proxy did not inject the credential", users, gitUser)
	}
	if g.git.sawHeader(buildTok.Token) {
		t.Error("the pod's token reached the Git server")
	}
	if r, f := both(siblingTok.Token); r != http.StatusForbidden || f != http.StatusForbidden {
		t.Fatalf("another pod of the same ServiceAccount: reverse %d, forward %d, want 403", r, f)
	}
	_, body := forward(siblingTok.Token)
	if !strings.Contains(body, key) {
		t.Errorf("the sibling's 403 does not name %s: %q", key, body)
	}

	t.Log("the build pod ends: its grant is removed and the proxy refuses it")
	pod, err := g.h.env.Kube.CoreV1().Pods(g.ns).Get(ctx, build.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodSucceeded
	if _, err := g.h.env.Kube.CoreV1().Pods(g.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(time.Minute, func() bool {
		var roles rbacv1.RoleList
		if err := g.h.env.Client.List(ctx, &roles, client.InNamespace(g.ns), client.HasLabels{v1alpha1.AccessRequestLabel}); err != nil {
			return false
		}
		return len(roles.Items) == 0
	}); err != nil {
		t.Fatalf("the grant of the ended pod: %v", err)
	}
	// An allowed decision is cached for up to 30s.
	if err := waitFor(time.Minute, func() bool {
		r, f := both(buildTok.Token)
		return r == http.StatusForbidden && f == http.StatusForbidden
	}); err != nil {
		r, f := both(buildTok.Token)
		t.Fatalf("the ended pod through the proxy: reverse %d, forward %d, want 403: %v", r, f, err)
	}
	var ars v1alpha1.AccessRequestList
	if err := g.h.env.Client.List(ctx, &ars, client.InNamespace(g.ns), client.MatchingLabels{v1alpha1.ContextObjectNameLabel: build.Name}); err != nil {
		t.Fatal(err)
	}
	if len(ars.Items) != 1 {
		t.Fatalf("%d AccessRequests for the build pod, want 1", len(ars.Items))
	}
	if c := v1alpha1.FindCondition(ars.Items[0].Status.Conditions, v1alpha1.ConditionAccessPermissionSync); c == nil || c.Reason != v1alpha1.ReasonPermissionCleanUp {
		t.Errorf("the ended pod's AccessRequest: %+v, want AccessPermissionSync PermissionCleanUp", c)
	}
	err = g.h.env.Client.Get(ctx, client.ObjectKey{Namespace: g.ns, Name: "connectors-access-" + ars.Items[0].Name}, &rbacv1.RoleBinding{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the ended pod's RoleBinding: %v, want NotFound", err)
	}
}

// waitFor polls cond every 200ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("still not so after %s", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}
