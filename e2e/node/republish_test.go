package node

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/test/servers/gitserver"
)

const (
	republishNamespace = "republish"
	republishPod       = "token-watcher"
	// republishWait bounds the wait for kubelet's refresh: it mints a new
	// token at 80% of the 600 s life overlay's CSIDriver asks for (480 s)
	// and republishes at its next pod sync.
	republishWait = 12 * time.Minute
)

// republishStory is the pod of TestKubeletRepublishRefreshesTheToken. It
// starts right after the node, so the wait for kubelet's refresh overlaps
// the other stories; the test, parallel, checks it after them.
type republishStory struct {
	started  time.Time
	password string
	err      error // the story's setup failed
}

// watcherScript prints, every 5 s, the Git hash of the mounted token file
// and whether git reached the repository through the proxy with the
// mounted .gitconfig (which carries that token).
const watcherScript = `export GIT_CONFIG_GLOBAL=/connectors/.gitconfig
while true; do
  h=$(git hash-object /connectors/context.token)
  if git ls-remote "$REPO" > /dev/null 2>&1; then echo "TOKEN $h OK"; else echo "TOKEN $h FAILED"; fi
  sleep 5
done`

// startRepublish sets up the republish story: a Git server, the Git
// Connector of examples/ in a namespace of its own (the other stories
// rewrite default's), and the watcher pod.
func (n *cluster) startRepublish(ctx context.Context) *republishStory {
	s := &republishStory{started: time.Now()}
	s.err = n.setupRepublish(ctx, s)
	return s
}

func (n *cluster) setupRepublish(ctx context.Context, s *republishStory) error {
	s.password = rand.Text()
	dir := filepath.Join(n.work, "republish-git")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	srv, err := gitserver.Start(dir, "bot", s.password)
	if err != nil {
		return err
	}
	n.stops = append(n.stops, func() { _ = srv.Close() })
	srv.URL = reachable(srv.URL)
	repo, err := srv.CreateRepo("watched", map[string]string{"README.md": readme})
	if err != nil {
		return err
	}
	class, err := catalogText("git.yaml")
	if err != nil {
		return err
	}
	connector, err := exampleText("git-connector.yaml",
		"namespace: default", "namespace: "+republishNamespace,
		"replace-with-a-personal-access-token", s.password,
		"address: https://github.com", "address: "+srv.URL,
		"value: example/private-repo", "value: watched.git")
	if err != nil {
		return err
	}
	pod := podSpec{name: republishPod, namespace: republishNamespace, serviceAccount: "git-clone", securityContext: "{runAsUser: 1000, fsGroup: 1000}",
		restart: "Always", script: "REPO=" + repo + "\n" + watcherScript}
	for _, m := range []string{class, "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + republishNamespace + "}\n", connector, pod.yaml()} {
		if _, err := n.kubectl(ctx, m, "apply", "-f", "-"); err != nil {
			return err
		}
	}
	return nil
}

// kubelet's own republish (requiresRepublish) refreshes the token on a real
// pod: with the CSIDriver's tokenRequests at the shortest allowed
// expirationSeconds (600), kubelet mints a new token at 80% of its life and
// calls NodePublishVolume again; the token file in the running pod changes
// and git still reaches the repository through the proxy with it. The
// credential is in no mounted file and no log line.
func TestKubeletRepublishRefreshesTheToken(t *testing.T) {
	n := suite(t)
	t.Parallel() // after the other stories, which run while kubelet's refresh comes near
	s := n.republish
	if s == nil {
		t.Fatal("the republish story was not started with the node")
	}
	if s.err != nil {
		t.Fatalf("setting up the republish story: %v", s.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), republishWait+time.Minute)
	defer cancel()
	pod, err := n.env.Kube.CoreV1().Pods(republishNamespace).Get(ctx, republishPod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	remaining := republishWait - time.Since(s.started)
	t.Logf("waiting up to %s for kubelet to refresh the token", remaining.Round(time.Second))
	if err := poll(ctx, remaining, "a refreshed token that works through the proxy", func(context.Context) (bool, error) {
		var refreshed bool
		tokens, refreshed = watchedTokens(n.podLog(t, string(pod.UID)))
		return refreshed, nil
	}); err != nil {
		out, _ := n.kubectl(ctx, "", "describe", "pod", "-n", republishNamespace, republishPod)
		t.Fatalf("%v; the pod saw tokens %v\n%s\n%s", err, tokens, n.podLog(t, string(pod.UID)), out)
	}
	t.Logf("the pod saw tokens %v after %s", tokens, time.Since(s.started).Round(time.Second))
	pod, err = n.env.Kube.CoreV1().Pods(republishNamespace).Get(ctx, republishPod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.RestartCount != 0 || pod.Status.Phase != corev1.PodRunning {
			t.Errorf("the watcher pod is %s with %d restarts: the refresh must reach the running container", pod.Status.Phase, cs.RestartCount)
		}
	}
	contents := map[string]bool{}
	for p, c := range n.volumes.seen(string(pod.UID)) {
		if filepath.Base(p) == "context.token" {
			contents[c] = true
		}
	}
	if len(contents) < 2 {
		t.Errorf("the node saw %d versions of the pod's context.token, want the first and the refreshed one", len(contents))
	}
	n.noSecret(t, s.password, string(pod.UID))
}

// watchedTokens reads the watcher's log: the token hashes in the order the
// pod saw them, and whether a token other than the first reached the
// repository through the proxy.
func watchedTokens(log string) ([]string, bool) {
	var tokens []string
	refreshed := false
	for l := range strings.Lines(log) {
		i := strings.Index(l, "TOKEN ")
		if i < 0 {
			continue
		}
		f := strings.Fields(l[i:])
		if len(f) != 3 {
			continue
		}
		h, result := f[1], f[2]
		if len(tokens) == 0 || tokens[len(tokens)-1] != h {
			tokens = append(tokens, h)
		}
		if h != tokens[0] && result == "OK" {
			refreshed = true
		}
	}
	return tokens, refreshed
}
