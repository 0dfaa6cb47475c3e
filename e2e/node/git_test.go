package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
)

const readme = "Cloned on a real node.\n"

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// example reads a file of examples/ with the replacements applied.
func example(t *testing.T, name string, replace ...string) string {
	t.Helper()
	s, err := exampleText(name, replace...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exampleText reads a file of examples/ with the replacements (old, new
// pairs) applied; each old string must be in the file.
func exampleText(name string, replace ...string) (string, error) {
	b, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), "examples", name)) //nolint:gosec // the repository's examples
	if err != nil {
		return "", err
	}
	s := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			return "", fmt.Errorf("examples/%s has no %q to replace", name, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	return s, nil
}

// onNode adapts a workload of examples/ to the test cluster: the local
// workload image.
func onNode(t *testing.T, name string, replace ...string) string {
	t.Helper()
	return example(t, name, append([]string{
		"image: alpine/git:2.47.2", "image: " + workloadImage,
	}, replace...)...)
}

// onNodeNamed is onNode for a workload the scheduler places on the node
// named node.
func onNodeNamed(t *testing.T, name, node string, replace ...string) string {
	t.Helper()
	return onNode(t, name, append([]string{
		"      restartPolicy: Never", "      restartPolicy: Never\n      nodeSelector: {kubernetes.io/hostname: " + node + "}",
	}, replace...)...)
}

// reachable maps the address of a test server, which listens on the
// suite's loopback, to the name pods reach it by (testServersName, which
// the cluster DNS maps to hostIP, forwarded to loopback).
func reachable(address string) string {
	return strings.Replace(address, "://127.0.0.1:", "://"+testServersName+":", 1)
}

// noSecret checks that secret is in no file of the pod's volumes and in no
// log line of the node.
func (n *cluster) noSecret(t *testing.T, secret, podUID string) {
	t.Helper()
	files := n.volumes.seen(podUID)
	if len(files) == 0 {
		t.Errorf("no file of pod %s's volumes was seen on the node", podUID)
	}
	for p, c := range files {
		if strings.Contains(c, secret) {
			t.Errorf("the credential is in the mounted file %s", p)
		}
	}
	logs, err := n.logs()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs, secret) {
		t.Errorf("the credential is in a log line of the node")
	}
}

// The git-clone Job of examples/git-clone-job.yaml on each node, placed by
// the scheduler: kubelet mints the token, the node's DaemonSet pod
// publishes the volume, and the Job's container clones with the mounted
// .gitconfig through the shipped public URL, the Service connectors-proxy
// (internalTrafficPolicy: Local), so through its own node's proxy, which
// checks that the connection comes from the pod's address (the source
// binding is on, as shipped). The audit line of the Job's clone is in the
// log of its node's DaemonSet pod and in no other node's.
func TestGitCloneJobOnEachNodeThroughItsOwnProxy(t *testing.T) {
	n := suite(t)
	for i, node := range nodeNames {
		t.Run(node, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			name := fmt.Sprintf("git-clone-%d", i)
			pod := n.gitCloneJob(ctx, t, name, node)
			for _, other := range nodeNames {
				plugin, err := n.pluginPod(ctx, other)
				if err != nil {
					t.Fatal(err)
				}
				if other == node {
					if !n.waitAuditedPath(ctx, t, string(plugin.UID), "default/git", "/"+name) {
						t.Errorf("the DaemonSet pod of %s logged no injected request for /%s:\n%s", node, name, n.podLog(t, string(plugin.UID)))
					} else {
						t.Logf("the audit line in %s's DaemonSet pod %s:\n%s", node, plugin.Name, auditLine(n.podLog(t, string(plugin.UID)), "default/git", "/"+name))
					}
				} else if auditedPath(n.podLog(t, string(plugin.UID)), "default/git", "/"+name) {
					t.Errorf("the DaemonSet pod of %s logged the clone of the Job on %s", other, node)
				}
			}
			if pod.Status.PodIP == "" || pod.Spec.HostNetwork {
				t.Errorf("the Job's pod ran with IP %q, hostNetwork %v: want the pod network", pod.Status.PodIP, pod.Spec.HostNetwork)
			}
		})
	}
}

// waitAuditedPath waits up to 30 s for the container logs of the pod (uid)
// to hold auditedPath's line.
func (n *cluster) waitAuditedPath(ctx context.Context, t *testing.T, uid, connector, path string) bool {
	t.Helper()
	return poll(ctx, 30*time.Second, "the audit line", func(context.Context) (bool, error) {
		return auditedPath(n.podLog(t, uid), connector, path), nil
	}) == nil
}

// auditedPath reports whether a container log has the proxy's request line
// for the connector with the credential injected and a path holding path.
func auditedPath(log, connector, path string) bool {
	return auditLine(log, connector, path) != ""
}

