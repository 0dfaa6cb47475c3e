package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	systemNamespace = "connectors-system"
	// csiServiceAccount is the split topology's CSI-only DaemonSet pods'
	// ServiceAccount, which has no Secret verb.
	csiServiceAccount = "connectors-csi"
	// splitProxyURL is the central proxy's address, as shipped.
	splitProxyURL = "http://connectors-proxy.connectors-system.svc"
)

// The split topology on the real node: deploy/overlays/split, installed
// through overlay-split, makes the DaemonSet pod CSI-only (ServiceAccount
// connectors-csi) and starts the central proxy Deployment from the same
// image. The git-clone Job of examples/ then clones through the central
// proxy: its files name the Deployment's address, the Deployment's pod
// logs the injected request, and the credential is in no mounted file and
// no log line. The CSI-only pod's own token may not read any Secret, by
// SubjectAccessReview and by a real request. The node topology is
// installed again when the story ends.
func TestSplitTopologyGitClone(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	t.Cleanup(func() { n.installNodeTopology(t) })
	if err := n.apply(ctx, "overlay-split"); err != nil {
		t.Fatal(err)
	}
	if err := n.waitPlugin(ctx, "", csiServiceAccount); err != nil {
		t.Fatal(err)
	}
	// One replica, so the Job runs on the other node than the central
	// proxy.
	if _, err := n.kubectl(ctx, "", "scale", "-n", systemNamespace, "deployment/connectors-proxy", "--replicas=1"); err != nil {
		t.Fatal(err)
	}
	proxy, err := n.waitProxyDeployment(ctx)
	if err != nil {
		out, _ := n.kubectl(ctx, "", "describe", "pods", "-n", systemNamespace)
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the central proxy's log:\n%s", n.podLog(t, string(proxy.UID)))
		}
	})
	jobNode := nodeNames[0]
	if proxy.Spec.NodeName == jobNode {
		jobNode = nodeNames[1]
	}
	plugin, err := n.pluginPod(ctx, jobNode)
	if err != nil {
		t.Fatal(err)
	}
	if !hasArg(plugin, "--serve=csi") || !hasArg(proxy, "--serve=proxy") {
		t.Fatalf("the DaemonSet pod runs %v and the Deployment's %v, want --serve=csi and --serve=proxy",
			plugin.Spec.Containers[0].Args, proxy.Spec.Containers[0].Args)
	}
	if plugin.Spec.Containers[0].Image != proxy.Spec.Containers[0].Image {
		t.Errorf("the DaemonSet runs %s and the proxy Deployment %s, want one image", plugin.Spec.Containers[0].Image, proxy.Spec.Containers[0].Image)
	}

	job := n.gitCloneJob(ctx, t, "git-clone-split", jobNode)
	if job.Status.PodIP == "" || proxy.Spec.NodeName == job.Spec.NodeName {
		t.Errorf("the Job's pod ran on %s (IP %q), the central proxy on %s: want another node, on the pod network", job.Spec.NodeName, job.Status.PodIP, proxy.Spec.NodeName)
	}
	t.Logf("the central proxy %s runs on %s, the Job's pod on %s", proxy.Name, proxy.Spec.NodeName, job.Spec.NodeName)
	for p, c := range n.volumes.seen(string(job.UID)) {
		if filepath.Base(p) == ".gitconfig" && !strings.Contains(c, splitProxyURL) {
			t.Errorf("%s does not name the central proxy %s:\n%s", p, splitProxyURL, c)
		}
	}
	if !n.waitAudited(ctx, t, string(proxy.UID), "default/git", "") {
		t.Errorf("the proxy Deployment's pod logged no injected request for default/git:\n%s", n.podLog(t, string(proxy.UID)))
	}
	if auditedInjection(n.podLog(t, string(plugin.UID)), "default/git", "") {
		t.Errorf("the CSI-only pod logged a proxied request")
	}

	n.noSecretAccess(ctx, t, plugin)
}

// noSecretAccess checks that the CSI-only pod's ServiceAccount may do
// nothing with Secrets: by SubjectAccessReview for every verb, and with the
// pod's own mounted token, whose request for a Secret and for the list of
// Secrets the API server forbids while its read of Connectors succeeds.
func (n *cluster) noSecretAccess(ctx context.Context, t *testing.T, plugin corev1.Pod) {
	t.Helper()
	user := "system:serviceaccount:" + systemNamespace + ":" + plugin.Spec.ServiceAccountName
	for _, ns := range []string{"", systemNamespace, "default"} {
		for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
			sar, err := n.env.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:               user,
					Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + systemNamespace, "system:authenticated"},
					ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: "secrets"},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sar.Status.Allowed {
				t.Errorf("%s may %s Secrets in namespace %q: %s", user, verb, ns, sar.Status.Reason)
			}
		}
	}

	token, err := n.podServiceAccountToken(plugin)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(n.env.Config)
	cfg.BearerToken = token
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Secrets(systemNamespace).Get(ctx, "connectors-proxy-ca", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the CSI-only pod's token got the CA Secret: %v, want Forbidden", err)
	}
	if _, err := kube.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the CSI-only pod's token listed Secrets: %v, want Forbidden", err)
	}
	cm, err := kube.CoreV1().ConfigMaps(systemNamespace).Get(ctx, "connectors-proxy-ca.crt", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the CSI-only pod's token cannot read the CA certificates it needs: %v", err)
	}
	for k, v := range cm.Data {
		if strings.Contains(v, "PRIVATE KEY") {
			t.Errorf("the CA ConfigMap's %s, which the CSI-only pod reads, holds a private key", k)
		}
	}
}

