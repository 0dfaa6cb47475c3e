package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/test/servers/npmregistry"
	"github.com/connectors-node/connectors-node/test/servers/repomanager"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// yarnVersion is the Yarn release (@yarnpkg/cli-dist) the Yarn stories
// run; hack/install-deps.sh installs it from the npm registry into
// yarnDir.
const yarnVersion = "4.18.1"

// yarnJS returns the path of Yarn's yarn.js in the cache
// hack/install-deps.sh installs it to, skipping (failing in CI) when it
// is missing.
func yarnJS(t *testing.T) string {
	t.Helper()
	needTool(t, "node")
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(cache, "connectors-node", "yarn-"+yarnVersion, "node_modules", "@yarnpkg", "cli-dist", "bin", "yarn.js")
	if _, err := os.Stat(js); err != nil {
		testenv.SkipOrFail(t, "Yarn %s (make deps installs it): %v", yarnVersion, err)
	}
	return js
}

// Catalog, npm: Yarn 4, with the .yarnrc.yml of deploy/classes/npm.yaml
// copied into the project as users do, publishes a package to verdaccio
// and installs it back through the forward proxy, which Yarn reaches by
// CONNECT even for an http:// registry; verdaccio sees only the
// Connector's credential, never the pod's token.
func TestCatalogYarnNpm(t *testing.T) {
	t.Parallel()
	yarn := yarnJS(t)
	s := newStory(t, "e2e-yarn-npm")
	s.installCatalogClass("npm.yaml")
	password := randomHex(16)
	reg, err := npmregistry.Start(t.TempDir(), "publisher", password)
	if err != nil {
		testenv.SkipOrFail(t, "the npm registry (make deps installs verdaccio %s): %v", npmregistry.Version, err)
	}
	t.Cleanup(reg.Stop)
	// Clients never proxy loopback addresses: the registry needs a name.
	host := "yarn-" + randomHex(4) + ".e2e.test"
	mapHost(t, host)
	_, port, _ := strings.Cut(reg.Addr, ":")
	address := "http://" + host + ":" + port
	tok, v := s.catalogConnector("npm", address, "publisher", password, "yarnrc")
	yarnStory(t, s, yarn, v)
	s.checkYarnRegistry(reg, tok.Token, "publisher")
	if s.auditLine("npm", "mitm") == "" {
		t.Errorf("no audit line for a tunnelled request with the credential injected")
	}
}

// Catalog, nexus and jfrog: the same with the .yarnrc.yml of
// deploy/classes/nexus.yaml and jfrog.yaml, through the Nexus and
// Artifactory stand-ins' npm paths to verdaccio.
func TestCatalogYarnNexus(t *testing.T) {
	t.Parallel()
	yarnRepoManagerStory(t, "nexus", repomanager.Nexus)
}

func TestCatalogYarnJFrog(t *testing.T) {
	t.Parallel()
	yarnRepoManagerStory(t, "jfrog", repomanager.Artifactory)
}

