// Command demo shows connectors-node end to end on one machine: a real
// kube-apiserver, a Git server that wants a password, the node service, and
// a real `git clone` through the proxy from a volume that holds no password.
//
// It plays kubelet: it runs the pod's object on its node, mints the pod's
// token bound to it with the TokenRequest API, and
// publishes the volume over the CSI socket, with the volume attributes of
// examples/git-clone-job.yaml. Run it as root (it mounts a tmpfs):
//
//	go run ./test/demo --binary bin/connectors-node
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/nodeproc"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

const (
	namespace = "default"
	audience  = "connectors-proxy"
	nodeName  = "demo-node"
)

func main() {
	binary := flag.String("binary", "bin/connectors-node", "the connectors-node binary to run")
	keep := flag.Bool("keep", false, "leave everything running until interrupted, to look around")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{binary: *binary, keep: *keep, out: os.Stdout}
	err := d.run(ctx)
	d.cleanup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		os.Exit(1)
	}
	d.printf("\ndemo passed: git cloned through the proxy; the pod's volume never held the Git password.\n")
}

type demo struct {
	binary string
	keep   bool
	out    io.Writer

	work     string
	env      *apiserver.Env
	git      *gitserver.Server
	node     *nodeproc.Node
	target   string
	cleanups []func()
}

func (d *demo) step(n int, title string, f func() error) error {
	d.printf("\n==> [%d/7] %s\n", n, title)
	start := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("step %d (%s): %w", n, title, err)
	}
	d.printf("    ok (%.1fs)\n", time.Since(start).Seconds())
	return nil
}

func (d *demo) say(format string, args ...any) { d.printf("    "+format+"\n", args...) }

// printf writes progress; a failed write to the terminal is not worth stopping for.
func (d *demo) printf(format string, args ...any) { _, _ = fmt.Fprintf(d.out, format, args...) }

func (d *demo) onCleanup(f func()) { d.cleanups = append(d.cleanups, f) }

func (d *demo) cleanup() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
}

func (d *demo) run(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root: publishing a volume mounts a tmpfs")
	}
	var err error
	if d.work, err = os.MkdirTemp("", "connectors-demo-"); err != nil {
		return err
	}
	d.onCleanup(func() { _ = os.RemoveAll(d.work) })

	password := randomString(16)
	var repoURL string
	steps := []struct {
		title string
		f     func() error
	}{
		{"Start etcd and kube-apiserver; install the CRDs, RBAC and example ConnectorClasses", d.startAPIServer},
		{"Start a Git server that requires HTTP Basic auth", func() error {
			repoURL, err = d.startGit(password)
			return err
		}},
		{"Create the Git password Secret, a Connector, a ServiceAccount and a RoleBinding", func() error { return d.createConnector(ctx, password) }},
		{"Start connectors-node (CSI socket and proxy) against the API server", func() error { return d.startNode(ctx) }},
		{"Play kubelet: mint the pod's token and call NodePublishVolume", func() error { return d.publish(ctx) }},
		{"Run git clone with HOME set to the published volume", func() error { return d.clone(repoURL, password) }},
		{"Unpublish the volume and stop everything", func() error { return d.unpublish(ctx) }},
	}
	for i, s := range steps {
		if err := d.step(i+1, s.title, s.f); err != nil {
			return err
		}
		if i == 5 && d.keep {
			d.printf("\n    --keep: volume at %s, node log at %s; press Ctrl-C to finish\n", d.target, d.node.LogPath)
			<-ctx.Done()
		}
	}
	return nil
}

func repoRoot() string { return apiserver.RepoRoot() }

func (d *demo) startAPIServer() error {
	env, err := apiserver.New(apiserver.Options{})
	if err != nil {
		return err
	}
	d.env = env
	d.onCleanup(func() { _ = env.Stop() })
	d.say("kube-apiserver at %s", env.Config.Host)
	if err := manifests.InstallBase(context.Background(), env.Client, repoRoot()); err != nil {
		return err
	}
	d.say("installed deploy/base/crds, deploy/base/namespace.yaml, deploy/base/rbac.yaml, deploy/base/admission.yaml, the deploy/classes catalog and examples/connectorclass-api.yaml")
	return nil
}

