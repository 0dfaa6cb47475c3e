package node

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// trafficScript sends, from a pod, a steady stream of proxied requests
// through its node's proxy at the shipped public URL: git ls-remote with
// the mounted .gitconfig and curl with the mounted token, each printing
// one line, OK or FAIL, until the file /tmp/stop exists.
const trafficScript = `export GIT_CONFIG_GLOBAL=/connectors/.gitconfig
while [ ! -e /tmp/stop ]; do
  if git ls-remote "$REPO" > /dev/null 2>/tmp/git.err; then echo "GIT OK"; else echo "GIT FAIL $(cat /tmp/git.err | tr '\n' ' ')"; fi
  code=$(curl -s -o /dev/null -w '%{http_code}' -u ":$(cat /connectors/context.token)" "$URL")
  if [ "$code" = 200 ]; then echo "CURL OK"; else echo "CURL FAIL $code"; fi
  sleep 0.2
done
echo DONE
exec sleep 3600`

// upgradeImage is the second local tag of the product's image the
// rolling-upgrade story moves the DaemonSet to.
const upgradeImage = "connectors-node:upgrade"

// A rolling upgrade of the DaemonSet (its image moves to a second tag of
// the same image) while pods on both nodes send a steady stream of proxied
// git and curl requests through their node's proxy: no request fails, and
// the pods read their volumes throughout. No volume is disturbed: each
// pod, started before the upgrade, keeps its one tmpfs mount and its files
// unchanged across it, and the new plugin pods refresh its token file
// afterwards (kubelet, restarted, mints new tokens at once and republishes,
// instead of at 80% of the token's life), with which its requests go on
// succeeding.
func TestRollingUpgradeDropsNoRequest(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	srv, repo, password := gitServer(t, "upgrade-repo")
	n.gitConnector(ctx, t, srv.URL, password, "upgrade-repo.git")
	public, err := n.publicURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.waitConnectorStatus(ctx, t, "default", "git", "True", public+v1alpha1.PathPrefix("default", "git"))
	for _, w := range n.nodes {
		if _, err := run(ctx, "ctr", "--address", w.socket, "-n", "k8s.io", "image", "tag", "--force", "docker.io/library/connectors-node:dev", "docker.io/library/"+upgradeImage); err != nil {
			t.Fatal(err)
		}
	}
	url := public + v1alpha1.PathPrefix("default", "git") + "/upgrade-repo.git/info/refs?service=git-upload-pack"
	pods := make([]*corev1.Pod, len(n.nodes))
	for i, w := range n.nodes {
		name := fmt.Sprintf("upgrade-traffic-%d", i)
		spec := podSpec{name: name, serviceAccount: "git-clone", securityContext: "{}", node: w.name,
			script: "REPO=" + shellQuote([]string{repo}) + " URL=" + shellQuote([]string{url}) + "\n" + trafficScript}
		n.runPod(ctx, t, spec)
	}
	for i := range n.nodes {
		pods[i] = n.waitPhase(ctx, t, fmt.Sprintf("upgrade-traffic-%d", i), corev1.PodRunning)
	}
	count := func(pod *corev1.Pod) (ok, failed int, failures []string) {
		for l := range strings.Lines(n.podLog(t, string(pod.UID))) {
			switch {
			case strings.Contains(l, " OK"):
				ok++
			case strings.Contains(l, " FAIL"):
				failed++
				failures = append(failures, strings.TrimSpace(l))
			}
		}
		return ok, failed, failures
	}
	if err := poll(ctx, time.Minute, "steady traffic from both pods", func(context.Context) (bool, error) {
		for _, p := range pods {
			if ok, _, _ := count(p); ok < 10 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	type volumeState struct {
		files  map[string]string
		mounts int
	}
	volumeOf := func(p *corev1.Pod) volumeState {
		w := n.node(p.Spec.NodeName)
		files, err := volumeFiles(w, p)
		if err != nil {
			t.Fatal(err)
		}
		return volumeState{files: files, mounts: csiMounts(t, w, string(p.UID))}
	}
	before := make([]volumeState, len(pods))
	for i, p := range pods {
		before[i] = volumeOf(p)
		if before[i].mounts != 1 || before[i].files["context.token"] == "" {
			t.Fatalf("%s before the upgrade: %d connectors-csi mounts, token file of %d bytes; want 1 and a token",
				p.Name, before[i].mounts, len(before[i].files["context.token"]))
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		if _, err := n.kubectl(ctx, "", "set", "image", "-n", systemNamespace, "daemonset/connectors-node", "connectors-node=connectors-node:dev"); err != nil {
			t.Error(err)
		}
		if _, err := n.kubectl(ctx, "", "rollout", "status", "-n", systemNamespace, "daemonset/connectors-node", "--timeout=3m"); err != nil {
			t.Error(err)
		}
		if err := n.waitPlugin(ctx, "", nodeServiceAccount); err != nil {
			t.Error(err)
		}
	})
	started := time.Now()
	if _, err := n.kubectl(ctx, "", "set", "image", "-n", systemNamespace, "daemonset/connectors-node", "connectors-node="+upgradeImage); err != nil {
		t.Fatal(err)
	}
	if out, err := n.kubectl(ctx, "", "rollout", "status", "-n", systemNamespace, "daemonset/connectors-node", "--timeout=4m"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("the rollout took %s", time.Since(started).Round(100*time.Millisecond))
	if err := n.waitPlugin(ctx, "", nodeServiceAccount); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // traffic after the rollout
	for i, p := range pods {
		after := volumeOf(p)
		if after.mounts != before[i].mounts {
			t.Errorf("%s has %d connectors-csi mounts after the upgrade, %d before", p.Name, after.mounts, before[i].mounts)
		}
		if !maps.Equal(withoutToken(after.files), withoutToken(before[i].files)) {
			t.Errorf("%s's files changed across the upgrade: %d files before, %d after", p.Name, len(before[i].files), len(after.files))
		}
	}
	// The token file is refreshed afterwards, by the new plugin pods.
	for _, w := range n.nodes {
		if err := w.kubelet.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.kubelet.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("kubelet of %s did not stop within 30 s of SIGTERM", w.name)
		}
		if err := n.kubelet(w, fmt.Sprintf("kubelet-after-upgrade-%d", time.Now().UnixNano())); err != nil {
			t.Fatal(err)
		}
	}
	okAtRefresh := make([]int, len(pods))
	for i, p := range pods {
		w := n.node(p.Spec.NodeName)
		if err := poll(ctx, 3*time.Minute, p.Name+"'s token file refreshed after the upgrade", func(context.Context) (bool, error) {
			files, err := volumeFiles(w, p)
			return err == nil && files["context.token"] != "" && files["context.token"] != before[i].files["context.token"], err
		}); err != nil {
			t.Fatal(err)
		}
		okAtRefresh[i], _, _ = count(p)
		if err := n.waitReady(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	// Requests with the refreshed token.
	if err := poll(ctx, time.Minute, "requests after the refresh", func(context.Context) (bool, error) {
		for i, p := range pods {
			if ok, _, _ := count(p); ok < okAtRefresh[i]+6 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Error(err)
	}
	for i, p := range pods {
		if left := volumeOf(p).mounts; left != before[i].mounts {
			t.Errorf("%s has %d connectors-csi mounts after the refresh, %d before the upgrade", p.Name, left, before[i].mounts)
		}
	}
	for _, p := range pods {
		if _, err := n.kubectl(ctx, "", "exec", "-n", "default", p.Name, "--", "sh", "-c", "echo > /tmp/stop"); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pods {
		_ = poll(ctx, time.Minute, p.Name+" done", func(context.Context) (bool, error) {
			return strings.Contains(n.podLog(t, string(p.UID)), "DONE"), nil
		})
		ok, failed, failures := count(p)
		t.Logf("%s on %s: %d requests succeeded, %d failed", p.Name, p.Spec.NodeName, ok, failed)
		if failed != 0 {
			t.Errorf("%s on %s: %d of %d requests failed during the rolling upgrade:\n%s", p.Name, p.Spec.NodeName, failed, ok+failed, strings.Join(failures, "\n"))
		}
		n.noSecret(t, password, string(p.UID))
	}
}
