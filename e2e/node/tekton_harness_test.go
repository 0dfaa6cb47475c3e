package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/internal/imagebuild"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// Tekton Pipelines in the cluster: its controller and webhook from the
// release manifests of the pinned module's config/ directory, with only the
// image references replaced by images built here from the binaries of
// hack/testbin.sh (tekton-<version>/), each at /ko-app/<name> as its
// controller expects, and a shell image of the host's Debian sh and
// coreutils for -shell-image.

const (
	tektonNamespace = "tekton-pipelines"
	// tektonShellImage is the controller's -shell-image: it writes the
	// steps' scripts into place.
	tektonShellImage = "connectors-e2e-tekton-shell:dev"
)

// tektonBinaries are the Tekton binaries the suite builds an image of; the
// release manifests name each as ko://github.com/tektoncd/pipeline/cmd/<name>.
var tektonBinaries = []string{"controller", "webhook", "entrypoint", "nop", "workingdirinit", "sidecarlogresults"}

// tektonImage is the image of the Tekton binary name.
func tektonImage(name string) string {
	return "connectors-e2e-tekton-" + name + ":dev"
}

// tektonManifestFiles are the files of the module's config/ directory the
// suite applies: the release's CRDs, RBAC, configuration, controller and
// webhook. Left out: the resolvers (remote Tasks; the stories name Tasks in
// the cluster), the events controller (CloudEvents) and the webhook's
// HorizontalPodAutoscaler (no metrics server).
func tektonManifestFiles(config string) ([]string, error) {
	var files []string
	for _, pattern := range []string{"100-namespace/*.yaml", "*.yaml", "300-crds/*.yaml"} {
		m, err := filepath.Glob(filepath.Join(config, pattern))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	files = slices.DeleteFunc(files, func(f string) bool {
		b := filepath.Base(f)
		return b == "events.yaml" || b == "webhook-hpa.yaml"
	})
	if len(files) == 0 {
		return nil, fmt.Errorf("no manifest in %s", config)
	}
	return files, nil
}

var (
	koReference    = regexp.MustCompile(`ko://github\.com/tektoncd/pipeline/cmd/([a-z0-9-]+)`)
	shellImageFlag = regexp.MustCompile(`"-shell-image", "[^"]*"`)
)

// rewriteTektonImages replaces the image references of Tekton's release
// manifests and nothing else: every ko:// reference with the image of
// that binary, and the -shell-image flag's image with shell. A ko://
// reference to a binary not in images, or manifests without the
// -shell-image flag, is an error, so a release that names another image
// fails here instead of in a pod that cannot pull it.
func rewriteTektonImages(manifests string, images map[string]string, shell string) (string, error) {
	var missing []string
	out := koReference.ReplaceAllStringFunc(manifests, func(ref string) string {
		name := koReference.FindStringSubmatch(ref)[1]
		img, ok := images[name]
		if !ok {
			missing = append(missing, name)
			return ref
		}
		return img
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("the manifests name images of %q, which the suite does not build", missing)
	}
	if n := len(shellImageFlag.FindAllString(out, -1)); n != 1 {
		return "", fmt.Errorf("the manifests set -shell-image %d times, want once", n)
	}
	return shellImageFlag.ReplaceAllString(out, fmt.Sprintf(`"-shell-image", %q`, shell)), nil
}

// tektonInstall is the result of installing Tekton, once per run.
var tektonInstall struct {
	sync.Mutex
	done bool
	err  error
}

// tekton installs Tekton Pipelines in the cluster on first use and waits
// until its controller and webhook serve; it fails t when they do not.
func (c *cluster) tekton(ctx context.Context, t *testing.T) {
	t.Helper()
	if bin, err := apiserver.BinaryDir(); err == nil {
		for _, name := range tektonBinaries {
			if _, err := os.Stat(filepath.Join(bin, "tekton", name)); err != nil {
				testenv.SkipOrFail(t, "Tekton's %s is not in %s/tekton (make testbin builds it): %v", name, bin, err)
			}
		}
	}
	tektonInstall.Lock()
	defer tektonInstall.Unlock()
	if !tektonInstall.done {
		start := time.Now()
		tektonInstall.err = c.installTekton(ctx)
		tektonInstall.done = true
		if tektonInstall.err == nil {
			fmt.Fprintf(os.Stderr, "real-node suite: Tekton %s ready in %s\n", tektonVersion(), time.Since(start).Round(100*time.Millisecond))
		}
	}
	if tektonInstall.err != nil {
		t.Fatalf("installing Tekton: %v", tektonInstall.err)
	}
}

// tektonVersion is the Tekton Pipelines version hack/tools/testbin/tekton
// pins.
func tektonVersion() string {
	b, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), "hack", "tools", "testbin", "tekton", "go.mod"))
	if err != nil {
		return "unknown"
	}
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "require" && f[1] == "github.com/tektoncd/pipeline" {
			return f[2]
		}
	}
	return "unknown"
}