func (d *demo) startGit(password string) (string, error) {
	root := filepath.Join(d.work, "git")
	if err := os.MkdirAll(root, 0o750); err != nil {
		return "", err
	}
	s, err := gitserver.Start(root, "bot", password)
	if err != nil {
		return "", err
	}
	d.git = s
	d.onCleanup(func() { _ = s.Close() })
	url, err := s.CreateRepo("demo", map[string]string{"README.md": "Cloned through the connectors proxy.\n"})
	if err != nil {
		return "", err
	}
	resp, err := http.Get(url + "/info/refs?service=git-upload-pack") //nolint:gosec,noctx // the demo's own loopback server
	if err != nil {
		return "", err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return "", fmt.Errorf("git server answered %d without credentials, want 401", resp.StatusCode)
	}
	d.say("repository %s (anonymous access: %d %s)", url, resp.StatusCode, http.StatusText(resp.StatusCode))
	return url, nil
}

// createConnector applies examples/git-connector.yaml with the Git server's
// address and the password filled in.
func (d *demo) createConnector(ctx context.Context, password string) error {
	objs, err := manifests.Load(filepath.Join(repoRoot(), "examples", "git-connector.yaml"))
	if err != nil {
		return err
	}
	for _, u := range objs {
		switch u.GetKind() {
		case "Secret":
			if err := unstructured.SetNestedField(u.Object, password, "stringData", "password"); err != nil {
				return err
			}
		case "Connector":
			if err := unstructured.SetNestedField(u.Object, d.git.URL, "spec", "address"); err != nil {
				return err
			}
		}
		d.say("%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
	}
	return manifests.Create(ctx, d.env.Client, objs)
}

// startNode runs the binary with the deploy/ ServiceAccount's own token, so
// the demo also shows that deploy/base/rbac.yaml is enough.
func (d *demo) startNode(ctx context.Context) error {
	kubeconfig := filepath.Join(d.work, "node.kubeconfig")
	if err := nodeproc.WriteKubeconfig(ctx, d.env, kubeconfig, time.Hour); err != nil {
		return err
	}
	node, err := nodeproc.Start(ctx, nodeproc.Options{
		Binary:     d.binary,
		Name:       nodeName,
		Kubeconfig: kubeconfig,
		Work:       d.work,
		Args: []string{
			// The metrics the demo points at are read on loopback, without a token.
			"--metrics-auth=false",
			// No cluster DNS here: host-form status addresses (c-<name>.<ns>.svc)
			// would not resolve for the tools the stories run.
			"--status=false",
		},
	})
	if err != nil {
		return err
	}
	d.node = node
	d.onCleanup(node.Stop)
	d.say("connectors-node %s", strings.Join(node.Args, " "))
	d.say("ready: proxy on %s, CSI socket %s, metrics on http://%s/metrics", node.Proxy, node.Socket, node.Ops)
	return nil
}

// volumeAttributes reads the CSI volume attributes of the example Job.
func volumeAttributes() (map[string]string, error) {
	objs, err := manifests.Load(filepath.Join(repoRoot(), "examples", "git-clone-job.yaml"))
	if err != nil {
		return nil, err
	}
	vols, _, err := unstructured.NestedSlice(objs[0].Object, "spec", "template", "spec", "volumes")
	if err != nil || len(vols) == 0 {
		return nil, fmt.Errorf("examples/git-clone-job.yaml has no volumes")
	}
	attrs, _, err := unstructured.NestedStringMap(vols[0].(map[string]any), "csi", "volumeAttributes")
	if err != nil {
		return nil, err
	}
	return attrs, nil
}

func (d *demo) publish(ctx context.Context) error {
	// kubelet runs the pod on its node and mints its token bound to it; the
	// proxy accepts the token only from this node and the pod's IP, the
	// loopback address git connects from.
	if err := kubelet.RegisterNode(ctx, d.env.Kube, nodeName); err != nil {
		return err
	}
	pod, err := kubelet.RunPod(ctx, d.env.Kube, kubelet.Pod{Namespace: namespace, Name: "git-clone-demo", ServiceAccount: "git-clone"}, nodeName, "127.0.0.1")
	if err != nil {
		return err
	}
	tok, err := kubelet.MintToken(ctx, d.env.Kube, pod, audience, time.Hour)
	if err != nil {
		return err
	}
	token := tok.Token
	d.say("pod %s/%s on node %s with IP 127.0.0.1; its token is bound to it", namespace, pod.Name, nodeName)
	attrs, err := volumeAttributes()
	if err != nil {
		return err
	}
	d.target = filepath.Join(d.work, "pod", "volumes", "connectors")
	if err := os.MkdirAll(d.target, 0o750); err != nil {
		return err
	}
	tokens := map[string]kubelet.Token{audience: tok}
	if err := d.node.Kubelet.Publish(ctx, "demo-volume", d.target, pod, attrs, tokens); err != nil {
		return err
	}
	// Unpublish even when a later step fails (a second unpublish succeeds).
	d.onCleanup(func() { _ = d.node.Kubelet.Unpublish(context.Background(), "demo-volume", d.target) })
	d.say("volume attributes from examples/git-clone-job.yaml: %v", attrs)
	entries, err := os.ReadDir(d.target)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") {
			names = append(names, e.Name())
		}
	}
	d.say("published %s: %s", d.target, strings.Join(names, " "))
	gc, err := os.ReadFile(filepath.Join(d.target, ".gitconfig")) //nolint:gosec // the volume just published
	if err != nil {
		return err
	}
	d.say(".gitconfig (the pod's token shown as <token>):")
	redacted := strings.ReplaceAll(string(gc), base64.StdEncoding.EncodeToString([]byte(":"+token)), "<token>")
	for _, l := range strings.Split(strings.TrimSpace(redacted), "\n") {
		d.say("  %s", l)
	}
	return nil
}

