package e2e

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
	"github.com/connectors-node/connectors-node/test/servers/registry"
)

// imageLayerSize keeps the story's image small: a few MiB push and pull in
// well under a second each.
const imageLayerSize = 3<<20 + 4321

// tektonWorkspaceAttrs reads the CSI workspace's volumeAttributes of the
// TaskRun in examples/tekton-task.yaml.
func tektonWorkspaceAttrs(t *testing.T) map[string]string {
	t.Helper()
	attrs, err := manifests.TaskRunCSIAttributes(filepath.Join(apiserver.RepoRoot(), "examples", "tekton-task.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return attrs
}

// Story 2: a Tekton step pushes and pulls an image with a registry-config
// workspace and `source .env`, through the forward proxy (TLS interception)
// and the reverse proxy (path form, the mounted config.json alone), against
// docker-registry with token authentication whose realm is on another host.
// The proxy trusts the registry through the Connector's caCertSecretRef and
// does the token flow with the Secret's robot account; the pod holds only
// its own token.
//
// The story is not parallel: it maps host names in /etc/hosts, and the
// node's resolver would miss a name another story maps while this one
// makes it read the file (see startRegistry).
func TestImagePushPullAsTektonStep(t *testing.T) {
	crane := needRegistryTools(t)
	suite(t)
	s := newStory(t, "e2e-registry")
	s.nodeLogOnFailure()

	// The registry and its token realm, on host names of their own: clients
	// never proxy loopback addresses.
	id := randomHex(4)
	password := randomHex(16)
	reg := s.startRegistry("registry-"+id+".e2e.test", "auth-"+id+".e2e.test", password)

	// The Connector of examples/registry-connector.yaml, named as the
	// TaskRun of examples/tekton-task.yaml names it.
	attrs := tektonWorkspaceAttrs(t)
	name := attrs["connectors"]
	if !slices.Contains(strings.Split(attrs["configuration.names"], ","), "registry-config") || name == "" || strings.Contains(name, ",") {
		t.Fatalf("examples/tekton-task.yaml mounts %v, want one Connector and configuration.names with registry-config", attrs)
	}
	s.credential("the password of Secret registry-robot", registryUser, password)
	s.create(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "registry-robot"},
		Type:       "cpaas.io/distribution-registry-token",
		StringData: map[string]string{corev1.BasicAuthUsernameKey: registryUser, corev1.BasicAuthPasswordKey: password},
	})
	s.caSecret("registry-ca", reg.ca.PEM)
	realm, err := json.Marshal(reg.realm)
	if err != nil {
		t.Fatal(err)
	}
	s.create(&v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Spec: v1alpha1.ConnectorSpec{
			ConnectorClassName: "oci",
			Address:            "https://" + reg.host,
			AddressExtensions:  []v1alpha1.Param{{Name: "tokenRealm", Value: apiextensionsv1.JSON{Raw: realm}}},
			Auth:               v1alpha1.ConnectorAuth{Name: "registryToken", SecretRef: &corev1.ObjectReference{Name: "registry-robot"}},
			CACertSecretRef:    &corev1.LocalObjectReference{Name: "registry-ca"},
		},
	})
	const sa = "builder"
	s.serviceAccount(s.ns, sa)
	s.allow(s.ns, sa, name)

	tok := s.token(s.ns, sa)
	v := s.publish(sa, attrs, tok)
	proxyHost := strings.TrimPrefix(s.h.publicURL, "http://")
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal([]byte(v.file(t, "config.json")), &cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if _, ok := cfg.Auths[proxyHost]; !ok || len(cfg.Auths) != 1 {
		t.Errorf("config.json has auths for %v, want the proxy host %s alone", slices.Sorted(maps.Keys(cfg.Auths)), proxyHost)
	}
	if strings.Contains(v.file(t, ".env"), strings.Split(reg.host, ":")[0]) {
		t.Errorf(".env lists the registry in no_proxy: the step would bypass the proxy")
	}

	image := filepath.Join(t.TempDir(), "image")
	digest, err := registry.WriteImage(image, "latest", imageLayerSize)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	env := append(gitserver.Env(home), "CONNECTORS="+v.target, "CRANE="+crane, "IMAGE="+image)
	pulled := func(label string) string { return filepath.Join(t.TempDir(), label) }
	check := func(what string, err error, dir string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s failed: %v", what, err)
		}
		if d := layoutDigest(t, dir); d != digest {
			t.Errorf("%s: pulled digest %s, pushed %s", what, d, digest)
		}
	}

	reg.resolvable()
	t.Log("(a) forward proxy, as the Tekton step runs: `source .env`, the registry's own name")
	fwdRef := reg.host + "/tekton/app:v1"
	// skopeo's --cert-dir reads every *.crt of a directory as a CA, and
	// wants a key for every *.cert: the step copies ca.crt alone.
	step := `set -e
set -a; . "$CONNECTORS/.env"; set +a
mkdir -p "$HOME/certs" && cp "$CONNECTORS/ca.crt" "$HOME/certs/"
skopeo --insecure-policy copy --preserve-digests --authfile "$CONNECTORS/config.json" \
  --dest-cert-dir "$HOME/certs" "oci:$IMAGE:latest" "docker://$REF"
SSL_CERT_FILE="$CONNECTORS/ca-bundle.crt" "$CRANE" pull --format oci "$REF" "$DEST"`
	dest := pulled("forward")
	_, err = s.shell(t.TempDir(), append(env, "REF="+fwdRef, "DEST="+dest), step)
	check("the Tekton step's skopeo push and crane pull through https_proxy", err, dest)
	if s.auditLine(name, "mitm") == "" {
		t.Errorf("no audit line for an intercepted (mitm) request with the credential injected")
	}

	t.Log("(b) reverse proxy, path form, with the mounted config.json alone")
	rev := append(gitserver.Env(home), "DOCKER_CONFIG="+v.target, "REGISTRY_AUTH_FILE="+filepath.Join(v.target, "config.json"))
	revRepo := proxyHost + v1alpha1.PathPrefix(s.ns, name) + "/tekton/"
	authfile := "--authfile=" + filepath.Join(v.target, "config.json")
	// crane push and pull, then skopeo pulls what crane pushed.
	_, err = s.run(home, rev, crane, "push", "--insecure", image, revRepo+"crane:v1")
	if err != nil {
		t.Fatalf("crane push through the reverse proxy failed: %v", err)
	}
	dest = pulled("crane-reverse")
	_, err = s.run(home, rev, crane, "pull", "--insecure", "--format", "oci", revRepo+"crane:v1", dest)
	check("crane pull through the reverse proxy", err, dest)
	dest = pulled("skopeo-reverse")
	_, err = s.run(home, rev, "skopeo", "--insecure-policy", "copy", "--preserve-digests", authfile,
		"--src-tls-verify=false", "docker://"+revRepo+"crane:v1", "oci:"+dest+":v1")
	check("skopeo pull through the reverse proxy", err, dest)
	// skopeo push, then crane pulls it, and the image the step pushed
	// through the forward proxy, from the same registry repository.
	_, err = s.run(home, rev, "skopeo", "--insecure-policy", "copy", "--preserve-digests", authfile,
		"--dest-tls-verify=false", "oci:"+image+":latest", "docker://"+revRepo+"skopeo:v1")
	if err != nil {
		t.Fatalf("skopeo push through the reverse proxy failed: %v", err)
	}
	for _, repo := range []string{"skopeo:v1", "app:v1"} {
		dest = pulled("crane-" + strings.ReplaceAll(repo, ":", "-"))
		_, err = s.run(home, rev, crane, "pull", "--insecure", "--format", "oci", revRepo+repo, dest)
		check("crane pull of "+repo+" through the reverse proxy", err, dest)
	}
	if s.auditLine(name, "reverse") == "" {
		t.Errorf("no audit line for a reverse-proxied request with the credential injected")
	}

	t.Log("a wrong token: 401 from the reverse proxy, 407 from the forward proxy")
	wrong, err := s.h.mint(s.ns, sa, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.podToken("a token for the API server's audience", wrong)
	bad := s.publish(sa, attrs, kubelet.Token{Token: wrong, ExpirationTimestamp: time.Now().Add(time.Hour)})
	badRev := append(gitserver.Env(home), "DOCKER_CONFIG="+bad.target)
	out, err := s.run(home, badRev, crane, "manifest", "--insecure", revRepo+"crane:v1")
	if err == nil || !strings.Contains(out, "401") {
		t.Errorf("crane through the reverse proxy with a wrong token: %v, want a 401 failure", err)
	}
	out, err = s.shell(t.TempDir(), append(gitserver.Env(home), "CONNECTORS="+bad.target, "REF="+fwdRef),
		`set -a; . "$CONNECTORS/.env"; set +a
mkdir -p "$HOME/certs-bad" && cp "$CONNECTORS/ca.crt" "$HOME/certs-bad/"
skopeo inspect --raw --cert-dir "$HOME/certs-bad" "docker://$REF"`)
	if err == nil || !strings.Contains(out, "407") && !strings.Contains(out, "Proxy Authentication Required") {
		t.Errorf("skopeo through the forward proxy with a wrong token: %v, want a 407 failure", err)
	}

	// The proxy did the token flow with the robot account, never with a
	// pod token.
	// Tokens live five minutes: one fetch per scope serves the whole story.
	counts := reg.tokens.Counts()
	t.Logf("token fetches per scope: %v", counts)
	if len(counts) == 0 {
		t.Errorf("the token service issued no token: the proxy did not do the token flow")
	}
	for scope, n := range counts {
		if n != 1 {
			t.Errorf("scope %q: %d token fetches, want 1 per token lifetime", scope, n)
		}
	}
	if n := reg.tokens.Denied(); n != 0 {
		t.Errorf("the token service refused %d requests", n)
	}
	for _, p := range []string{tok.Token, wrong} {
		if reg.sawAuthorization(p) {
			t.Errorf("a pod token reached the token service")
		}
	}
	s.checkVolume(v)
	s.checkVolume(bad)
}