func (c *cluster) installTekton(ctx context.Context) error {
	if err := c.tektonImages(ctx); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	manifests, err := c.tektonManifests(ctx)
	if err != nil {
		return err
	}
	// The API server calls the webhook at its Service's ClusterIP, as in
	// a cluster whose control plane runs on a node: the Service range is
	// routed to the first node, where kube-proxy forwards it to the
	// webhook pod.
	if _, err := run(ctx, "ip", "route", "replace", "10.0.0.0/24", "via", c.nodes[0].ip); err != nil {
		return err
	}
	if _, err := c.kubectl(ctx, manifests, "apply", "--server-side", "-f", "-"); err != nil {
		return err
	}
	for _, d := range []string{"tekton-pipelines-controller", "tekton-pipelines-webhook"} {
		if err := poll(ctx, 3*time.Minute, d+" Ready", func(ctx context.Context) (bool, error) {
			dep, err := c.env.Kube.AppsV1().Deployments(tektonNamespace).Get(ctx, d, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return dep.Status.ReadyReplicas == 1, nil
		}); err != nil {
			out, _ := c.kubectl(ctx, "", "describe", "pods", "-n", tektonNamespace)
			return fmt.Errorf("%w\n%s", err, out)
		}
	}
	// Ready pods do not mean the API server reaches the webhook yet: a
	// Task created in a dry run passes through it.
	probe := `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: webhook-probe, namespace: default}
spec:
  steps: [{name: probe, image: ` + tektonShellImage + `, script: "true"}]
`
	return poll(ctx, 2*time.Minute, "the Tekton webhook serving the API server", func(ctx context.Context) (bool, error) {
		_, err := c.kubectl(ctx, probe, "create", "--dry-run=server", "-f", "-")
		return err == nil, err
	})
}

// tektonImages builds the Tekton images and the shell image and imports
// them into every node.
func (c *cluster) tektonImages(ctx context.Context) error {
	bin, err := apiserver.BinaryDir()
	if err != nil {
		return err
	}
	dir := filepath.Join(c.work, "images-tekton")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	var tars []string
	for _, name := range tektonBinaries {
		data, err := os.ReadFile(filepath.Join(bin, "tekton", name)) //nolint:gosec // the test binaries' cache
		if err != nil {
			return fmt.Errorf("%w (make testbin builds it)", err)
		}
		img, err := imagebuild.Build(imagebuild.Spec{
			Files:      []imagebuild.File{{Path: "/ko-app/" + name, Mode: 0o755, Data: data}},
			Entrypoint: []string{"/ko-app/" + name},
		}, runtime.GOARCH)
		if err != nil {
			return err
		}
		tar := filepath.Join(dir, name+".tar")
		if err := imagebuild.WriteTarball(tar, tektonImage(name), img); err != nil {
			return err
		}
		tars = append(tars, tar)
	}
	files, links, err := imagebuild.HostFiles(ctx, "/bin/sh", "/usr/bin/cat", "/usr/bin/touch", "/usr/bin/chmod", "/usr/bin/mkdir", "/usr/bin/cp", "/usr/bin/ls")
	if err != nil {
		return err
	}
	img, err := imagebuild.Build(imagebuild.Spec{
		Files: files, Symlinks: links,
		Env:        []string{"PATH=/usr/bin:/bin"},
		Entrypoint: []string{"/bin/sh"},
	}, runtime.GOARCH)
	if err != nil {
		return err
	}
	tar := filepath.Join(dir, "shell.tar")
	if err := imagebuild.WriteTarball(tar, tektonShellImage, img); err != nil {
		return err
	}
	tars = append(tars, tar)
	for _, w := range c.nodes {
		for _, tar := range tars {
			if err := w.importImage(ctx, tar); err != nil {
				return err
			}
		}
	}
	return nil
}

// tektonManifests reads the release manifests of the pinned module's
// config/ directory, from the module cache, with the images replaced.
func (c *cluster) tektonManifests(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/tektoncd/pipeline") //nolint:gosec // the go tool
	cmd.Dir = filepath.Join(apiserver.RepoRoot(), "hack", "tools", "testbin", "tekton")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download github.com/tektoncd/pipeline: %w", err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", err
	}
	if mod.Dir == "" {
		return "", fmt.Errorf("go mod download github.com/tektoncd/pipeline: %s", mod.Error)
	}
	files, err := tektonManifestFiles(filepath.Join(mod.Dir, "config"))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f) //nolint:gosec // the module cache
		if err != nil {
			return "", err
		}
		b.WriteString("---\n")
		b.Write(data)
		b.WriteString("\n")
	}
	images := map[string]string{}
	for _, name := range tektonBinaries {
		images[name] = tektonImage(name)
	}
	return rewriteTektonImages(b.String(), images, tektonShellImage)
}

