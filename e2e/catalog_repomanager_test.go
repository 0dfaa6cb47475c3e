package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/test/servers/authlog"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
	"github.com/connectors-node/connectors-node/test/servers/mavenrepo"
	"github.com/connectors-node/connectors-node/test/servers/npmregistry"
	"github.com/connectors-node/connectors-node/test/servers/pypiindex"
	"github.com/connectors-node/connectors-node/test/servers/repomanager"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// Catalog, nexus: mvn, npm, pip and twine with the files of
// deploy/classes/nexus.yaml against a Nexus stand-in that routes
// /repository/<name>/ to the tests' Maven, npm and PyPI servers.
func TestCatalogNexusMavenNpmPypi(t *testing.T) {
	t.Parallel()
	repoManagerStory(t, "nexus", repomanager.Nexus)
}

// Catalog, jfrog: the same with deploy/classes/jfrog.yaml against an
// Artifactory stand-in (/artifactory/<key>/, /artifactory/api/npm/<key>/,
// /artifactory/api/pypi/<key>/).
func TestCatalogJFrogMavenNpmPypi(t *testing.T) {
	t.Parallel()
	repoManagerStory(t, "jfrog", repomanager.Artifactory)
}

// repoManagerStory publishes a Connector of class for a repository
// manager of flavor with its settings, npmrc, pipconf and pypirc, as
// upstream's documentation mounts them (repository names in
// configuration.params), then: mvn resolves a dependency through the
// mirror and deploys to the real repository URL
// (-DaltDeploymentRepository, as upstream's Maven Task does), through the
// forward proxy of settings.xml's <proxies>; npm publishes and installs a
// package through the forward proxy; twine uploads a wheel and pip
// installs it through the reverse proxy. Every server sees the
// Connector's user, none the pod's token, and no mounted file or client
// output holds the credential.
func repoManagerStory(t *testing.T, class string, flavor repomanager.Flavor) {
	needTool(t, "mvn")
	needTool(t, "nginx")
	needTool(t, "npm")
	needTool(t, "node")
	needTool(t, "python3")
	needTool(t, "twine")
	s := newStory(t, "e2e-"+class)
	s.installCatalogClass(class + ".yaml")
	const user = "ci-deployer"
	password := randomHex(16)

	maven, err := mavenrepo.Start(t.TempDir(), user, password)
	if err != nil {
		testenv.SkipOrFail(t, "the Maven repository (make deps installs nginx and Debian's Maven plugins): %v", err)
	}
	t.Cleanup(maven.Stop)
	npmReg, err := npmregistry.Start(t.TempDir(), user, password)
	if err != nil {
		testenv.SkipOrFail(t, "the npm registry (make deps installs verdaccio %s): %v", npmregistry.Version, err)
	}
	t.Cleanup(npmReg.Stop)
	index := pypiindex.Start(user, password)
	t.Cleanup(index.Close)
	router, err := repomanager.Start(flavor, user, password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(router.Close)
	for _, r := range []struct {
		format        repomanager.Format
		name, backend string
	}{
		{repomanager.Maven, "maven-releases", maven.URL},
		{repomanager.Npm, "npm-hosted", "http://" + npmReg.Addr},
		{repomanager.PyPI, "pypi-hosted", index.URL},
	} {
		if err := router.Route(r.format, r.name, r.backend); err != nil {
			t.Fatal(err)
		}
	}
	// Clients never proxy loopback addresses: the tool needs a name.
	host := class + "-" + randomHex(4) + ".e2e.test"
	mapHost(t, host)
	_, port, _ := strings.Cut(router.Addr, ":")
	address := "http://" + host + ":" + port

	s.basicAuthSecret(class+"-credentials", user, password)
	s.connector(connectorSpec{name: class, class: class, address: address, authName: "basicAuth", secret: class + "-credentials"})
	s.serviceAccount(s.ns, "builder")
	s.allow(s.ns, "builder", class)
	tok := s.token(s.ns, "builder")
	npmKey := map[string]string{"nexus": "registry", "jfrog": "repository"}[class]
	params, err := json.Marshal(map[string]map[string]string{
		"settings": {"mirrorRepository": "maven-releases"},
		"npmrc":    {npmKey: "npm-hosted"},
		"pipconf":  {"repository": "pypi-hosted"},
		"pypirc":   {"deployRepository": "pypi-hosted"},
	})
	if err != nil {
		t.Fatal(err)
	}
	v := s.publish("builder", map[string]string{
		"connectors": class, "configuration.names": "settings,npmrc,pipconf,pypirc", "configuration.params": string(params),
	}, tok)

	mavenRepo := address + router.Prefix(repomanager.Maven, "maven-releases")
	if settings := v.file(t, "settings.xml"); !strings.Contains(settings, "<url>"+strings.TrimSuffix(mavenRepo, "/")+"</url>") {
		t.Errorf("settings.xml does not mirror through %s", mavenRepo)
	}
	t.Run("mvn", func(t *testing.T) {
		project := t.TempDir()
		if err := os.WriteFile(filepath.Join(project, "pom.xml"), []byte(mavenProject), 0o600); err != nil {
			t.Fatal(err)
		}
		local := t.TempDir()
		if _, err := s.run(project, gitserver.Env(t.TempDir()), "mvn", "-B", "-q", "-c",
			"-s", filepath.Join(v.target, "settings.xml"), "-Dmaven.repo.local="+local,
			"-DaltDeploymentRepository="+class+"::default::"+strings.TrimSuffix(mavenRepo, "/"),
			"dependency:resolve", "deploy"); err != nil {
			t.Fatalf("mvn dependency:resolve deploy failed: %v", err)
		}
		if _, err := os.Stat(filepath.Join(local, "commons-io", "commons-io", "2.11.0", "commons-io-2.11.0.jar")); err != nil {
			t.Errorf("the dependency was not resolved: %v", err)
		}
		deployed := filepath.Join(maven.Deployed, "io", "example", "connectors", "hello", "1.0.0", "hello-1.0.0.pom")
		if b, err := os.ReadFile(deployed); err != nil || string(b) != mavenProject { //nolint:gosec // the test's own repository
			t.Errorf("the repository does not hold the deployed POM: %v", err)
		}
		reqs, err := maven.Requests()
		if err != nil {
			t.Fatal(err)
		}
		var logged []authlog.Request
		for _, r := range reqs {
			logged = append(logged, r.Request)
		}
		s.checkServerLog("Maven repository", logged, false, user)
	})

	t.Run("npm", func(t *testing.T) {
		home := t.TempDir()
		env := []string{
			"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C",
			"NPM_CONFIG_USERCONFIG=" + filepath.Join(v.target, ".npmrc"),
			"NPM_CONFIG_CACHE=" + filepath.Join(home, "npm-cache"),
		}
		pkg := t.TempDir()
		for name, content := range map[string]string{
			"package.json": npmPackageJSON,
			"index.js":     `module.exports = "` + npmGreeting + `";` + "\n",
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
		installEnv := append(withoutEnv(env, "NPM_CONFIG_CACHE"), "NPM_CONFIG_CACHE="+filepath.Join(home, "install-cache"))
		if _, err := s.run(app, installEnv, "npm", "install", "hello-connectors@1.0.0"); err != nil {
			t.Fatalf("npm install failed: %v", err)
		}
		out, err := s.run(app, env, "node", "-e", `console.log(require("hello-connectors"))`)
		if err != nil || strings.TrimSpace(out) != npmGreeting {
			t.Fatalf("the installed package answered %q (%v), want %q", strings.TrimSpace(out), err, npmGreeting)
		}
		reqs := npmReg.Log.Requests()
		s.checkServerLog("npm registry", reqs, npmReg.Log.SawHeader(tok.Token), user)
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
	})

	t.Run("pip and twine", func(t *testing.T) {
		dist := t.TempDir()
		wheel, err := pypiindex.Wheel(dist, "hello-connectors", "1.0.0", "hello_connectors", "GREETING = \""+pypiGreeting+"\"\n")
		if err != nil {
			t.Fatal(err)
		}
		home := t.TempDir()
		env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "PIP_CONFIG_FILE=" + filepath.Join(v.target, "pip.conf")}
		// connectors-pypi is the repository name upstream's Tasks use.
		if _, err := s.run(dist, env, "twine", "upload", "--non-interactive", "--disable-progress-bar",
			"--config-file", filepath.Join(v.target, ".pypirc"), "-r", "connectors-pypi", wheel); err != nil {
			t.Fatalf("twine upload failed: %v", err)
		}
		if got := index.Files("hello-connectors"); len(got) != 1 || got[0] != filepath.Base(wheel) {
			t.Fatalf("the index holds %q, want the uploaded wheel", got)
		}
		target := t.TempDir()
		if _, err := s.run(home, env, "python3", "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
			"--target", target, "hello-connectors==1.0.0"); err != nil {
			t.Fatalf("pip install failed: %v", err)
		}
		out, err := s.run(home, append(env, "PYTHONPATH="+target), "python3", "-c", "import hello_connectors; print(hello_connectors.GREETING)")
		if err != nil || strings.TrimSpace(out) != pypiGreeting {
			t.Fatalf("the installed package answered %q (%v), want %q", strings.TrimSpace(out), err, pypiGreeting)
		}
		s.checkServerLog("index", index.Log.Requests(), index.Log.SawHeader(tok.Token), user)
	})

	if router.Log.SawHeader(tok.Token) {
		t.Errorf("the pod's token reached the %s stand-in", class)
	}
	for _, mode := range []string{"forward", "reverse"} {
		if s.auditLine(class, mode) == "" {
			t.Errorf("no audit line for a %s-proxied request with the credential injected", mode)
		}
	}
}