// auditLine returns auditedPath's first line, without the container log's
// prefix, or "".
func auditLine(log, connector, path string) string {
	for l := range strings.Lines(log) {
		if auditedInjection(l, connector, "") && strings.Contains(l, `"path":"`) && strings.Contains(l[strings.Index(l, `"path":"`):], path) {
			if i := strings.Index(l, "{"); i >= 0 {
				l = l[i:]
			}
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// gitCloneJob runs examples/git-clone-job.yaml as the Job name on the node
// against a Git server of its own with a repository of that name, checks
// that it cloned with the injected credential and that the credential is
// in no mounted file and no log line, and returns the Job's pod.
func (n *cluster) gitCloneJob(ctx context.Context, t *testing.T, name, node string) corev1.Pod {
	t.Helper()
	srv, repo, password := gitServer(t, name)
	n.gitConnector(ctx, t, srv.URL, password, name+".git")
	// The files name the address in the Connector's status once the status
	// writer has reconciled it: the path form under the proxy the
	// DaemonSet's pod names.
	public, err := n.publicURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.waitConnectorStatus(ctx, t, "default", "git", "True", public+v1alpha1.PathPrefix("default", "git"))
	pod := n.runJob(ctx, t, name, onNodeNamed(t, "git-clone-job.yaml", node,
		"https://github.com/example/private-repo", repo,
		"metadata:\n  name: git-clone\n", "metadata:\n  name: "+name+"\n",
	))
	if log := n.podLog(t, string(pod.UID)); !strings.Contains(log, "initial commit") {
		t.Errorf("the Job's log does not show the cloned commit:\n%s", log)
	}
	if users := srv.Users(); len(users) == 0 || users[0] != "bot" {
		t.Errorf("the Git server saw users %q, want bot: the proxy did not inject the credential", users)
	}
	if pod.Spec.NodeName != node {
		t.Errorf("the Job's pod ran on %s, want %s", pod.Spec.NodeName, node)
	}
	n.noSecret(t, password, string(pod.UID))
	if !t.Failed() {
		t.Logf("the Job's pod %s on %s (%s) cloned %s through %s; its log:\n%s", pod.Name, pod.Spec.NodeName, pod.Status.PodIP,
			repo, public, strings.TrimSpace(n.podLog(t, string(pod.UID))))
	}
	return pod
}

// gitSecret is the name of gitConnector's Secret for the password.
func gitSecret(password string) string {
	return "git-credentials-" + password[:8]
}

// gitServer starts a Git server for t whose user bot has a random
// password, with the repository name holding README.md, and returns the
// server, the repository's URL and the password.
func gitServer(t *testing.T, name string) (*gitserver.Server, string, string) {
	t.Helper()
	password := randomHex(t)
	srv, err := gitserver.Start(t.TempDir(), "bot", password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	srv.URL = reachable(srv.URL)
	repo, err := srv.CreateRepo(name, map[string]string{"README.md": readme})
	if err != nil {
		t.Fatal(err)
	}
	return srv, repo, password
}

// runJob applies the Job manifest, waits until the Job named name has
// finished, checks that it succeeded on the node, placed by the scheduler,
// and returns its pod.
func (n *cluster) runJob(ctx context.Context, t *testing.T, name, manifest string) corev1.Pod {
	t.Helper()
	if _, err := n.kubectl(ctx, manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	var job *batchv1.Job
	if err := poll(ctx, 3*time.Minute, "the "+name+" Job to finish", func(ctx context.Context) (bool, error) {
		var err error
		job, err = n.env.Kube.BatchV1().Jobs("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return job.Status.Succeeded > 0 || job.Status.Failed > 0, nil
	}); err != nil {
		out, _ := n.kubectl(ctx, "", "describe", "pods", "-n", "default", "-l", "job-name="+name)
		t.Fatalf("%v\n%s", err, out)
	}
	pods, err := n.env.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + name})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("the Job's pods: %v (%d)", err, len(pods.Items))
	}
	pod := pods.Items[0]
	if job.Status.Succeeded == 0 {
		t.Fatalf("the %s Job failed; its pod's log:\n%s", name, n.podLog(t, string(pod.UID)))
	}
	if n.node(pod.Spec.NodeName) == nil {
		t.Errorf("the pod ran on %q, want one of %q (placed by the scheduler)", pod.Spec.NodeName, nodeNames)
	}
	return pod
}

// gitConnector applies the catalog's Git ConnectorClass and examples/git-connector.yaml
// (Secret, Connector, the git-clone ServiceAccount and its RBAC) for a Git
// server at address with the password, and the repository the class's
// auth probe reads (for a server that has none, any name). The Secret is one of the
// password's own (gitSecret): the proxies cache a Secret they read for
// --secret-cache-ttl, so a story that rewrote a shared one could meet the
// previous story's password.
func (n *cluster) gitConnector(ctx context.Context, t *testing.T, address, password, repo string) {
	t.Helper()
	if _, err := n.kubectl(ctx, catalogClass(t, "git.yaml"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, example(t, "git-connector.yaml",
		"name: git-credentials", "name: "+gitSecret(password),
		"replace-with-a-personal-access-token", password,
		"address: https://github.com", "address: "+address,
		"value: example/private-repo", "value: "+repo,
	), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}