// pluginPodOf returns the DaemonSet pod on the node the pod named pod (in
// default) ran on.
func (c *cluster) pluginPodOf(ctx context.Context, t *testing.T, pod string) corev1.Pod {
	t.Helper()
	p, err := c.env.Kube.CoreV1().Pods("default").Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plugin, err := c.pluginPod(ctx, p.Spec.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	return plugin
}

// condition is a condition of a Tekton object's status.
type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// taskRun is what the stories read of a TaskRun.
type taskRun struct {
	Metadata struct {
		UID string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		PodName    string      `json:"podName"`
		Conditions []condition `json:"conditions"`
		Results    []struct {
			Name  string `json:"name"`
			Value any    `json:"value"`
		} `json:"results"`
	} `json:"status"`
}

// succeeded returns the TaskRun's Succeeded condition: "True", "False"
// or "Unknown" (or empty before the controller set it), with its reason.
func (tr *taskRun) succeeded() (status, reason, message string) {
	for _, c := range tr.Status.Conditions {
		if c.Type == "Succeeded" {
			return c.Status, c.Reason, c.Message
		}
	}
	return "", "", ""
}

// getTaskRun reads the TaskRun name in default.
func (c *cluster) getTaskRun(ctx context.Context, name string) (*taskRun, string, error) {
	out, err := c.kubectl(ctx, "", "get", "taskrun", "-n", "default", name, "-o", "json")
	if err != nil {
		return nil, "", err
	}
	tr := &taskRun{}
	if err := json.Unmarshal([]byte(out), tr); err != nil {
		return nil, "", err
	}
	return tr, out, nil
}

// waitTaskRun waits until the TaskRun name has finished (its Succeeded
// condition True or False) and returns it.
func (c *cluster) waitTaskRun(ctx context.Context, name string, timeout time.Duration) (*taskRun, error) {
	var tr *taskRun
	err := poll(ctx, timeout, "the TaskRun "+name+" to finish", func(ctx context.Context) (bool, error) {
		var err error
		tr, _, err = c.getTaskRun(ctx, name)
		if err != nil {
			return false, err
		}
		status, _, _ := tr.succeeded()
		return status == "True" || status == "False", nil
	})
	if err != nil && tr != nil {
		out, _ := c.kubectl(ctx, "", "describe", "taskrun", "-n", "default", name)
		return tr, fmt.Errorf("%w\n%s", err, out)
	}
	if tr == nil {
		return nil, errors.Join(err, errors.New("no TaskRun read"))
	}
	return tr, err
}
