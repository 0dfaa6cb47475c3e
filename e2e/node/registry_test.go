package node

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/internal/imagebuild"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
	"github.com/connectors-node/connectors-node/test/servers/registry"
	"github.com/connectors-node/connectors-node/test/servers/testpki"
	"github.com/connectors-node/connectors-node/test/testenv"
)

const (
	// registryHost and authHost are names the cluster DNS maps to the
	// tests' servers: clients send requests for them to the proxy, which
	// resolves them.
	registryHost = "registry.node.test"
	authHost     = "auth.node.test"
	registryUser = "robot$ci"
	// registryClientImage holds crane (built from the tools module) and
	// the host's skopeo.
	registryClientImage = "connectors-e2e-registry-client:dev"
	// nodeProxyHost is the node topology's proxy, as the shipped
	// --public-url names it.
	nodeProxyHost = "connectors-proxy.connectors-system.svc"
)

// tektonStep is the Tekton-style step: (a) as examples/tekton-task.yaml's
// step, `source .env` and skopeo with the workspace as the cert dirs,
// through the forward proxy to the registry's own name, then crane pulls
// what skopeo copied; (b) with the mounted config.json alone, through the
// reverse proxy's path form: crane pushes and pulls, skopeo pushes and
// pulls what the forward step pushed.
const tektonStep = `set -e
W=/connectors
(
  set -a; . $W/.env; set +a
  skopeo copy --preserve-digests --authfile $W/config.json --src-cert-dir $W --dest-cert-dir $W oci:/work/image:latest docker://$REG/tekton/app:v1
  skopeo copy --preserve-digests --authfile $W/config.json --src-cert-dir $W --dest-cert-dir $W docker://$REG/tekton/app:v1 docker://$REG/tekton/copy:v1
  SSL_CERT_FILE=$W/ca-bundle.crt crane pull --format oci $REG/tekton/copy:v1 /work/forward
)
echo FORWARD-OK
export DOCKER_CONFIG=$W
crane push --insecure /work/image $REV/tekton/crane:v1
crane pull --insecure --format oci $REV/tekton/crane:v1 /work/crane-reverse
skopeo copy --preserve-digests --authfile $W/config.json --dest-tls-verify=false oci:/work/image:latest docker://$REV/tekton/skopeo:v1
skopeo copy --preserve-digests --authfile $W/config.json --src-tls-verify=false docker://$REV/tekton/app:v1 oci:/work/skopeo-reverse:v1
echo REVERSE-OK`

