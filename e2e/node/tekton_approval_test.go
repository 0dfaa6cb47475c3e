package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// The approval flow of docs/approvals.md in real PipelineRuns: the plugin
// installed from deploy/ with the approval component, the AccessPolicy of
// examples/tekton/ gating the Git Connector, and the Pipeline of
// examples/tekton/ whose approve task is the manual-approval-gate's custom
// task and whose clone task mounts the Connector's gitconfig through a csi
// workspace as the git-clone ServiceAccount, which may read the Connector
// but not use it through the proxy. The manual-approval-gate controller is
// not run: the story does what it would do (approvalGate).
//
// approved: the clone's pod waits in ContainerCreating with the
// WaitingForApproval event; once the ApprovalTask is approved it mounts,
// the step clones through the proxy with the credential injected at the
// server, the PipelineRun succeeds, and once the pod ended the Role and
// RoleBinding of its grant are gone. rejected: the step fails at once on
// the mounted .error.json, its log and the pod's AccessRejected event say
// why, and the PipelineRun fails. The password is in no mounted file, log
// line, result or Tekton object.
func TestApprovalInAPipelineRunGatesTheConnectorOnItsApprovalTask(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	n.tekton(ctx, t)
	n.approvalComponent(ctx, t)

	srv, repo, password := startRecordingGitServer(t, "tekton-approval")
	n.gitConnector(ctx, t, srv.URL, password, "tekton-approval.git")
	public, err := n.publicURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.waitConnectorStatus(ctx, t, "default", "git", "True", public+v1alpha1.PathPrefix("default", "git"))
	if _, err := n.kubectl(ctx, example(t, "tekton/approval-policy.yaml"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.kubectl(ctx, "", "delete", "accesspolicy", "-n", "default", "git-approval", "--ignore-not-found")
	})
	for _, m := range []string{onNode(t, "tekton/git-clone-task.yaml"), example(t, "tekton/approval-pipeline.yaml")} {
		if _, err := n.kubectl(ctx, m, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("approved", func(t *testing.T) {
		run := n.startApprovalPipelineRun(ctx, t, "tekton-approval-approved", repo)
		gate := n.approvalGate(ctx, t, run)
		pod := n.waitCloneWaitingForApproval(ctx, t, run)
		ar := n.stillWaiting(ctx, t, pod)

		gate.decide(ctx, t, "approved")
		pr := n.waitPipelineRun(ctx, t, run, 4*time.Minute)
		tr, _, err := n.getTaskRun(ctx, run+"-clone")
		if err != nil {
			t.Fatal(err)
		}
		log := n.podLog(t, pod.uid)
		if status, reason, msg := tr.succeeded(); status != "True" {
			t.Fatalf("the clone TaskRun ended %s (%s): %s\n%s", status, reason, msg, log)
		}
		if pr.status != "True" {
			t.Errorf("the PipelineRun ended %s (%s): %s", pr.status, pr.reason, pr.message)
		}
		if !strings.Contains(log, "initial commit") {
			t.Errorf("the step's log does not show the cloned commit:\n%s", log)
		}
		if users := srv.Users(); len(users) == 0 || users[0] != "bot" {
			t.Errorf("the Git server saw users %q, want bot: the proxy did not inject the credential", users)
		}
		n.checkTektonNoSecret(ctx, t, run+"-clone", pod, password, srv.authorizations())
		n.checkApprovalObjectsNoSecret(ctx, t, run, password)

		// The pod ended: the controller removes its grant.
		if err := poll(ctx, 2*time.Minute, "the grant of the ended pod removed", func(ctx context.Context) (bool, error) {
			return n.grants(ctx, t, ar.Name) == 0, nil
		}); err != nil {
			t.Error(err)
		}
		ar = n.accessRequestOf(ctx, t, pod.name)
		if c := v1alpha1.FindCondition(ar.Status.Conditions, v1alpha1.ConditionAccessPermissionSync); c == nil || c.Reason != v1alpha1.ReasonPermissionCleanUp {
			t.Errorf("the ended pod's AccessRequest %s: AccessPermissionSync %+v, want PermissionCleanUp", ar.Name, c)
		}
	})

	t.Run("rejected", func(t *testing.T) {
		before := len(srv.Fetches())
		run := n.startApprovalPipelineRun(ctx, t, "tekton-approval-rejected", repo)
		gate := n.approvalGate(ctx, t, run)
		pod := n.waitCloneWaitingForApproval(ctx, t, run)
		ar := n.stillWaiting(ctx, t, pod)

		gate.decide(ctx, t, "rejected")
		rejected := time.Now()
		tr, err := n.waitTaskRun(ctx, run+"-clone", 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the clone TaskRun ended %s after the rejection", time.Since(rejected).Round(100*time.Millisecond))
		log := n.podLog(t, pod.uid)
		if status, reason, msg := tr.succeeded(); status != "False" {
			t.Errorf("the clone TaskRun ended %s (%s: %s), want False\n%s", status, reason, msg, log)
		} else {
			t.Logf("the clone TaskRun: Succeeded False (%s): %s", reason, msg)
		}
		if !strings.Contains(log, "the Git Connector may not be used") || !strings.Contains(log, "rejected") {
			t.Errorf("the step's log does not show the .error.json of the rejection:\n%s", log)
		}
		for f, c := range n.volumes.seen(pod.uid) {
			if filepath.Base(f) != csi.ErrorFile {
				t.Errorf("the rejected pod's volume holds %s, want only %s", f, csi.ErrorFile)
			} else if !strings.Contains(c, `"code":7`) {
				t.Errorf("%s is %q, want a google.rpc.Status of PermissionDenied (7)", f, c)
			}
		}
		describe, err := n.kubectl(ctx, "", "describe", "pod", "-n", "default", pod.name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(describe, csi.ReasonAccessRejected) {
			t.Errorf("kubectl describe pod shows no %s event:\n%s", csi.ReasonAccessRejected, describe)
		}
		for l := range strings.Lines(describe) {
			if strings.Contains(l, csi.ReasonAccessRejected) {
				t.Logf("kubectl describe pod: %s", strings.TrimSpace(l))
			}
		}
		pr := n.waitPipelineRun(ctx, t, run, 2*time.Minute)
		if pr.status != "False" {
			t.Errorf("the PipelineRun ended %s (%s: %s), want False", pr.status, pr.reason, pr.message)
		}
		// The Connector's auth probe may read info/refs as its user at any
		// time (the approval flags' rollout starts new plugin pods): only a
		// fetch counts.
		if users := srv.Fetches()[before:]; len(users) != 0 {
			t.Errorf("the Git server served fetches to users %q after a rejection, want none", users)
		}
		if count := n.grants(ctx, t, ar.Name); count != 0 {
			t.Errorf("%d Roles and RoleBindings of the rejected AccessRequest %s, want none", count, ar.Name)
		}
		n.noSecret(t, password, pod.uid)
		n.checkApprovalObjectsNoSecret(ctx, t, run, password)
	})
}

// stillWaiting waits until the controller has seen the pod's AccessRequest
// and holds its check Pending, then checks that, some seconds later, the
// pod has started no container and no grant exists; it returns the
// AccessRequest.
func (n *cluster) stillWaiting(ctx context.Context, t *testing.T, pod tektonPod) v1alpha1.AccessRequest {
	t.Helper()
	var ar v1alpha1.AccessRequest
	if err := poll(ctx, time.Minute, "the AccessRequest of "+pod.name+" Pending", func(ctx context.Context) (bool, error) {
		ar = n.accessRequestOf(ctx, t, pod.name)
		c := v1alpha1.FindCondition(ar.Status.Conditions, v1alpha1.ConditionAccessCheckReady)
		return c != nil && c.Status == "Unknown" && c.Reason == v1alpha1.ReasonPending, nil
	}); err != nil {
		t.Fatalf("%v: %+v", err, ar.Status.Conditions)
	}
	time.Sleep(5 * time.Second)
	p, err := n.env.Kube.CoreV1().Pods("default").Get(ctx, pod.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if cs.State.Waiting == nil {
			t.Errorf("the pod's container %s started before the approval: %+v", cs.Name, cs.State)
		}
	}
	if count := n.grants(ctx, t, ar.Name); count != 0 {
		t.Errorf("%d Roles and RoleBindings of the pending AccessRequest %s, want none", count, ar.Name)
	}
	return ar
}

// grants counts the Roles and RoleBindings of the AccessRequest name.
func (n *cluster) grants(ctx context.Context, t *testing.T, name string) int {
	t.Helper()
	var roles rbacv1.RoleList
	if err := n.env.Client.List(ctx, &roles, client.InNamespace("default"), client.MatchingLabels{v1alpha1.AccessRequestLabel: name}); err != nil {
		t.Fatal(err)
	}
	var bindings rbacv1.RoleBindingList
	if err := n.env.Client.List(ctx, &bindings, client.InNamespace("default"), client.MatchingLabels{v1alpha1.AccessRequestLabel: name}); err != nil {
		t.Fatal(err)
	}
	return len(roles.Items) + len(bindings.Items)
}

// approvalComponent turns the approval flow on in the installed plugin as
// a user of the kustomize install does: an overlay of the suite's overlay
// with deploy/components/approval (the two flags and the approval RBAC),
// applied, and the DaemonSet rolled out. It installs the ApprovalTask CRD
// of test/standins/approvaltask, since the manual-approval-gate is not
// installed. When the test ends it applies the suite's overlay again,
// deletes the component's RBAC and the CRD, and waits for the rollout.
func (n *cluster) approvalComponent(ctx context.Context, t *testing.T) {
	t.Helper()
	root := apiserver.RepoRoot()
	crd := filepath.Join(root, "test", "standins", "approvaltask", "approvaltask-crd.yaml")
	rbac := filepath.Join(root, "deploy", "components", "approval", "rbac.yaml")
	if _, err := n.kubectl(ctx, "", "apply", "--server-side", "-f", crd); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, "", "wait", "--for=condition=Established", "--timeout=1m", "crd/approvaltasks.openshift-pipelines.org"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var rel []string
	for _, p := range []string{filepath.Join(root, "e2e", "node", "overlay"), filepath.Join(root, "deploy", "components", "approval")} {
		r, err := filepath.Rel(dir, p) // kustomize refuses an absolute root
		if err != nil {
			t.Fatal(err)
		}
		rel = append(rel, r)
	}
	kustomization := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [%s]\ncomponents: [%s]\n", rel[0], rel[1])
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		t.Fatal(err)
	}
	manifests, err := run(ctx, "kubectl", "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := n.apply(ctx, "overlay"); err != nil {
			t.Error(err)
		}
		if _, err := n.kubectl(ctx, "", "delete", "--ignore-not-found", "-f", rbac, "-f", crd); err != nil {
			t.Error(err)
		}
		if err := n.rolloutPlugin(ctx, false); err != nil {
			t.Error(err)
		}
	})
	if _, err := n.kubectl(ctx, manifests, "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if err := n.rolloutPlugin(ctx, true); err != nil {
		t.Fatal(err)
	}
}

// rolloutPlugin waits until the DaemonSet rolled out, its pod on every
// node is Ready with the approval flags on or off, and the driver is
// registered.
func (n *cluster) rolloutPlugin(ctx context.Context, approval bool) error {
	if out, err := n.kubectl(ctx, "", "rollout", "status", "-n", systemNamespace, "daemonset/connectors-node", "--timeout=4m"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	if err := n.waitPlugin(ctx, "", nodeServiceAccount); err != nil {
		return err
	}
	return poll(ctx, 2*time.Minute, fmt.Sprintf("every DaemonSet pod with the approval flags %v", approval), func(ctx context.Context) (bool, error) {
		for _, w := range n.nodes {
			p, err := n.pluginPod(ctx, w.name)
			if err != nil {
				return false, err
			}
			if hasArg(p, "--enable-connectors-approval") != approval || hasArg(p, "--enable-connector-proxy-permissions") != approval {
				return false, nil
			}
		}
		return true, nil
	})
}

// startApprovalPipelineRun creates the PipelineRun of examples/tekton/
// named name for the repository repo, replacing one of that name.
func (n *cluster) startApprovalPipelineRun(ctx context.Context, t *testing.T, name, repo string) string {
	t.Helper()
	if _, err := n.kubectl(ctx, "", "delete", "pipelinerun", "-n", "default", name, "--ignore-not-found", "--wait=true"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, example(t, "tekton/approval-pipelinerun.yaml",
		"name: git-clone-approved-demo\n", "name: "+name+"\n",
		"https://github.com/example/private-repo", repo,
	), "create", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.kubectl(ctx, "", "delete", "pipelinerun", "-n", "default", name, "--ignore-not-found")
	})
	return name
}

// tektonObject is what the story reads of a CustomRun or PipelineRun.
type tektonObject struct {
	Metadata struct {
		Name   string            `json:"name"`
		UID    string            `json:"uid"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Status struct {
		Conditions []condition `json:"conditions"`
	} `json:"status"`
}

// gate is the ApprovalTask of a PipelineRun's approve task and the
// CustomRun it belongs to.
type gate struct {
	customRun tektonObject
	n         *cluster
}

// approvalGate does what the manual-approval-gate controller does for the
// approve task of the PipelineRun run: once Tekton created its CustomRun,
// it creates the ApprovalTask of the same name, with the CustomRun's
// labels (tekton.dev/pipelineRun among them) and owned by it, pending.
func (n *cluster) approvalGate(ctx context.Context, t *testing.T, run string) *gate {
	t.Helper()
	var cr tektonObject
	if err := poll(ctx, 2*time.Minute, "the CustomRun of "+run+"'s approve task", func(ctx context.Context) (bool, error) {
		out, err := n.kubectl(ctx, "", "get", "customruns", "-n", "default", "-l", "tekton.dev/pipelineRun="+run+",tekton.dev/pipelineTask=approve", "-o", "json")
		if err != nil {
			return false, err
		}
		var list struct{ Items []tektonObject }
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, err
		}
		if len(list.Items) != 1 {
			return false, nil
		}
		cr = list.Items[0]
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	task := map[string]any{
		"apiVersion": "openshift-pipelines.org/v1alpha1",
		"kind":       "ApprovalTask",
		"metadata": map[string]any{
			"name": cr.Metadata.Name, "namespace": "default", "labels": cr.Metadata.Labels,
			"ownerReferences": []any{map[string]any{
				"apiVersion": "tekton.dev/v1beta1", "kind": "CustomRun", "name": cr.Metadata.Name, "uid": cr.Metadata.UID,
				"controller": true, "blockOwnerDeletion": true,
			}},
		},
		"spec": map[string]any{
			"approvers":                 []any{map[string]any{"name": "release-manager", "type": "User", "input": "pending"}},
			"numberOfApprovalsRequired": 1,
		},
	}
	b, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, string(b), "create", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	g := &gate{customRun: cr, n: n}
	g.patch(ctx, t, "approvaltask", "status", map[string]any{"status": map[string]any{
		"state": "pending", "approvers": []string{"release-manager"}, "approvalsRequired": 1, "approvalsReceived": 0,
	}})
	return g
}

// decide plays the approver and the manual-approval-gate controller: the
// approver's input, the ApprovalTask's status.state (approved or
// rejected, which the approval check reads) and the CustomRun's
// Succeeded condition, which lets the PipelineRun go on.
func (g *gate) decide(ctx context.Context, t *testing.T, state string) {
	t.Helper()
	input, succeeded, reason, message := "approve", "True", "Succeeded", "TaskRun succeeded"
	if state == "rejected" {
		input, succeeded, reason, message = "reject", "False", "Failed", "Approval Task denied"
	}
	g.patch(ctx, t, "approvaltask", "", map[string]any{"spec": map[string]any{
		"approvers": []any{map[string]any{"name": "release-manager", "type": "User", "input": input}},
	}})
	g.patch(ctx, t, "approvaltask", "status", map[string]any{"status": map[string]any{
		"state": state, "approvalsReceived": map[bool]int{true: 1}[state == "approved"],
		"approversResponse": []any{map[string]any{"name": "release-manager", "type": "User", "response": state}},
	}})
	now := time.Now().UTC().Format(time.RFC3339)
	g.patch(ctx, t, "customrun", "status", map[string]any{"status": map[string]any{
		"startTime": now, "completionTime": now,
		"conditions": []any{map[string]any{"type": "Succeeded", "status": succeeded, "reason": reason, "message": message, "lastTransitionTime": now}},
	}})
}

// patch merges body into the gate's object of kind (its subresource, when
// set).
func (g *gate) patch(ctx context.Context, t *testing.T, kind, subresource string, body map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"patch", kind, "-n", "default", g.customRun.Metadata.Name, "--type=merge", "-p", string(b)}
	if subresource != "" {
		args = append(args, "--subresource="+subresource)
	}
	if _, err := g.n.kubectl(ctx, "", args...); err != nil {
		t.Fatal(err)
	}
}

// waitCloneWaitingForApproval waits until the clone TaskRun's pod has the
// WaitingForApproval event, checks that none of its containers started,
// and returns it.
func (n *cluster) waitCloneWaitingForApproval(ctx context.Context, t *testing.T, run string) tektonPod {
	t.Helper()
	var pod tektonPod
	var message string
	if err := poll(ctx, 3*time.Minute, "the WaitingForApproval event on the clone's pod", func(ctx context.Context) (bool, error) {
		tr, _, err := n.getTaskRun(ctx, run+"-clone")
		if err != nil || tr.Status.PodName == "" {
			return false, err
		}
		out, err := n.kubectl(ctx, "", "get", "events", "-n", "default", "--field-selector",
			"involvedObject.kind=Pod,involvedObject.name="+tr.Status.PodName+",reason="+csi.ReasonWaitingForApproval, "-o", "jsonpath={.items[*].message}")
		if err != nil || out == "" {
			return false, err
		}
		message = out
		pod = n.taskRunPod(ctx, t, tr)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the clone's pod %s: %s: %s", pod.name, csi.ReasonWaitingForApproval, message)
	if !strings.Contains(message, "waiting for approval") {
		t.Errorf("the WaitingForApproval event says %q, want waiting for approval", message)
	}
	p, err := n.env.Kube.CoreV1().Pods("default").Get(ctx, pod.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != "Pending" {
		t.Errorf("the waiting pod is %s, want Pending", p.Status.Phase)
	}
	for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if cs.State.Waiting == nil {
			t.Errorf("the waiting pod's container %s started: %+v", cs.Name, cs.State)
		} else {
			t.Logf("the waiting pod's container %s: %s", cs.Name, cs.State.Waiting.Reason)
		}
	}
	return pod
}

// accessRequestOf returns the one AccessRequest of the pod named pod.
func (n *cluster) accessRequestOf(ctx context.Context, t *testing.T, pod string) v1alpha1.AccessRequest {
	t.Helper()
	var ars v1alpha1.AccessRequestList
	if err := n.env.Client.List(ctx, &ars, client.InNamespace("default"), client.MatchingLabels{v1alpha1.ContextObjectNameLabel: pod}); err != nil {
		t.Fatal(err)
	}
	if len(ars.Items) != 1 {
		t.Fatalf("%d AccessRequests of pod %s, want 1", len(ars.Items), pod)
	}
	return ars.Items[0]
}

// pipelineRunResult is a finished PipelineRun's Succeeded condition.
type pipelineRunResult struct{ status, reason, message string }

// waitPipelineRun waits until the PipelineRun run has finished.
func (n *cluster) waitPipelineRun(ctx context.Context, t *testing.T, run string, timeout time.Duration) pipelineRunResult {
	t.Helper()
	var res pipelineRunResult
	if err := poll(ctx, timeout, "the PipelineRun "+run+" to finish", func(ctx context.Context) (bool, error) {
		out, err := n.kubectl(ctx, "", "get", "pipelinerun", "-n", "default", run, "-o", "json")
		if err != nil {
			return false, err
		}
		var pr tektonObject
		if err := json.Unmarshal([]byte(out), &pr); err != nil {
			return false, err
		}
		for _, c := range pr.Status.Conditions {
			if c.Type == "Succeeded" {
				res = pipelineRunResult{c.Status, c.Reason, c.Message}
			}
		}
		return res.status == "True" || res.status == "False", nil
	}); err != nil {
		out, _ := n.kubectl(ctx, "", "describe", "pipelinerun", "-n", "default", run)
		t.Fatalf("%v\n%s", err, out)
	}
	return res
}

// checkApprovalObjectsNoSecret checks that secret is in none of the
// PipelineRun run's Tekton objects (the PipelineRun, its TaskRuns and
// CustomRuns), its ApprovalTask or the AccessRequests.
func (n *cluster) checkApprovalObjectsNoSecret(ctx context.Context, t *testing.T, run, secret string) {
	t.Helper()
	for _, args := range [][]string{
		{"get", "pipelinerun", run},
		{"get", "taskruns,customruns,approvaltasks", "-l", "tekton.dev/pipelineRun=" + run},
		{"get", "accessrequests"},
	} {
		out, err := n.kubectl(ctx, "", append(append(args, "-n", "default"), "-o", "yaml")...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, secret) {
			t.Errorf("the credential is in the objects of kubectl %s", strings.Join(args, " "))
		}
	}
}
