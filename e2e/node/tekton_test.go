package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
)

// TestTektonImageRewrite checks the step that adapts Tekton's release
// manifests to the cluster: every image reference is replaced, nothing else
// is, and a reference the suite builds no image for is an error.
func TestTektonImageRewrite(t *testing.T) {
	images := map[string]string{"controller": "ctl:dev", "entrypoint": "ep:dev"}
	in := `image: ko://github.com/tektoncd/pipeline/cmd/controller
args: ["-entrypoint-image", "ko://github.com/tektoncd/pipeline/cmd/entrypoint",
  "-shell-image", "cgr.dev/chainguard/busybox@sha256:19f0",
  "-shell-image-win", "mcr.microsoft.com/powershell:nanoserver@sha256:b6d5"]
description: ko://github.com/tektoncd/pipeline is the module
`
	got, err := rewriteTektonImages(in, images, "shell:dev")
	if err != nil {
		t.Fatal(err)
	}
	want := `image: ctl:dev
args: ["-entrypoint-image", "ep:dev",
  "-shell-image", "shell:dev",
  "-shell-image-win", "mcr.microsoft.com/powershell:nanoserver@sha256:b6d5"]
description: ko://github.com/tektoncd/pipeline is the module
`
	if got != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", got, want)
	}
	if _, err := rewriteTektonImages(in+"image: ko://github.com/tektoncd/pipeline/cmd/events\n", images, "shell:dev"); err == nil || !strings.Contains(err.Error(), "events") {
		t.Errorf("a reference to an image not built: got %v, want an error naming it", err)
	}
	if _, err := rewriteTektonImages("image: ko://github.com/tektoncd/pipeline/cmd/controller\n", images, "shell:dev"); err == nil || !strings.Contains(err.Error(), "-shell-image") {
		t.Errorf("no -shell-image: got %v, want an error naming it", err)
	}
}

// recordingGitServer is a Git server of gitserver that also records the
// Authorization header of every request it receives.
type recordingGitServer struct {
	*gitserver.Server
	mu    sync.Mutex
	auths []string
}

func (s *recordingGitServer) authorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

// startRecordingGitServer is gitServer with a server that records the
// Authorization headers it receives.
func startRecordingGitServer(t *testing.T, name string) (*recordingGitServer, string, string) {
	t.Helper()
	password := randomHex(t)
	srv, h, err := gitserver.NewHandler(t.TempDir(), "bot", password)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingGitServer{Server: srv}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.auths = append(rec.auths, r.Header.Get("Authorization"))
		rec.mu.Unlock()
		h.ServeHTTP(w, r)
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	srv.URL = reachable("http://" + ln.Addr().String())
	repo, err := srv.CreateRepo(name, map[string]string{"README.md": readme})
	if err != nil {
		t.Fatal(err)
	}
	return rec, repo, password
}

