package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/internal/imagebuild"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/registry"
	"github.com/connectors-node/connectors-node/test/testenv"
)

const (
	// tektonCraneImage holds crane (built from the tools module) and the
	// host's sh, tar and tr, for the crane Task's step.
	tektonCraneImage = "connectors-e2e-tekton-crane:dev"
	// tektonBuildahImage holds the host's buildah and sh, for the buildah
	// Task's step.
	tektonBuildahImage = "connectors-e2e-tekton-buildah:dev"
)

// The image build-and-push Tasks of examples/tekton/ run by the real
// Tekton controller, each pushing to the registry Connector's reverse-proxy
// address with the registry-config workspace's config.json alone, against
// docker-registry with token authentication: crane packs the source
// workspace (a ConfigMap) into a layer; buildah builds its Containerfile,
// unprivileged (vfs storage, chroot isolation). The proxy did the token
// flow with the robot account, the pod's token never reached the token
// service, and the robot's password and the registry tokens are in no
// mounted file, log line, result, or the TaskRun's or the pod's object.
func TestTektonImageBuildPushThroughTheReverseProxy(t *testing.T) {
	n := suite(t)
	if _, err := os.Stat(registry.Binary); err != nil {
		testenv.SkipOrFail(t, "%s not found (make deps installs it): %v", registry.Binary, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n.tekton(ctx, t)
	password := randomHex(t)
	reg := startTokenRegistry(ctx, t, password)
	const connector = "harbor"
	for _, m := range registryManifests(t, reg, connector, password) {
		if _, err := n.kubectl(ctx, m, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}

	craneFiles := []string{"/bin/sh", "/usr/bin/tar", "/usr/bin/tr", "/usr/bin/cat", "/etc/nsswitch.conf"}
	builders := []struct {
		name, task, taskRun, demo, image, upstreamImage string
		files                                           []string
		// tool is the host program the image needs, "" for crane (built
		// from the tools module); mode is the proxy's audit mode.
		tool, mode string
		// taskRunReplace are more replacements in the TaskRun.
		taskRunReplace []string
	}{
		{"crane", "image-build-push-task.yaml", "image-build-push-taskrun.yaml", "crane-build-push-demo", tektonCraneImage, "gcr.io/go-containerregistry/crane:debug",
			craneFiles, "", "reverse", nil},
		{"buildah", "buildah-build-push-task.yaml", "buildah-build-push-taskrun.yaml", "buildah-build-push-demo", tektonBuildahImage, "quay.io/buildah/stable:v1.28",
			[]string{"/bin/sh", "/usr/bin/buildah", "/usr/bin/cat", "/etc/containers/policy.json", "/etc/containers/registries.conf", "/etc/nsswitch.conf"}, "/usr/bin/buildah", "reverse", nil},
		// Through the forward proxy to the registry's own name: the proxy
		// intercepts TLS (mitm) and does the token flow.
		{"crane-forward", "image-forward-push-task.yaml", "image-forward-push-taskrun.yaml", "crane-forward-push-demo", tektonCraneImage, "gcr.io/go-containerregistry/crane:debug",
			craneFiles, "", "mitm", []string{"value: harbor.example.com/test/demo:v1", "value: " + reg.host + "/test/forward:v1"}},
	}
	for _, b := range builders {
		t.Run(b.name, func(t *testing.T) {
			if _, err := os.Stat(b.tool); b.tool != "" && err != nil {
				testenv.SkipOrFail(t, "%s not found (make deps installs it): %v", b.tool, err)
			}
			if err := n.buildTektonBuilderImage(ctx, b.image, b.tool == "", nil, b.files...); err != nil {
				t.Fatal(err)
			}
			if b.name == "crane-forward" {
				// Its source is the ConfigMap of the crane TaskRun's file.
				n.applyKind(ctx, t, example(t, "tekton/image-build-push-taskrun.yaml"), "ConfigMap")
			}
			name := "tekton-" + b.name + "-push"
			tr, pod := n.runTaskRun(ctx, t, name,
				example(t, "tekton/"+b.task, "image: "+b.upstreamImage, "image: "+b.image),
				example(t, "tekton/"+b.taskRun, append([]string{"name: " + b.demo + "\n", "name: " + name + "\n"}, b.taskRunReplace...)...))
			if status, reason, msg := tr.succeeded(); status != "True" {
				t.Fatalf("the TaskRun ended %s (%s): %s\n%s", status, reason, msg, n.podLog(t, pod.uid))
			}
			var digest string
			for _, r := range tr.Status.Results {
				if r.Name == "IMAGE_DIGEST" {
					digest = fmt.Sprint(r.Value)
				}
			}
			if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
				t.Errorf("the TaskRun's IMAGE_DIGEST is %q, want a digest", digest)
			}
			plugin := n.pluginPodOf(ctx, t, pod.name)
			if !n.waitAudited(ctx, t, string(plugin.UID), "default/"+connector, b.mode) {
				t.Errorf("the DaemonSet pod logged no %s request for default/%s with the credential injected", b.mode, connector)
			}
			if len(reg.tokens.Counts()) == 0 {
				t.Error("the token service issued no token: the proxy did not do the token flow")
			}
			if d := reg.tokens.Denied(); d != 0 {
				t.Errorf("the token service refused %d requests", d)
			}
			n.checkTektonNoSecret(ctx, t, name, pod, password, reg.authorizations())
			for _, tok := range reg.issued() {
				n.noSecret(t, tok, pod.uid)
			}
		})
	}
}

// buildTektonBuilderImage builds a builder Task's step image from the
// host's files (imagebuild.HostFiles: a directory brings its tree), with
// crane built from the tools module when withCrane and env added to the
// image's environment, and imports it into the nodes' containerd.
func (n *cluster) buildTektonBuilderImage(ctx context.Context, ref string, withCrane bool, env []string, paths ...string) error {
	files, links, err := imagebuild.HostFiles(ctx, paths...)
	if err != nil {
		return err
	}
	// buildah looks its user up.
	files = append(files,
		imagebuild.File{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/tmp:/bin/sh\n")},
		imagebuild.File{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\n")})
	if withCrane {
		crane, err := imagebuild.GoBuild(ctx, filepath.Join(apiserver.RepoRoot(), "hack", "tools"), "github.com/google/go-containerregistry/cmd/crane")
		if err != nil {
			return err
		}
		files = append(files, imagebuild.File{Path: "/usr/bin/crane", Mode: 0o755, Data: crane})
	}
	img, err := imagebuild.Build(imagebuild.Spec{
		Files: files, Symlinks: links,
		Dirs:       map[string]int64{"/tmp": 0o1777, "/var/tmp": 0o1777},
		Env:        append([]string{"PATH=/usr/bin:/bin", "HOME=/tmp"}, env...),
		Entrypoint: []string{"/bin/sh"},
	}, runtime.GOARCH)
	if err != nil {
		return err
	}
	dir := filepath.Join(n.work, "images-tekton")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tar := filepath.Join(dir, strings.TrimSuffix(ref, ":dev")+".tar")
	if err := imagebuild.WriteTarball(tar, ref, img); err != nil {
		return err
	}
	for _, w := range n.nodes {
		if err := w.importImage(ctx, tar); err != nil {
			return err
		}
	}
	return nil
}

// applyKind applies the objects of kind among the YAML documents of
// manifests.
func (n *cluster) applyKind(ctx context.Context, t *testing.T, manifests, kind string) {
	t.Helper()
	var docs []string
	for _, d := range strings.Split(manifests, "\n---\n") {
		if strings.Contains("\n"+d, "\nkind: "+kind+"\n") {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("no %s in the manifests", kind)
	}
	if _, err := n.kubectl(ctx, strings.Join(docs, "\n---\n"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}