func (d *demo) clone(repoURL, password string) error {
	dest := filepath.Join(d.work, "clone")
	cmd := exec.Command("git", "clone", repoURL, dest) //nolint:gosec,noctx // git with the demo's own repository URL; bounded by git itself
	cmd.Env = gitserver.Env(d.target)
	out, err := cmd.CombinedOutput()
	d.say("$ HOME=%s git clone %s", d.target, repoURL)
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		d.say("  %s", l)
	}
	if err != nil {
		return fmt.Errorf("git clone: %w", err)
	}
	readme, err := os.ReadFile(filepath.Join(dest, "README.md")) //nolint:gosec // the clone just made
	if err != nil {
		return err
	}
	d.say("cloned README.md: %s", strings.TrimSpace(string(readme)))
	if users := d.git.Users(); len(users) == 0 {
		return errors.New("the Git server saw no authenticated request")
	}
	d.say("the Git server saw user %q: the proxy injected the credential", d.git.Users()[0])
	if log, err := os.ReadFile(d.node.LogPath); err == nil {
		d.say("the proxy's audit lines:")
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, `"msg":"request"`) {
				d.say("  %s", l)
			}
		}
	}

	// No mounted file holds the password.
	err = filepath.WalkDir(d.target, func(p string, e fs.DirEntry, err error) error {
		// Symlinks (..data and the per-file links) lead to the files walked anyway.
		if err != nil || e.IsDir() || e.Type()&fs.ModeSymlink != 0 {
			return err
		}
		b, err := os.ReadFile(p) //nolint:gosec // files of the volume just published
		if err != nil {
			return err
		}
		if strings.Contains(string(b), password) {
			return fmt.Errorf("%s holds the Git password", p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.say("the Git password is in none of the mounted files")
	tok, err := os.ReadFile(filepath.Join(d.target, "context.token"))
	if err != nil {
		return err
	}
	exp, err := tokenExpiry(string(tok))
	if err != nil {
		return err
	}
	left := time.Until(exp)
	if left > time.Hour+time.Minute {
		return fmt.Errorf("context.token expires in %s, want within the hour", left.Round(time.Second))
	}
	d.say("context.token expires in %s (at %s)", left.Round(time.Second), exp.UTC().Format(time.RFC3339))
	return nil
}

func (d *demo) unpublish(ctx context.Context) error {
	if err := d.node.Kubelet.Unpublish(ctx, "demo-volume", d.target); err != nil {
		return err
	}
	if _, err := os.Stat(d.target); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s still exists after unpublish", d.target)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	if strings.Contains(string(mounts), d.target) {
		return fmt.Errorf("%s is still mounted", d.target)
	}
	d.say("unmounted and removed %s", d.target)
	return nil
}

func tokenExpiry(token string) (time.Time, error) {
	c, ok := kube.TokenClaims(token)
	if !ok || c.Expiry.IsZero() {
		return time.Time{}, errors.New("context.token is not a JWT with an expiry")
	}
	return c.Expiry, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