// The git clone Task of examples/tekton/ run by the real Tekton controller:
// its TaskRun binds the basic-auth workspace to a csi volume of the Git
// Connector's gitconfig, Tekton's pod mounts it from the node's plugin,
// and the step clones the private repository through the reverse proxy.
// The server saw the Secret's user and never the pod's token, and the
// password is in no mounted file, log line, result, or the TaskRun's or
// the pod's object.
func TestTektonGitCloneThroughTheReverseProxy(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n.tekton(ctx, t)
	name := "tekton-git-clone"
	srv, repo, password := startRecordingGitServer(t, name)
	n.gitConnector(ctx, t, srv.URL, password, name+".git")
	public, err := n.publicURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.waitConnectorStatus(ctx, t, "default", "git", "True", public+v1alpha1.PathPrefix("default", "git"))

	tr, pod := n.runTaskRun(ctx, t, name, onNode(t, "tekton/git-clone-task.yaml"), example(t, "tekton/git-clone-taskrun.yaml",
		"https://github.com/example/private-repo", repo,
		"name: git-clone-demo\n", "name: "+name+"\n",
	))
	if status, reason, msg := tr.succeeded(); status != "True" {
		t.Fatalf("the TaskRun ended %s (%s): %s\n%s", status, reason, msg, n.podLog(t, pod.uid))
	}
	if log := n.podLog(t, pod.uid); !strings.Contains(log, "initial commit") {
		t.Errorf("the step's log does not show the cloned commit:\n%s", log)
	}
	results := map[string]string{}
	for _, r := range tr.Status.Results {
		results[r.Name] = fmt.Sprint(r.Value)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(results["commit"]) || results["url"] != repo {
		t.Errorf("the TaskRun's results are %q, want the commit and %s", results, repo)
	}
	if users := srv.Users(); len(users) == 0 || users[0] != "bot" {
		t.Errorf("the Git server saw users %q, want bot: the proxy did not inject the credential", users)
	}
	n.checkTektonNoSecret(ctx, t, name, pod, password, srv.authorizations())
}

// tektonPod is what the stories read of a TaskRun's pod.
type tektonPod struct {
	name, uid string
}

// runTaskRun starts the TaskRun (startTaskRun), waits until it has
// finished and returns it and its pod.
func (n *cluster) runTaskRun(ctx context.Context, t *testing.T, name, task, taskRun string) (*taskRun, tektonPod) {
	t.Helper()
	n.startTaskRun(ctx, t, name, task, taskRun)
	tr, err := n.waitTaskRun(ctx, name, 4*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tr, n.taskRunPod(ctx, t, tr)
}

// startTaskRun applies the Task and creates the TaskRun, replacing a
// TaskRun of the same name.
func (n *cluster) startTaskRun(ctx context.Context, t *testing.T, name, task, taskRun string) {
	t.Helper()
	if _, err := n.kubectl(ctx, task, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, "", "delete", "taskrun", "-n", "default", name, "--ignore-not-found", "--wait=true"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, taskRun, "create", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.kubectl(ctx, "", "delete", "taskrun", "-n", "default", name, "--ignore-not-found")
	})
}

// taskRunPod returns the TaskRun's pod.
func (n *cluster) taskRunPod(ctx context.Context, t *testing.T, tr *taskRun) tektonPod {
	t.Helper()
	if tr.Status.PodName == "" {
		t.Fatal("the TaskRun names no pod")
	}
	uid, err := n.kubectl(ctx, "", "get", "pod", "-n", "default", tr.Status.PodName, "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(err)
	}
	return tektonPod{name: tr.Status.PodName, uid: uid}
}

// checkTektonNoSecret checks that the pod's token, read from its volume,
// is in none of the Authorization headers the server saw (serverAuths; nil
// for a server that records none), and that the
// secret and the pod's token are in no mounted file (the token's own file
// aside), log line, TaskRun or pod object.
func (n *cluster) checkTektonNoSecret(ctx context.Context, t *testing.T, name string, pod tektonPod, secret string, serverAuths []string) {
	t.Helper()
	var podToken string
	for f, c := range n.volumes.seen(pod.uid) {
		if filepath.Base(f) == "context.token" {
			podToken = strings.TrimSpace(c)
		}
	}
	if podToken == "" {
		t.Fatal("the node saw no context.token in the TaskRun pod's volume")
	}
	if serverAuths != nil && len(serverAuths) == 0 {
		t.Error("the server saw no request")
	}
	for _, a := range serverAuths {
		if holdsToken(a, podToken) {
			t.Error("the pod's token reached the server")
		}
	}
	n.noSecret(t, secret, pod.uid)
	for _, obj := range [][]string{{"taskrun", name}, {"pod", pod.name}} {
		out, err := n.kubectl(ctx, "", "get", obj[0], "-n", "default", obj[1], "-o", "yaml")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, secret) {
			t.Errorf("the credential is in the %s object", obj[0])
		}
		if strings.Contains(out, podToken) {
			t.Errorf("the pod's token is in the %s object", obj[0])
		}
	}
}

// holdsToken reports whether an Authorization header holds token, as it
// is (Bearer) or in a Basic credential's base64.
func holdsToken(authorization, token string) bool {
	if strings.Contains(authorization, token) {
		return true
	}
	scheme, credential, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(credential))
	return err == nil && strings.Contains(string(decoded), token)
}

// The stories' check that the pod's token never reached a server reads a
// Basic credential too: the files of the volume name the proxy with the
// token as a Basic password, which a proxy that passed it on would send
// base64-encoded.
func TestTektonTokenCheckReadsBasicCredentials(t *testing.T) {
	const token = "eyJhbGciOiJSUzI1NiJ9.payload.signature"
	for _, tc := range []struct {
		authorization string
		want          bool
	}{
		{"Bearer " + token, true},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("default/maven:"+token)), true},
		{"basic " + base64.StdEncoding.EncodeToString([]byte("default/maven:"+token)), true},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("deployer:the-password")), false},
		{"Basic not-base64!", false},
		{"", false},
	} {
		if got := holdsToken(tc.authorization, token); got != tc.want {
			t.Errorf("holdsToken(%q) = %v, want %v", tc.authorization, got, tc.want)
		}
	}
}