// podServiceAccountToken reads the ServiceAccount token kubelet mounted
// into the pod, on its node.
func (n *cluster) podServiceAccountToken(pod corev1.Pod) (string, error) {
	w := n.node(pod.Spec.NodeName)
	if w == nil {
		return "", fmt.Errorf("pod %s is on no node of the suite (%q)", pod.Name, pod.Spec.NodeName)
	}
	files, err := filepath.Glob(filepath.Join(w.root(), kubeletRoot, "pods", string(pod.UID), "volumes", "kubernetes.io~projected", "*", "token"))
	if err != nil {
		return "", err
	}
	if len(files) != 1 {
		return "", fmt.Errorf("pod %s: %d projected token files, want 1", pod.UID, len(files))
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// waitAudited waits up to 30 s for the container logs of the pod (uid) to
// hold an auditedInjection line: a request's line is written after its
// answer, in the next batch window, and reaches the log file through the
// container runtime.
func (n *cluster) waitAudited(ctx context.Context, t *testing.T, uid, connector, mode string) bool {
	t.Helper()
	return poll(ctx, 30*time.Second, "the audit line", func(context.Context) (bool, error) {
		return auditedInjection(n.podLog(t, uid), connector, mode), nil
	}) == nil
}

// auditedInjection reports whether a container log has the proxy's
// request line for the connector (namespace/name) with the credential
// injected, in the mode (mitm, reverse, ...; any when empty).
func auditedInjection(log, connector, mode string) bool {
	for l := range strings.Lines(log) {
		if strings.Contains(l, `"msg":"request"`) && strings.Contains(l, `"connector":"`+connector+`"`) && strings.Contains(l, `"injected":true`) &&
			(mode == "" || strings.Contains(l, `"mode":"`+mode+`"`)) {
			return true
		}
	}
	return false
}

func hasArg(p corev1.Pod, arg string) bool {
	for _, a := range p.Spec.Containers[0].Args {
		if a == arg {
			return true
		}
	}
	return false
}

// pluginPod returns the one DaemonSet pod on the node that is not going
// away.
func (n *cluster) pluginPod(ctx context.Context, node string) (corev1.Pod, error) {
	pods, err := n.env.Kube.CoreV1().Pods(systemNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=connectors-node,!app.kubernetes.io/component"})
	if err != nil {
		return corev1.Pod{}, err
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Spec.NodeName == node {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		return corev1.Pod{}, fmt.Errorf("%d DaemonSet pods on %s, want 1", len(live), node)
	}
	return live[0], nil
}

// waitProxyDeployment waits until the proxy Deployment has one pod, and
// it Ready, and returns it.
func (n *cluster) waitProxyDeployment(ctx context.Context) (corev1.Pod, error) {
	var ready corev1.Pod
	err := poll(ctx, 3*time.Minute, "the proxy Deployment's one pod Ready", func(ctx context.Context) (bool, error) {
		pods, err := n.env.Kube.CoreV1().Pods(systemNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=proxy"})
		if err != nil || len(pods.Items) != 1 {
			return false, err
		}
		p := pods.Items[0]
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
				ready = p
				return true, nil
			}
		}
		return false, nil
	})
	return ready, err
}

// installNodeTopology goes back to the node topology: it deletes what only
// the split topology has (the proxy Deployment and its disruption budget),
// applies the node overlay again and waits for its DaemonSet pod.
func (n *cluster) installNodeTopology(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := n.kubectl(ctx, "", "delete", "-n", systemNamespace, "deployment/connectors-proxy", "poddisruptionbudget/connectors-proxy", "--ignore-not-found", "--wait=true"); err != nil {
		t.Error(err)
	}
	if err := n.apply(ctx, "overlay"); err != nil {
		t.Fatal(err)
	}
	if err := n.waitPlugin(ctx, "", nodeServiceAccount); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, 2*time.Minute, "one DaemonSet pod of the node topology per node and no proxy Deployment pod", func(ctx context.Context) (bool, error) {
		pods, err := n.env.Kube.CoreV1().Pods(systemNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=connectors-node"})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Spec.ServiceAccountName != nodeServiceAccount {
				return false, nil
			}
		}
		return len(pods.Items) == len(n.nodes), nil
	}); err != nil {
		t.Error(err)
	}
}
