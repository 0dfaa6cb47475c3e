package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
	"github.com/connectors-node/connectors-node/test/servers/harbor"
	"github.com/connectors-node/connectors-node/test/servers/registry"
	"github.com/connectors-node/connectors-node/test/servers/testpki"
)

// Catalog, harbor: an upstream-style Connector of deploy/classes/harbor.yaml
// (basicAuth, the address alone, Harbor's CA) for a Harbor stand-in whose
// /v2/ is Debian's docker-registry with token authentication and whose
// token realm is Harbor's /service/token on the same host. crane pushes
// and pulls through the reverse proxy with the built-in registry-config,
// skopeo pulls and pushes with the legacy config's config.json, and crane pulls
// through the forward proxy by Harbor's own name. The proxy does the
// token flow with the Connector's account; the registry and Harbor never
// see the pod's token, and harbor-cli's config.yaml holds a context per
// Connector with a placeholder password, never the account's.
//
// Not parallel, as the registry story: it maps host names in /etc/hosts.
func TestCatalogHarborPushPull(t *testing.T) {
	crane := needRegistryTools(t)
	suite(t)
	s := newStory(t, "e2e-harbor")
	s.nodeLogOnFailure()
	s.installCatalogClass("harbor.yaml")

	id := randomHex(4)
	name := "harbor-" + id + ".e2e.test"
	mapHost(t, name)
	ca, err := testpki.NewCA("connectors-node e2e Harbor CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(name, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	const user = "robot$ci-harbor"
	password := randomHex(16)
	b := &registryBackend{ca: ca}
	b.tokens, err = registry.NewTokenService("harbor-token-issuer", "harbor-registry", user, password, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	hs := harbor.New(user, password, b.recording(s))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	port, err := registry.ServeTLS(ctx, hs, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	address := "https://" + name + ":" + port
	reg, err := registry.Start(ctx, registry.Config{
		Dir: t.TempDir(), CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: ca.PEM,
		Token: &registry.Token{Realm: address + harbor.TokenPath, Service: "harbor-registry", Issuer: "harbor-token-issuer", RootCertPEM: b.tokens.CertPEM},
	})
	if err != nil {
		t.Fatalf("starting the registry: %v", err)
	}
	t.Cleanup(reg.Stop)
	if err := hs.SetRegistry("https://127.0.0.1:"+reg.Port, ca.PEM); err != nil {
		t.Fatal(err)
	}

	s.basicAuthSecret("harbor-robot", user, password)
	s.caSecret("harbor-ca", ca.PEM)
	s.connector(connectorSpec{name: "harbor", class: "harbor", address: address, authName: "basicAuth", secret: "harbor-robot", caSecret: "harbor-ca"})
	const sa = "builder"
	s.serviceAccount(s.ns, sa)
	s.allow(s.ns, sa, "harbor")
	tok := s.token(s.ns, sa)
	v := s.publish(sa, map[string]string{"connectors": "harbor", "configuration.names": "registry-config,config,buildkitd,harbor-cli-config"}, tok)

	proxyHost := strings.TrimPrefix(s.h.publicURL, "http://")
	for _, file := range []string{"config.json"} {
		var cfg struct {
			Auths map[string]json.RawMessage `json:"auths"`
		}
		if err := json.Unmarshal([]byte(v.file(t, file)), &cfg); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if _, ok := cfg.Auths[proxyHost]; !ok || len(cfg.Auths) != 1 {
			t.Errorf("%s has auths for %v, want the proxy host %s alone", file, slices.Sorted(maps.Keys(cfg.Auths)), proxyHost)
		}
	}
	if !strings.Contains(v.file(t, "buildkitd.toml"), `[registry."`+proxyHost+`"]`) {
		t.Errorf("buildkitd.toml does not mark the proxy host %s as an HTTP registry", proxyHost)
	}
	cli := v.file(t, "config.yaml")
	for _, want := range []string{`current-credential-name: "` + s.ns + `/harbor"`, `serveraddress: "` + address + `"`, "username: connector-proxy"} {
		if !strings.Contains(cli, want) {
			t.Errorf("harbor-cli's config.yaml lacks %q", want)
		}
	}

	image := filepath.Join(t.TempDir(), "image")
	digest, err := registry.WriteImage(image, "latest", imageLayerSize)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
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

	t.Log("reverse proxy, path form: crane with registry-config, skopeo with the legacy config's config.json")
	rev := append(gitserver.Env(home), "DOCKER_CONFIG="+v.target)
	revRepo := proxyHost + v1alpha1.PathPrefix(s.ns, "harbor") + "/library/"
	if _, err := s.run(home, rev, crane, "push", "--insecure", image, revRepo+"app:v1"); err != nil {
		t.Fatalf("crane push through the reverse proxy failed: %v", err)
	}
	dest := pulled("crane-reverse")
	_, err = s.run(home, rev, crane, "pull", "--insecure", "--format", "oci", revRepo+"app:v1", dest)
	check("crane pull through the reverse proxy", err, dest)
	dest = pulled("skopeo-reverse")
	_, err = s.run(home, rev, "skopeo", "--insecure-policy", "copy", "--preserve-digests", "--authfile="+filepath.Join(v.target, "config.json"),
		"--src-tls-verify=false", "docker://"+revRepo+"app:v1", "oci:"+dest+":v1")
	check("skopeo pull through the reverse proxy", err, dest)
	if _, err := s.run(home, rev, "skopeo", "--insecure-policy", "copy", "--preserve-digests", "--authfile="+filepath.Join(v.target, "config.json"),
		"--dest-tls-verify=false", "oci:"+image+":latest", "docker://"+revRepo+"skopeo:v1"); err != nil {
		t.Fatalf("skopeo push through the reverse proxy failed: %v", err)
	}
	dest = pulled("crane-skopeo")
	_, err = s.run(home, rev, crane, "pull", "--insecure", "--format", "oci", revRepo+"skopeo:v1", dest)
	check("crane pull of what skopeo pushed", err, dest)
	if s.auditLine("harbor", "reverse") == "" {
		t.Errorf("no audit line for a reverse-proxied request with the credential injected")
	}

	t.Log("forward proxy: crane by Harbor's own name, `source .env`")
	dest = pulled("crane-forward")
	_, err = s.shell(t.TempDir(), append(gitserver.Env(home), "CONNECTORS="+v.target, "CRANE="+crane, "REF="+name+":"+port+"/library/app:v1", "DEST="+dest),
		`set -e
set -a; . "$CONNECTORS/.env"; set +a
SSL_CERT_FILE="$CONNECTORS/ca-bundle.crt" "$CRANE" pull --format oci "$REF" "$DEST"`)
	check("crane pull through the forward proxy", err, dest)
	if s.auditLine("harbor", "mitm") == "" {
		t.Errorf("no audit line for an intercepted (mitm) request with the credential injected")
	}

	// The token flow went to Harbor's realm with the Connector's account.
	if !b.sawAuthorization("Basic ") {
		t.Errorf("Harbor's token realm was never asked with the account")
	}
	if b.sawAuthorization(tok.Token) || hs.Log.SawHeader(tok.Token) {
		t.Errorf("the pod's token reached Harbor")
	}
}
