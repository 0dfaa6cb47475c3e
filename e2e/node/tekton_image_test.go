package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/internal/imagebuild"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/registry"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// tektonCraneImage holds crane (built from the tools module) and the
// host's sh, tar and tr, for the crane Task's step.
const tektonCraneImage = "connectors-e2e-tekton-crane:dev"

// The image build-and-push Task of examples/tekton/ run by the real Tekton
// controller: the step packs the source workspace (a ConfigMap) into a
// layer and pushes the image with crane to the registry Connector's
// reverse-proxy address, with the registry-config workspace's config.json
// alone, against docker-registry with token authentication. The proxy did
// the token flow with the robot account, the pod's token never reached the
// token service, and the robot's password and the registry tokens are in
// no mounted file, log line, result, or the TaskRun's or the pod's object.
func TestTektonImageBuildPushThroughTheReverseProxy(t *testing.T) {
	n := suite(t)
	if _, err := os.Stat(registry.Binary); err != nil {
		testenv.SkipOrFail(t, "%s not found (make deps installs it): %v", registry.Binary, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n.tekton(ctx, t)
	if err := n.buildTektonCraneImage(ctx); err != nil {
		t.Fatal(err)
	}
	password := randomHex(t)
	reg := startTokenRegistry(ctx, t, password)
	const connector = "harbor"
	builder := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: registry-ca, namespace: default}
stringData:
  ca.crt: %q
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: use-%[2]s, namespace: default}
rules:
  - {apiGroups: [connectors.alauda.io], resources: [connectors], resourceNames: [%[2]s], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: builder-uses-%[2]s, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: use-%[2]s}
subjects:
  - {kind: ServiceAccount, name: builder, namespace: default}
`, string(reg.caPEM), connector)
	for _, m := range []string{catalogClass(t, "oci.yaml"), example(t, "registry-connector.yaml",
		"replace-with-the-robot-secret", password,
		"address: https://harbor.example.com", fmt.Sprintf("address: https://%s\n  addressExtensions:\n    - {name: tokenRealm, value: %q}\n  caCertSecretRef: {name: registry-ca}", reg.host, reg.realm),
	), builder} {
		if _, err := n.kubectl(ctx, m, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}

	name := "tekton-image-push"
	tr, pod := n.runTaskRun(ctx, t, name,
		example(t, "tekton/image-build-push-task.yaml", "image: gcr.io/go-containerregistry/crane:debug", "image: "+tektonCraneImage),
		example(t, "tekton/image-build-push-taskrun.yaml", "name: crane-build-push-demo\n", "name: "+name+"\n"))
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
	p, err := n.env.Kube.CoreV1().Pods("default").Get(ctx, pod.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plugin, err := n.pluginPod(ctx, p.Spec.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	if !n.waitAudited(ctx, t, string(plugin.UID), "default/"+connector, "reverse") {
		t.Errorf("the DaemonSet pod logged no reverse request for default/%s with the credential injected", connector)
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
}

// buildTektonCraneImage builds the crane Task's step image and imports it
// into the nodes' containerd.
func (n *cluster) buildTektonCraneImage(ctx context.Context) error {
	crane, err := imagebuild.GoBuild(ctx, filepath.Join(apiserver.RepoRoot(), "hack", "tools"), "github.com/google/go-containerregistry/cmd/crane")
	if err != nil {
		return err
	}
	files, links, err := imagebuild.HostFiles(ctx, "/bin/sh", "/usr/bin/tar", "/usr/bin/tr", "/usr/bin/cat", "/etc/nsswitch.conf")
	if err != nil {
		return err
	}
	files = append(files, imagebuild.File{Path: "/usr/bin/crane", Mode: 0o755, Data: crane})
	img, err := imagebuild.Build(imagebuild.Spec{
		Files: files, Symlinks: links,
		Dirs:       map[string]int64{"/tmp": 0o1777},
		Env:        []string{"PATH=/usr/bin:/bin"},
		Entrypoint: []string{"/bin/sh"},
	}, runtime.GOARCH)
	if err != nil {
		return err
	}
	tar := filepath.Join(n.work, "images-tekton", "crane.tar")
	if err := imagebuild.WriteTarball(tar, tektonCraneImage, img); err != nil {
		return err
	}
	for _, w := range n.nodes {
		if err := w.importImage(ctx, tar); err != nil {
			return err
		}
	}
	return nil
}
