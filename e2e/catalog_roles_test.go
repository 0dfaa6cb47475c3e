package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
	"github.com/connectors-node/connectors-node/test/servers/mavenrepo"
	"github.com/connectors-node/connectors-node/test/servers/npmregistry"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// roleConnector creates a Connector of a catalog class with its own
// Secret and one spec.params entry, as upstream's multi-connector pages
// write them, and allows the story's builder account to use it.
func (s *story) roleConnector(name, class, address, user, password, param, value string) {
	s.t.Helper()
	secret := name + "-credentials"
	s.basicAuthSecret(secret, user, password)
	raw, err := json.Marshal(value)
	if err != nil {
		s.t.Fatal(err)
	}
	s.create(&v1alpha1.Connector{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Spec: v1alpha1.ConnectorSpec{
			ConnectorClassName: class, Address: address,
			Params: []v1alpha1.Param{{Name: param, Value: apiextensionsv1.JSON{Raw: raw}}},
			Auth:   v1alpha1.ConnectorAuth{Name: "basicAuth", SecretRef: &corev1.ObjectReference{Name: secret}},
		},
	})
	s.allow(s.ns, "builder", name)
}

// namedAddress maps a fresh host name to 127.0.0.1 and returns address
// with its host replaced by the name: clients never proxy loopback
// addresses.
func namedAddress(t *testing.T, prefix, address string) string {
	t.Helper()
	host := prefix + "-" + randomHex(4) + ".e2e.test"
	mapHost(t, host)
	return strings.Replace(address, "127.0.0.1", host, 1)
}

// Catalog, maven roles: a mirror Connector (useAsMirror "true") and a
// deploy Connector in one volume, listed in both orders, as upstream's
// Tekton example mounts them. mvn resolves through the mirror and deploys
// to the deploy repository in both orders, with the profile's reverse
// address and with -DaltDeploymentRepository=id::<the repository's own
// URL> through settings.xml's forward-proxy entry; each repository sees
// only its own Connector's user.
func TestCatalogMavenMirrorAndDeployInBothOrders(t *testing.T) {
	t.Parallel()
	needTool(t, "mvn")
	needTool(t, "nginx")
	s := newStory(t, "e2e-mvnroles")
	s.installCatalogClass("maven.yaml")
	start := func(user, password string) (*mavenrepo.Server, string) {
		repo, err := mavenrepo.Start(t.TempDir(), user, password)
		if err != nil {
			testenv.SkipOrFail(t, "the Maven repository (make deps installs nginx and Debian's Maven plugins): %v", err)
		}
		t.Cleanup(repo.Stop)
		return repo, namedAddress(t, user, repo.URL)
	}
	mirrorPass, deployPass := randomHex(16), randomHex(16)
	mirrorRepo, mirrorAddr := start("mirror-reader", mirrorPass)
	deployRepo, deployAddr := start("deployer", deployPass)
	s.serviceAccount(s.ns, "builder")
	s.roleConnector("mirror", "maven", mirrorAddr, "mirror-reader", mirrorPass, "useAsMirror", "true")
	s.roleConnector("deploy", "maven", deployAddr, "deployer", deployPass, "useAsMirror", "false")
	tok := s.token(s.ns, "builder")

	for i, order := range []string{"mirror,deploy", "deploy,mirror"} {
		v := s.publish("builder", map[string]string{"connectors": order, "configuration.names": "settings"}, tok)
		settings := filepath.Join(v.target, "settings.xml")
		project := t.TempDir()
		version := fmt.Sprintf("1.0.%d", i)
		pom := strings.Replace(mavenProject, "<version>1.0.0</version>", "<version>"+version+"</version>", 1)
		if err := os.WriteFile(filepath.Join(project, "pom.xml"), []byte(pom), 0o600); err != nil {
			t.Fatal(err)
		}
		local := t.TempDir()
		if _, err := s.run(project, gitserver.Env(t.TempDir()), "mvn", "-B", "-q", "-c", "-s", settings,
			"-Dmaven.repo.local="+local, "dependency:resolve", "deploy"); err != nil {
			t.Fatalf("%s: mvn dependency:resolve deploy failed: %v", order, err)
		}
		// Upstream's Task form: the deploy repository's own URL, reached
		// through the forward proxy.
		if _, err := s.run(project, gitserver.Env(t.TempDir()), "mvn", "-B", "-q", "-c", "-s", settings,
			"-Dmaven.repo.local="+local, "deploy", "-DaltDeploymentRepository=real::"+deployAddr); err != nil {
			t.Fatalf("%s: mvn deploy -DaltDeploymentRepository=real::<URL> failed: %v", order, err)
		}
		deployed := filepath.Join(deployRepo.Deployed, "io", "example", "connectors", "hello", version, "hello-"+version+".pom")
		if _, err := os.Stat(deployed); err != nil {
			t.Errorf("%s: the deploy repository does not hold %s: %v", order, version, err)
		}
		if _, err := os.Stat(filepath.Join(mirrorRepo.Deployed, "io")); err == nil {
			t.Errorf("%s: something was deployed to the mirror", order)
		}
	}

	mirrorReqs, err := mirrorRepo.Requests()
	if err != nil {
		t.Fatal(err)
	}
	deployReqs, err := deployRepo.Requests()
	if err != nil {
		t.Fatal(err)
	}
	var resolved, deployPuts int
	for _, r := range mirrorReqs {
		if r.User != "mirror-reader" && r.Status != http.StatusUnauthorized {
			t.Errorf("the mirror served %s %s to %q", r.Method, r.Path, r.User)
		}
		if strings.Contains(r.Path, "commons-io") && r.Status < 300 {
			resolved++
		}
		if r.Method == http.MethodPut {
			t.Errorf("the mirror got PUT %s", r.Path)
		}
	}
	for _, r := range deployReqs {
		if r.User != "deployer" && r.Status != http.StatusUnauthorized {
			t.Errorf("the deploy repository served %s %s to %q", r.Method, r.Path, r.User)
		}
		if strings.Contains(r.Path, "commons-io") {
			t.Errorf("the dependency was read from the deploy repository: %s", r.Path)
		}
		if r.Method == http.MethodPut && r.Status < 300 {
			deployPuts++
		}
	}
	if resolved == 0 || deployPuts == 0 {
		t.Errorf("the mirror served %d dependency requests and the deploy repository took %d PUTs, want both", resolved, deployPuts)
	}
}