func yarnRepoManagerStory(t *testing.T, class string, flavor repomanager.Flavor) {
	yarn := yarnJS(t)
	s := newStory(t, "e2e-yarn-"+class)
	s.installCatalogClass(class + ".yaml")
	const user = "ci-deployer"
	password := randomHex(16)
	reg, err := npmregistry.Start(t.TempDir(), user, password)
	if err != nil {
		testenv.SkipOrFail(t, "the npm registry (make deps installs verdaccio %s): %v", npmregistry.Version, err)
	}
	t.Cleanup(reg.Stop)
	router, err := repomanager.Start(flavor, user, password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(router.Close)
	if err := router.Route(repomanager.Npm, "npm-hosted", "http://"+reg.Addr); err != nil {
		t.Fatal(err)
	}
	host := class + "-yarn-" + randomHex(4) + ".e2e.test"
	mapHost(t, host)
	_, port, _ := strings.Cut(router.Addr, ":")
	address := "http://" + host + ":" + port

	s.basicAuthSecret(class+"-credentials", user, password)
	s.connector(connectorSpec{name: class, class: class, address: address, authName: "basicAuth", secret: class + "-credentials"})
	s.serviceAccount(s.ns, "builder")
	s.allow(s.ns, "builder", class)
	tok := s.token(s.ns, "builder")
	key := map[string]string{"nexus": "registry", "jfrog": "repository"}[class]
	params, err := json.Marshal(map[string]map[string]string{"yarnrc": {key: "npm-hosted"}})
	if err != nil {
		t.Fatal(err)
	}
	v := s.publish("builder", map[string]string{
		"connectors": class, "configuration.names": "yarnrc", "configuration.params": string(params),
	}, tok)
	want := `npmRegistryServer: "` + address + strings.TrimSuffix(router.Prefix(repomanager.Npm, "npm-hosted"), "/") + `/"`
	if yarnrc := v.file(t, ".yarnrc.yml"); !strings.Contains(yarnrc, want) {
		t.Errorf(".yarnrc.yml does not hold %s", want)
	}
	yarnStory(t, s, yarn, v)
	s.checkYarnRegistry(reg, tok.Token, user)
	if router.Log.SawHeader(tok.Token) {
		t.Errorf("the pod's token reached the %s stand-in", class)
	}
	if s.auditLine(class, "mitm") == "" {
		t.Errorf("no audit line for a tunnelled request with the credential injected")
	}
}

// yarnStory runs Yarn as a workload would, with the mounted .yarnrc.yml
// copied into each project: yarn install and yarn npm publish of a package, then yarn
// install of it into an application, whose node then loads it.
func yarnStory(t *testing.T, s *story, yarn string, v *volume) {
	t.Helper()
	yarnrc := v.file(t, ".yarnrc.yml")
	home := t.TempDir()
	env := []string{
		"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C",
		"YARN_ENABLE_TELEMETRY=0", "YARN_ENABLE_PROGRESS_BARS=0",
		"YARN_ENABLE_IMMUTABLE_INSTALLS=0",
		// The package is seconds old: no quarantine of fresh releases.
		"YARN_NPM_MINIMAL_AGE_GATE=0",
		"YARN_GLOBAL_FOLDER=" + filepath.Join(home, "yarn-global"),
	}
	write := func(dir string, files map[string]string) {
		t.Helper()
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	pkg := t.TempDir()
	write(pkg, map[string]string{
		"package.json": npmPackageJSON,
		"index.js":     `module.exports = "` + npmGreeting + `";` + "\n",
		".yarnrc.yml":  yarnrc,
		"yarn.lock":    "",
	})
	// Yarn publishes only a project it has installed.
	if _, err := s.run(pkg, env, "node", yarn, "install"); err != nil {
		t.Fatalf("yarn install of the package failed: %v", err)
	}
	if _, err := s.run(pkg, env, "node", yarn, "npm", "publish"); err != nil {
		t.Fatalf("yarn npm publish failed: %v", err)
	}
	app := t.TempDir()
	write(app, map[string]string{
		"package.json": `{"name": "app", "version": "0.0.0", "private": true, "dependencies": {"hello-connectors": "1.0.0"}}` + "\n",
		".yarnrc.yml":  yarnrc + "nodeLinker: node-modules\n",
		"yarn.lock":    "",
	})
	if _, err := s.run(app, env, "node", yarn, "install"); err != nil {
		t.Fatalf("yarn install failed: %v", err)
	}
	out, err := s.run(app, env, "node", "-e", `console.log(require("hello-connectors"))`)
	if err != nil || strings.TrimSpace(out) != npmGreeting {
		t.Fatalf("the installed package answered %q (%v), want %q", strings.TrimSpace(out), err, npmGreeting)
	}
	for _, dir := range []string{pkg, app} {
		if lock, err := os.ReadFile(filepath.Join(dir, "yarn.lock")); err == nil { //nolint:gosec // the test's own project
			if l := s.leaked(string(lock)); l != "" {
				t.Errorf("yarn.lock holds %s", l)
			}
		}
	}
}

// checkYarnRegistry fails unless the registry saw a publish and a tarball
// download, each with the Connector's user and none with the pod's token.
func (s *story) checkYarnRegistry(reg *npmregistry.Server, token, user string) {
	s.t.Helper()
	reqs := reg.Log.Requests()
	s.checkServerLog("npm registry", reqs, reg.Log.SawHeader(token), user)
	var publishes, tarballs int
	for _, r := range reqs {
		if r.Method == http.MethodPut {
			publishes++
		}
		if strings.HasSuffix(r.Path, ".tgz") {
			tarballs++
		}
	}
	if publishes == 0 || tarballs == 0 {
		s.t.Errorf("the registry saw %d publishes and %d tarball downloads, want both", publishes, tarballs)
	}
}
