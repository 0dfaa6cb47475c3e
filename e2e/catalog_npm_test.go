package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/test/servers/npmregistry"
	"github.com/connectors-node/connectors-node/test/testenv"
)

const npmPackageJSON = `{"name": "hello-connectors", "version": "1.0.0", "main": "index.js", "license": "MIT"}
`

const npmGreeting = "installed through the connectors proxy"

// Catalog, npm: with the .npmrc of deploy/classes/npm.yaml, npm publishes a
// package to verdaccio and installs it back, through the forward proxy
// (verdaccio's tarball URLs name the registry's own host), while verdaccio,
// which wants its htpasswd user for both, sees only the Connector's
// credential and never the pod's token.
func TestCatalogNpmPublishAndInstall(t *testing.T) {
	t.Parallel()
	needTool(t, "npm")
	needTool(t, "node")
	s := newStory(t, "e2e-npm")
	s.installCatalogClass("npm.yaml")
	password := randomHex(16)
	reg, err := npmregistry.Start(t.TempDir(), "publisher", password)
	if err != nil {
		testenv.SkipOrFail(t, "the npm registry (make deps installs verdaccio %s): %v", npmregistry.Version, err)
	}
	t.Cleanup(reg.Stop)
	// Clients never proxy loopback addresses: the registry needs a name.
	host := "npm-" + randomHex(4) + ".e2e.test"
	mapHost(t, host)
	_, port, _ := strings.Cut(reg.Addr, ":")
	address := "http://" + host + ":" + port
	tok, v := s.catalogConnector("npm", address, "publisher", password, "npmrc,yarnrc")
	if npmrc := v.file(t, ".npmrc"); !strings.Contains(npmrc, "registry="+address+"/\n") {
		t.Errorf(".npmrc does not name the registry %s", address)
	}
	if yarnrc := v.file(t, ".yarnrc.yml"); !strings.Contains(yarnrc, `npmRegistryServer: "`+address+`/"`) {
		t.Errorf(".yarnrc.yml does not name the registry %s", address)
	}

	home := t.TempDir()
	env := []string{
		"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C",
		"NPM_CONFIG_USERCONFIG=" + filepath.Join(v.target, ".npmrc"),
		"NPM_CONFIG_CACHE=" + filepath.Join(home, "npm-cache"),
	}
	pkg := t.TempDir()
	for name, content := range map[string]string{
		"package.json": npmPackageJSON,
		"index.js":     "module.exports = " + `"` + npmGreeting + `";` + "\n",
	} {
		if err := os.WriteFile(filepath.Join(pkg, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.run(pkg, env, "npm", "publish"); err != nil {
		t.Fatalf("npm publish failed: %v", err)
	}
	app := t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name": "app", "version": "0.0.0", "private": true}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A cache of its own: the publish cached the tarball.
	installEnv := append(withoutEnv(env, "NPM_CONFIG_CACHE"), "NPM_CONFIG_CACHE="+filepath.Join(home, "install-cache"))
	if _, err := s.run(app, installEnv, "npm", "install", "hello-connectors@1.0.0"); err != nil {
		t.Fatalf("npm install failed: %v", err)
	}
	out, err := s.run(app, env, "node", "-e", `console.log(require("hello-connectors"))`)
	if err != nil || strings.TrimSpace(out) != npmGreeting {
		t.Fatalf("the installed package answered %q (%v), want %q", strings.TrimSpace(out), err, npmGreeting)
	}

	reqs := reg.Log.Requests()
	s.checkServerLog("registry", reqs, reg.Log.SawHeader(tok.Token), "publisher")
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
		t.Errorf("the registry saw %d publishes and %d tarball downloads, want both", publishes, tarballs)
	}
	if s.auditLine("npm", "forward") == "" {
		t.Errorf("no audit line for a forward-proxied request with the credential injected")
	}
}