// Catalog, npm roles: a registryType mirror Connector and a registryType
// publish Connector in one volume, in both orders. npm install reads the
// mirror (.npmrc registry), Yarn's npmPublishRegistry names the publish
// registry, and npm publish to it goes through the proxy with the publish
// Connector's credential; each registry sees only its own user.
func TestCatalogNpmMirrorAndPublishInBothOrders(t *testing.T) {
	t.Parallel()
	needTool(t, "npm")
	needTool(t, "node")
	s := newStory(t, "e2e-npmroles")
	s.installCatalogClass("npm.yaml")
	start := func(user, password string) (*npmregistry.Server, string) {
		reg, err := npmregistry.Start(t.TempDir(), user, password)
		if err != nil {
			testenv.SkipOrFail(t, "the npm registry (make deps installs verdaccio %s): %v", npmregistry.Version, err)
		}
		t.Cleanup(reg.Stop)
		return reg, namedAddress(t, user, "http://"+reg.Addr)
	}
	mirrorPass, publishPass := randomHex(16), randomHex(16)
	mirrorReg, mirrorAddr := start("mirror-reader", mirrorPass)
	publishReg, publishAddr := start("publisher", publishPass)
	s.serviceAccount(s.ns, "builder")
	s.roleConnector("npm-mirror", "npm", mirrorAddr, "mirror-reader", mirrorPass, "registryType", "mirror")
	s.roleConnector("npm-publish", "npm", publishAddr, "publisher", publishPass, "registryType", "publish")
	tok := s.token(s.ns, "builder")

	home := t.TempDir()
	pkgDir := func(name, version string) string {
		dir := t.TempDir()
		for file, content := range map[string]string{
			"package.json": fmt.Sprintf(`{"name": %q, "version": %q, "main": "index.js", "license": "MIT"}`+"\n", name, version),
			"index.js":     fmt.Sprintf("module.exports = %q;\n", name+"@"+version),
		} {
			if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for i, order := range []string{"npm-mirror,npm-publish", "npm-publish,npm-mirror"} {
		v := s.publish("builder", map[string]string{"connectors": order, "configuration.names": "npmrc,yarnrc"}, tok)
		if npmrc := v.file(t, ".npmrc"); !strings.Contains(npmrc, "registry="+mirrorAddr+"/\n") {
			t.Errorf("%s: .npmrc does not install from the mirror %s:\n%s", order, mirrorAddr, npmrc)
		}
		yarnrc := v.file(t, ".yarnrc.yml")
		if !strings.Contains(yarnrc, `npmRegistryServer: "`+mirrorAddr+`/"`) || !strings.Contains(yarnrc, `npmPublishRegistry: "`+publishAddr+`/"`) {
			t.Errorf("%s: .yarnrc.yml does not read the mirror and publish to %s:\n%s", order, publishAddr, yarnrc)
		}
		env := []string{
			"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C",
			"NPM_CONFIG_USERCONFIG=" + filepath.Join(v.target, ".npmrc"),
			"NPM_CONFIG_CACHE=" + filepath.Join(home, fmt.Sprintf("cache-%d", i)),
		}
		// The mirror holds a dependency (published to it as its own user,
		// through the proxy), which install reads from there.
		dep := fmt.Sprintf("dep-%d", i)
		if _, err := s.run(pkgDir(dep, "1.0.0"), env, "npm", "publish", "--registry", mirrorAddr+"/"); err != nil {
			t.Fatalf("%s: seeding the mirror failed: %v", order, err)
		}
		app := t.TempDir()
		if err := os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name": "app", "version": "0.0.0", "private": true}`+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		installEnv := append(withoutEnv(env, "NPM_CONFIG_CACHE"), "NPM_CONFIG_CACHE="+filepath.Join(home, fmt.Sprintf("install-%d", i)))
		if _, err := s.run(app, installEnv, "npm", "install", dep+"@1.0.0"); err != nil {
			t.Fatalf("%s: npm install from the mirror failed: %v", order, err)
		}
		if _, err := s.run(pkgDir(fmt.Sprintf("lib-%d", i), "1.0.0"), env, "npm", "publish", "--registry", publishAddr+"/"); err != nil {
			t.Fatalf("%s: npm publish to the publish registry failed: %v", order, err)
		}
	}
	for _, c := range []struct {
		reg  *npmregistry.Server
		user string
	}{{mirrorReg, "mirror-reader"}, {publishReg, "publisher"}} {
		s.checkServerLog("registry of "+c.user, c.reg.Log.Requests(), c.reg.Log.SawHeader(tok.Token), c.user)
	}
	for _, r := range publishReg.Log.Requests() {
		if strings.Contains(r.Path, "dep-") {
			t.Errorf("the publish registry served %s %s: installs must read the mirror", r.Method, r.Path)
		}
	}
	for _, r := range mirrorReg.Log.Requests() {
		if strings.Contains(r.Path, "lib-") {
			t.Errorf("the mirror got %s %s: publishes must go to the publish registry", r.Method, r.Path)
		}
	}
}
