package node

import (
	"context"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// A token of a pod on one node, replayed from a pod on the other node, is
// refused by both proxies, each naming the binding that failed: the other
// node's proxy (reached through the Service, as the pod's files say) by
// the node binding, the token's own node's proxy (reached at its pod
// address) by the source-address binding, since the connection does not
// come from the token's pod. The same request from the token's own pod
// succeeds, so the refusals are the bindings' alone. The Connector's
// credential is in no mounted file, log line or client output, and the
// replayed token in no log line.
func TestTokenFromOtherNodeRefused(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const repoName = "replayed"
	srv, _, password := gitServer(t, repoName)
	n.gitConnector(ctx, t, srv.URL, password, repoName+".git")
	public, err := n.publicURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.waitConnectorStatus(ctx, t, "default", "git", "True", public+v1alpha1.PathPrefix("default", "git"))

	owner, thief := nodeNames[0], nodeNames[1]
	n.runPod(ctx, t, podSpec{name: "token-owner", serviceAccount: "git-clone", securityContext: "{}", script: "exec sleep 3600", node: owner})
	n.runPod(ctx, t, podSpec{name: "token-thief", serviceAccount: "git-clone", securityContext: "{}", script: "exec sleep 3600", node: thief})
	ownerPod := n.waitPhase(ctx, t, "token-owner", corev1.PodRunning)
	n.waitPhase(ctx, t, "token-thief", corev1.PodRunning)
	var token string
	if err := poll(ctx, time.Minute, "the owner pod's context.token", func(context.Context) (bool, error) {
		for p, c := range n.volumes.seen(string(ownerPod.UID)) {
			if strings.HasSuffix(p, "/context.token") && c != "" {
				token = c
			}
		}
		return token != "", nil
	}); err != nil {
		t.Fatal(err)
	}
	ownerPlugin, err := n.pluginPod(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	thiefPlugin, err := n.pluginPod(ctx, thief)
	if err != nil {
		t.Fatal(err)
	}

	path := v1alpha1.PathPrefix("default", "git") + "/" + repoName + ".git/info/refs?service=git-upload-pack"
	header := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(":"+token))
	fetch := func(pod, base string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig="+n.kubeconfig, "exec", "-n", "default", pod, "--", //nolint:gosec // the suite's kubectl
			"curl", "-sS", "-H", header, "-o", "/tmp/body", "-w", "HTTP %{http_code}\n", base+path)
		out, err := cmd.CombinedOutput()
		body, _ := n.kubectl(ctx, "", "exec", "-n", "default", pod, "--", "cat", "/tmp/body")
		result := string(out) + body
		if err != nil {
			t.Logf("curl from %s to %s: %v", pod, base, err)
		}
		if strings.Contains(result, password) {
			t.Errorf("the answer to %s from %s holds the Connector's credential", pod, base)
		}
		return result
	}

	if out := fetch("token-owner", public); !strings.Contains(out, "HTTP 200") {
		t.Fatalf("the token's own pod was not served through its node's proxy:\n%s", out)
	}
	cases := []struct {
		name, base, binding string
		plugin              corev1.Pod
	}{
		{"the other node's proxy, through the Service", public, "node", thiefPlugin},
		{"the token's node's proxy, at its pod address", "http://" + ownerPlugin.Status.PodIP + ":8080", "source-address", ownerPlugin},
	}
	for _, c := range cases {
		out := fetch("token-thief", c.base)
		if !strings.Contains(out, "HTTP 401") && !strings.Contains(out, "HTTP 403") {
			t.Errorf("%s served the replayed token:\n%s", c.name, out)
		}
		if !strings.Contains(out, c.binding+" binding") {
			t.Errorf("%s's refusal does not name the %s binding:\n%s", c.name, c.binding, out)
		}
		want := `"binding_refused":"` + c.binding + `"`
		if err := poll(ctx, 30*time.Second, "the refusal's audit line", func(context.Context) (bool, error) {
			return strings.Contains(n.podLog(t, string(c.plugin.UID)), want), nil
		}); err != nil {
			t.Errorf("%s logged no audit line with %s: %v", c.name, want, err)
		}
	}
	n.noSecret(t, password, string(ownerPod.UID))
	logs, err := n.logs()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs, token) {
		t.Errorf("the replayed token is in a log line")
	}
}