// The git clone TaskRun as a ServiceAccount with no RBAC on the Connector:
// the pod never starts, `kubectl describe pod` shows the plugin's
// PermissionDenied naming the ServiceAccount and the Connector in its
// FailedMount event, and the TaskRun fails when its timeout ends.
func TestTektonTaskRunWithoutRBACShowsPermissionDenied(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	n.tekton(ctx, t)
	name := "tekton-no-rbac"
	n.gitConnector(ctx, t, "http://127.0.0.1:1", randomHex(t), "repo.git")
	if _, err := n.kubectl(ctx, "", "create", "serviceaccount", "-n", "default", name); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatal(err)
	}
	n.startTaskRun(ctx, t, name, onNode(t, "tekton/git-clone-task.yaml"), example(t, "tekton/git-clone-taskrun.yaml",
		"name: git-clone-demo\n", "name: "+name+"\n",
		"  serviceAccountName: git-clone\n", "  serviceAccountName: "+name+"\n  timeout: 1m\n",
	))
	want := fmt.Sprintf(`PermissionDenied desc = system:serviceaccount:default:%s may not get connector "default/git"`, name)
	var describe string
	if err := poll(ctx, 3*time.Minute, "PermissionDenied in the TaskRun pod's events", func(ctx context.Context) (bool, error) {
		tr, _, err := n.getTaskRun(ctx, name)
		if err != nil || tr.Status.PodName == "" {
			return false, err
		}
		describe, err = n.kubectl(ctx, "", "describe", "pod", "-n", "default", tr.Status.PodName)
		return strings.Contains(describe, "FailedMount") && strings.Contains(strings.Join(strings.Fields(describe), " "), want), err
	}); err != nil {
		t.Fatalf("kubectl describe pod shows no FailedMount event with %q: %v\n%s", want, err, describe)
	}
	for l := range strings.Lines(describe) {
		if strings.Contains(l, "FailedMount") || strings.HasPrefix(strings.TrimSpace(l), "Status:") {
			t.Logf("kubectl describe pod: %s", strings.TrimSpace(l))
		}
	}
	tr, err := n.waitTaskRun(ctx, name, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, reason, msg := tr.succeeded(); status != "False" || reason != "TaskRunTimeout" {
		t.Errorf("the TaskRun ended %s (%s: %s), want False (TaskRunTimeout)", status, reason, msg)
	}
}

// The kubectl Task of examples/tekton/ run by the real Tekton controller
// with a k8s Connector whose cluster is the suite's API server: kubectl in
// the step, with the workspace's kubeconfig, goes through the proxy, and
// the API server sees the Connector's ServiceAccount (auth whoami), not the
// pod's. The Connector's token is in no mounted file, log line, result, or
// the TaskRun's or the pod's object.
func TestTektonKubectlThroughTheK8sConnector(t *testing.T) {
	n := suite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	n.tekton(ctx, t)
	if _, err := n.kubectl(ctx, catalogClass(t, "kubernetes.yaml"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, kubectlTargetObjects, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	token, err := n.kubectl(ctx, "", "create", "token", "-n", "default", "operator", "--duration=1h")
	if err != nil {
		t.Fatal(err)
	}
	token = strings.TrimSpace(token)
	secrets := example(t, "tekton/k8s-connector.yaml",
		"name: cluster-token", "name: tekton-cluster-token",
		"name: cluster-ca", "name: tekton-cluster-ca",
		"replace-with-a-serviceaccount-token", token,
		"ca.crt: replace-with-the-cluster-ca", fmt.Sprintf("ca.crt: %q", string(n.env.Config.CAData)),
	)
	if _, err := n.kubectl(ctx, secrets, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.kubectl(ctx, "", "delete", "-n", "default", "connector/cluster", "secret/tekton-cluster-token", "secret/tekton-cluster-ca", "--ignore-not-found")
	})

	name := "tekton-kubectl"
	tr, pod := n.runTaskRun(ctx, t, name,
		example(t, "tekton/kubectl-task.yaml", "image: bitnami/kubectl:1.33", "image: "+workloadImage),
		example(t, "tekton/kubectl-taskrun.yaml", "name: kubectl-demo\n", "name: "+name+"\n"))
	if status, reason, msg := tr.succeeded(); status != "True" {
		t.Fatalf("the TaskRun ended %s (%s): %s\n%s", status, reason, msg, n.podLog(t, pod.uid))
	}
	var output string
	for _, r := range tr.Status.Results {
		if r.Name == "output" {
			output = fmt.Sprint(r.Value)
		}
	}
	if want := "system:serviceaccount:default:operator"; output != want {
		t.Errorf("kubectl auth whoami in the step printed %q, want %q (the Connector's identity)", output, want)
	}
	n.checkTektonNoSecret(ctx, t, name, pod, token, nil)
}