// A Tekton-style step on a real pod pushes and pulls an image with the
// workspace of examples/tekton-task.yaml, with skopeo and crane as e2e/
// uses them: through the forward proxy (TLS interception, `source .env`)
// and the reverse proxy (path form, config.json alone), against
// docker-registry with token authentication whose realm is on another
// host. The proxy does the token flow with the Secret's robot account; the
// pod holds only its own token, which never reaches the token service, and
// no credential is in a mounted file or a log line.
func TestImagePushPullAsTektonStep(t *testing.T) {
	n := suite(t)
	for _, tool := range []string{registry.Binary, "/usr/bin/skopeo"} {
		if _, err := os.Stat(tool); err != nil {
			testenv.SkipOrFail(t, "%s not found (make deps installs it): %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := n.buildRegistryClientImage(ctx); err != nil {
		t.Fatal(err)
	}
	password := randomHex(t)
	reg := startTokenRegistry(ctx, t, password)

	attrs, err := manifests.TaskRunCSIAttributes(filepath.Join(apiserver.RepoRoot(), "examples", "tekton-task.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	name := attrs["connectors"]
	if name == "" || strings.Contains(name, ",") || !strings.Contains(attrs["configuration.names"], "registry-config") {
		t.Fatalf("examples/tekton-task.yaml mounts %v, want one Connector and configuration.names with registry-config", attrs)
	}
	for _, m := range registryManifests(t, reg, name, password) {
		if _, err := n.kubectl(ctx, m, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}

	work := filepath.Join(n.work, "tekton-"+randomHex(t)[:8])
	digest, err := registry.WriteImage(filepath.Join(work, "image"), "latest", 2<<20+321)
	if err != nil {
		t.Fatal(err)
	}
	const podName = "tekton-step"
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  serviceAccountName: builder
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
    - name: step
      image: %s
      command: ["sh", "-c", %q]
      env:
        - {name: REG, value: %q}
        - {name: REV, value: %q}
        - {name: HOME, value: /tmp}
        - {name: TMPDIR, value: /tmp}
      volumeMounts:
        - {name: connectors, mountPath: /connectors, readOnly: true}
        - {name: work, mountPath: /work}
  volumes:
    - name: work
      hostPath: {path: %q, type: Directory}
    - name: connectors
      csi:
        driver: connectors-csi
        readOnly: true
        volumeAttributes: {connectors: %q, configuration.names: %q}
`, podName, registryClientImage, tektonStep, reg.host, nodeProxyHost+v1alpha1.PathPrefix("default", name), work, name, attrs["configuration.names"])
	if _, err := n.kubectl(ctx, pod, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.deletePod(t, podName) })
	p := n.waitPhase(ctx, t, podName, corev1.PodSucceeded, corev1.PodFailed)
	log := n.podLog(t, string(p.UID))
	if p.Status.Phase != corev1.PodSucceeded || !strings.Contains(log, "FORWARD-OK") || !strings.Contains(log, "REVERSE-OK") {
		t.Fatalf("the Tekton-style step failed (%s):\n%s", p.Status.Phase, log)
	}
	for _, out := range []string{"forward", "crane-reverse", "skopeo-reverse"} {
		d, err := registry.ManifestDigest(filepath.Join(work, out), "")
		if err != nil {
			t.Errorf("%s: %v", out, err)
		} else if d != digest {
			t.Errorf("%s: pulled digest %s, pushed %s", out, d, digest)
		}
	}

	plugin, err := n.pluginPod(ctx, p.Spec.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"mitm", "reverse"} {
		if !n.waitAudited(ctx, t, string(plugin.UID), "default/"+name, mode) {
			t.Errorf("the DaemonSet pod logged no %s request for default/%s with the credential injected", mode, name)
		}
	}
	counts := reg.tokens.Counts()
	if len(counts) == 0 {
		t.Errorf("the token service issued no token: the proxy did not do the token flow")
	}
	if d := reg.tokens.Denied(); d != 0 {
		t.Errorf("the token service refused %d requests", d)
	}
	var podTokens []string
	for f, c := range n.volumes.seen(string(p.UID)) {
		if filepath.Base(f) == "context.token" {
			podTokens = append(podTokens, strings.TrimSpace(c))
		}
	}
	if len(podTokens) == 0 {
		t.Fatal("the node saw no context.token of the step's volume")
	}
	for _, a := range reg.authorizations() {
		for _, tok := range podTokens {
			if strings.Contains(a, tok) {
				t.Errorf("the pod's token reached the token service")
			}
		}
	}
	n.noSecret(t, password, string(p.UID))
	for _, tok := range reg.issued() {
		n.noSecret(t, tok, string(p.UID))
	}
}

// tokenRegistry is docker-registry with token authentication and its token
// service, each on loopback under a name of its own.
type tokenRegistry struct {
	host, realm string
	caPEM       []byte
	tokens      *registry.TokenService

	mu     sync.Mutex
	auths  []string // Authorization headers the token service saw
	tokenz []string // registry tokens it issued
}

func startTokenRegistry(ctx context.Context, t *testing.T, password string) *tokenRegistry {
	t.Helper()
	ca, err := testpki.NewCA("connectors-node real-node registry CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(registryHost, authHost, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	r := &tokenRegistry{caPEM: ca.PEM}
	r.tokens, err = registry.NewTokenService("node-issuer", registryHost, registryUser, password, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.Cleanup(cancel)
	authPort, err := registry.ServeTLS(ctx, http.HandlerFunc(r.serveToken), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	r.realm = "https://" + authHost + ":" + authPort + "/token"
	srv, err := registry.Start(ctx, registry.Config{
		Dir: t.TempDir(), CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: ca.PEM,
		Token: &registry.Token{Realm: r.realm, Service: registryHost, Issuer: "node-issuer", RootCertPEM: r.tokens.CertPEM},
	})
	if err != nil {
		t.Fatalf("starting the registry: %v", err)
	}
	t.Cleanup(srv.Stop)
	r.host = registryHost + ":" + srv.Port
	return r
}

// serveToken records the request's Authorization header and the token it
// issues, then answers as the token service.
func (r *tokenRegistry) serveToken(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.auths = append(r.auths, req.Header.Get("Authorization"))
	r.mu.Unlock()
	r.tokens.ServeHTTP(&tokenRecorder{ResponseWriter: w, r: r}, req)
}

func (r *tokenRegistry) authorizations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auths...)
}

func (r *tokenRegistry) issued() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokenz...)
}

// tokenRecorder keeps the registry token in a token response body.
type tokenRecorder struct {
	http.ResponseWriter
	r *tokenRegistry
}

func (w *tokenRecorder) Write(b []byte) (int, error) {
	const key = `"token":"`
	if i := strings.Index(string(b), key); i >= 0 {
		rest := string(b[i+len(key):])
		if j := strings.IndexByte(rest, '"'); j > 0 {
			w.r.mu.Lock()
			w.r.tokenz = append(w.r.tokenz, rest[:j])
			w.r.mu.Unlock()
		}
	}
	return w.ResponseWriter.Write(b)
}

// buildRegistryClientImage builds the image of the Tekton-style step (crane
// built from the tools module, skopeo and sh from the host) and imports it
// into the nodes' containerd.
func (n *cluster) buildRegistryClientImage(ctx context.Context) error {
	crane, err := imagebuild.GoBuild(ctx, filepath.Join(apiserver.RepoRoot(), "hack", "tools"), "github.com/google/go-containerregistry/cmd/crane")
	if err != nil {
		return err
	}
	files, links, err := imagebuild.HostFiles(ctx, "/bin/sh", "/usr/bin/skopeo", "/usr/bin/cat",
		"/etc/containers/policy.json", "/etc/containers/registries.conf", "/etc/ssl/certs/ca-certificates.crt", "/etc/nsswitch.conf")
	if err != nil {
		return err
	}
	files = append(files, imagebuild.File{Path: "/usr/bin/crane", Mode: 0o755, Data: crane})
	img, err := imagebuild.Build(imagebuild.Spec{
		Files: files, Symlinks: links,
		Dirs:       map[string]int64{"/tmp": 0o1777, "/var/tmp": 0o1777},
		Env:        []string{"PATH=/usr/bin:/bin"},
		Entrypoint: []string{"/bin/sh"},
	}, runtime.GOARCH)
	if err != nil {
		return err
	}
	tar := filepath.Join(n.work, "images", "registry-client.tar")
	if err := imagebuild.WriteTarball(tar, registryClientImage, img); err != nil {
		return err
	}
	for _, w := range n.nodes {
		if err := w.importImage(ctx, tar); err != nil {
			return err
		}
	}
	return nil
}

// registryManifests are what an image story applies: the oci class, the
// example registry Connector named name for the token registry reg with its
// robot password, and the registry's CA, a builder ServiceAccount and its
// RBAC on that Connector.
func registryManifests(t *testing.T, reg *tokenRegistry, name, password string) []string {
	t.Helper()
	// The CA and robot Secrets are the story's own: the stories share the
	// namespace and the Connector's name, and a node keeps a Secret it read
	// for --secret-cache-ttl.
	suffix := randomHex(t)[:8]
	caSecret := "registry-ca-" + suffix
	connector := example(t, "registry-connector.yaml",
		"name: harbor-robot\n", "name: harbor-robot-"+suffix+"\n",
		"name: harbor\n", "name: "+name+"\n",
		"replace-with-the-robot-secret", password,
		"address: https://harbor.example.com", fmt.Sprintf("address: https://%s\n  addressExtensions:\n    - {name: tokenRealm, value: %q}\n  caCertSecretRef: {name: %s}", reg.host, reg.realm, caSecret))
	builder := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: %[3]s, namespace: default}
stringData:
  ca.crt: %[1]q
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
`, string(reg.caPEM), name, caSecret)
	return []string{catalogClass(t, "oci.yaml"), connector, builder}
}
