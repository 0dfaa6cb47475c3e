package proxy

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/testpki"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/servers/registry"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// Credentials of the real registries; the leak scan looks for them.
const (
	realRegUser = "robot-builder"
	realRegPass = "real-reg-pass-8e7f6a5b"
)

// realRegistry is a running docker-registry and, for token auth, its
// token service.
type realRegistry struct {
	host   string // reg1.example.test:port
	tokens *registry.TokenService
	// tokenRealm is the realm of token auth; "" for htpasswd.
	tokenRealm string
}

func testdataCrane(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../bin/crane")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		testenv.SkipOrFail(t, "bin/crane not built (make tools): %v", err)
	}
	return p
}

// startRealRegistry starts docker-registry on loopback over TLS for name,
// with htpasswd auth, or token auth whose realm is served on authName.
func startRealRegistry(t *testing.T, ca *testpki.CA, name, authName string) *realRegistry {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM, err := ca.Issue(name, authName, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := registry.Config{Dir: dir, CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: ca.PEM}
	rr := &realRegistry{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if authName == "" {
		out := mustRun(t, dir, childEnv(dir), needBinary(t, "htpasswd"), "-Bbn", realRegUser, realRegPass)
		cfg.Htpasswd = []byte(strings.TrimSpace(out) + "\n")
	} else {
		rr.tokens, err = registry.NewTokenService("test-issuer", name, realRegUser, realRegPass, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		authPort, err := registry.ServeTLS(ctx, rr.tokens, certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Token = &registry.Token{Realm: "https://" + authName + ":" + authPort + "/token",
			Service: name, Issuer: "test-issuer", RootCertPEM: rr.tokens.CertPEM}
	}
	srv, err := registry.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	rr.host = name + ":" + srv.Port
	if cfg.Token != nil {
		rr.tokenRealm = cfg.Token.Realm
	}
	return rr
}

// realEnv is the proxy in front of two real registries:
//
//	team-a/reg1  reg1.example.test, htpasswd, basic-auth Secret
//	team-a/reg2  reg2.example.test, token auth, registry token Secret,
//	             realm on auth2.example.test as an address extension
type realEnv struct {
	*env
	reg1, reg2 *realRegistry
	crane      string
	image      string // OCI layout with a 50 MiB layer
	digest     string
	home       string
}

func newRealEnv(t *testing.T) *realEnv {
	t.Helper()
	needBinary(t, registry.Binary)
	needBinary(t, "skopeo")
	re := &realEnv{crane: testdataCrane(t), home: t.TempDir()}
	ca, err := testpki.NewCA("registry-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	re.reg1 = startRealRegistry(t, ca, "reg1.example.test", "")
	re.reg2 = startRealRegistry(t, ca, "reg2.example.test", "auth2.example.test")
	o := newFakeObjects()
	o.secret("team-a", "reg1", corev1.SecretTypeBasicAuth, map[string]string{"username": realRegUser, "password": realRegPass})
	o.secret("team-a", "reg2", SecretTypeRegistryToken, map[string]string{"username": realRegUser, "password": realRegPass})
	o.connector("team-a", "reg1", "https://"+re.reg1.host, "reg1")
	realm := re.reg2.tokenRealm
	o.connector("team-a", "reg2", "https://"+re.reg2.host, "reg2", realm)
	re.env = startEnv(t, o, []*x509.Certificate{ca.Cert})
	re.image = filepath.Join(t.TempDir(), "image")
	if re.digest, err = registry.WriteImage(re.image, "latest", 50<<20+12345); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { re.scanLeaks(t) })
	return re
}

// volume renders the files a CSI volume naming keys would hold (only the
// registry config and the proxy settings are used) into a directory.
func (re *realEnv) volume(t *testing.T, token string, keys ...string) string {
	t.Helper()
	var cs []configgen.Connector
	for _, k := range keys {
		ns, name, _ := strings.Cut(k, "/")
		c, err := re.objects.Connector(context.Background(), ns, name)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, configgen.Connector{Object: c, ProxyAddress: c.ProxyAddress(re.url)})
	}
	files, err := configgen.Render(configgen.Input{Connectors: cs, Token: token, ProxyURL: publicurl.MustParse(re.url),
		CACertPEM: re.ca.CertPEM, Configurations: []string{configgen.GeneratorRegistryConfig}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// skopeo reads *.crt of a certificate directory.
	certs := filepath.Join(dir, "certs")
	if err := os.Mkdir(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certs, "ca.crt"), files["ca.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// reverseEnv is a child environment that reaches registries through the
// reverse proxy with the volume's config.json only.
func (re *realEnv) reverseEnv(vol string) []string {
	return childEnv(re.home, "DOCKER_CONFIG="+vol, "REGISTRY_AUTH_FILE="+filepath.Join(vol, "config.json"),
		"SSL_CERT_FILE=", "SSL_CERT_DIR=", "http_proxy=", "https_proxy=", "HTTP_PROXY=", "HTTPS_PROXY=",
		"no_proxy=", "NO_PROXY=")
}

// forwardEnv is a child environment that reaches registries through the
// forward proxy with the volume's https.proxy and CA, and no registry
// credential at all.
func (re *realEnv) forwardEnv(t *testing.T, vol string) []string {
	t.Helper()
	proxyURL, err := os.ReadFile(filepath.Join(vol, "https.proxy"))
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(vol, "empty-auth")
	if err := os.MkdirAll(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(empty, "config.json"), []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := strings.TrimSpace(string(proxyURL))
	return childEnv(re.home, "DOCKER_CONFIG="+empty, "REGISTRY_AUTH_FILE="+filepath.Join(empty, "config.json"),
		"SSL_CERT_FILE="+filepath.Join(vol, "ca.crt"), "SSL_CERT_DIR=",
		"https_proxy="+p, "HTTPS_PROXY="+p, "http_proxy=", "HTTP_PROXY=", "no_proxy=", "NO_PROXY=")
}

// reverseRef is the image reference of repo on Connector key through the
// reverse proxy (path form).
func (re *realEnv) reverseRef(key, repo string) string {
	ns, name, _ := strings.Cut(key, "/")
	return strings.TrimPrefix(re.url, "http://") + v1alpha1.PathPrefix(ns, name) + "/" + repo
}

// cranePull pulls ref into an OCI layout and returns the manifest digest.
func (re *realEnv) cranePull(t *testing.T, env []string, ref string, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pulled")
	args := append([]string{"pull", "--format", "oci"}, extra...)
	mustRun(t, re.home, env, re.crane, append(args, ref, dir)...)
	d, err := registry.ManifestDigest(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// skopeoPull copies ref into an OCI layout and returns the manifest digest.
func (re *realEnv) skopeoPull(t *testing.T, env []string, ref string, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pulled")
	args := append([]string{"--insecure-policy", "copy", "--preserve-digests"}, extra...)
	mustRun(t, re.home, env, "skopeo", append(args, "docker://"+ref, "oci:"+dir+":latest")...)
	d, err := registry.ManifestDigest(dir, "latest")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (re *realEnv) scanLeaks(t *testing.T) {
	t.Helper()
	logs := re.logs.String()
	for _, s := range []string{realRegPass, tokA, b64(realRegUser + ":" + realRegPass), "eyJ"} {
		if strings.Contains(logs, s) {
			t.Errorf("secret %q found in the proxy logs", s)
		}
	}
}

// TestRealRegistryClients pushes and pulls a 50 MiB image with crane and
// skopeo through the reverse proxy (config.json only) and the forward
// proxy (https_proxy and the proxy CA only), against docker-registry with
// htpasswd auth (reg1) and with token auth (reg2).
func TestRealRegistryClients(t *testing.T) {
	re := newRealEnv(t)
	for _, tc := range []struct {
		key string
		reg *realRegistry
	}{{"team-a/reg1", re.reg1}, {"team-a/reg2", re.reg2}} {
		t.Run(tc.key, func(t *testing.T) {
			vol := re.volume(t, tokA, tc.key)
			rev, fwd := re.reverseEnv(vol), re.forwardEnv(t, vol)
			certDir := filepath.Join(vol, "certs")

			// Reverse proxy, path form: push with crane, pull with both.
			ref := re.reverseRef(tc.key, "app") + ":v1"
			mustRun(t, re.home, rev, re.crane, "push", "--insecure", re.image, ref)
			if d := re.cranePull(t, rev, ref, "--insecure"); d != re.digest {
				t.Errorf("crane reverse pull: digest %s, want %s", d, re.digest)
			}
			if d := re.skopeoPull(t, rev, ref, "--src-tls-verify=false"); d != re.digest {
				t.Errorf("skopeo reverse pull: digest %s, want %s", d, re.digest)
			}

			// Forward proxy with TLS interception: push with skopeo, pull
			// with both.
			fref := tc.reg.host + "/fwd:v1"
			mustRun(t, re.home, fwd, "skopeo", "--insecure-policy", "copy", "--preserve-digests",
				"--dest-cert-dir", certDir, "oci:"+re.image+":latest", "docker://"+fref)
			if d := re.cranePull(t, fwd, fref); d != re.digest {
				t.Errorf("crane forward pull: digest %s, want %s", d, re.digest)
			}
			if d := re.skopeoPull(t, fwd, fref, "--src-cert-dir", certDir); d != re.digest {
				t.Errorf("skopeo forward pull: digest %s, want %s", d, re.digest)
			}

			// A wrong token fails with 401 (reverse) and 407 (forward).
			bad := re.volume(t, "wrong-token", tc.key)
			out, err := run(t, re.home, re.reverseEnv(bad), re.crane, "manifest", "--insecure", ref)
			if err == nil || !strings.Contains(out, "401") {
				t.Errorf("crane with a wrong token: err %v\n%s", err, out)
			}
			out, err = run(t, re.home, re.forwardEnv(t, bad), "skopeo", "inspect", "--raw", "--cert-dir", certDir, "docker://"+fref)
			if err == nil || !strings.Contains(out, "407") && !strings.Contains(out, "Proxy Authentication Required") {
				t.Errorf("skopeo with a wrong token: err %v\n%s", err, out)
			}
		})
	}
	if re.reg2.tokens != nil {
		assertOneTokenPerScope(t, re.reg2.tokens)
	}
}

// TestRealRegistryMultiConnector copies an image from the first registry
// to the second through one https_proxy that names both Connectors.
func TestRealRegistryMultiConnector(t *testing.T) {
	re := newRealEnv(t)
	vol := re.volume(t, tokA, "team-a/reg1", "team-a/reg2")
	fwd := re.forwardEnv(t, vol)
	src, dst := re.reg1.host+"/base:v1", re.reg2.host+"/copied:v1"
	mustRun(t, re.home, fwd, "skopeo", "--insecure-policy", "copy", "--preserve-digests",
		"--dest-cert-dir", filepath.Join(vol, "certs"), "oci:"+re.image+":latest", "docker://"+src)
	mustRun(t, re.home, fwd, re.crane, "copy", src, dst)
	if d := re.cranePull(t, fwd, dst); d != re.digest {
		t.Errorf("copied image digest %s, want %s", d, re.digest)
	}
	assertOneTokenPerScope(t, re.reg2.tokens)
}

func assertOneTokenPerScope(t *testing.T, ts *registry.TokenService) {
	t.Helper()
	counts := ts.Counts()
	t.Logf("token fetches per scope: %v", counts)
	if len(counts) == 0 {
		t.Errorf("no token was fetched")
	}
	for scope, n := range counts {
		if n != 1 {
			t.Errorf("scope %q: %d token fetches, want 1", scope, n)
		}
	}
	if ts.Denied() != 0 {
		t.Errorf("%d token requests with wrong credentials", ts.Denied())
	}
}
