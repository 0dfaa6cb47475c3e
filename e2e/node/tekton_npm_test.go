package node

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/npmregistry"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// tektonNodeImage holds the host's node and npm (its module directory),
// and sh, cp and mkdir, for the nodejs Task's step.
const tektonNodeImage = "connectors-e2e-tekton-node:dev"

// dependencyGreeting is what the greeting package, the dependency of the
// npm and pypi stories' projects, exports.
const dependencyGreeting = "installed through the connectors proxy"

// The nodejs Task of examples/tekton/ run by the real Tekton controller
// with the npm-config workspace bound to the npm Connector's npmrc, against
// verdaccio, which wants its htpasswd user for every read and publish: npm
// installs the project's dependency through the forward proxy, node runs
// the project, and npm publishes it. Verdaccio saw the Connector's user on
// every request and never the pod's token, and the password is in no
// mounted file, log line, result, or the TaskRun's or the pod's object.
func TestTektonNpmInstallAndPublishThroughTheForwardProxy(t *testing.T) {
	n := suite(t)
	npm, err := exec.LookPath("npm")
	if err != nil {
		testenv.SkipOrFail(t, "npm not found (make deps installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n.tekton(ctx, t)
	password := randomHex(t)
	reg, err := npmregistry.Start(t.TempDir(), "publisher", password)
	if err != nil {
		testenv.SkipOrFail(t, "the npm registry (make deps installs verdaccio %s): %v", npmregistry.Version, err)
	}
	t.Cleanup(reg.Stop)
	publishGreeting(ctx, t, npm, reg.Addr, "publisher", password)
	reg.Log.Reset()

	address := reachable("http://" + reg.Addr)
	if _, err := n.kubectl(ctx, catalogClass(t, "npm.yaml"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, example(t, "tekton/npm-connector.yaml",
		"replace-with-the-registry-password", password,
		"https://nexus.example.com/repository/npm-hosted", address,
	), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.kubectl(ctx, "", "delete", "-n", "default", "connector/npm", "secret/npm-secret", "--ignore-not-found")
	})
	if err := n.buildTektonBuilderImage(ctx, tektonNodeImage, false, nil,
		"/bin/sh", "/usr/bin/node", "/usr/bin/npm", "/usr/lib/node_modules/npm", "/usr/bin/env", "/usr/bin/cp", "/usr/bin/mkdir", "/etc/nsswitch.conf"); err != nil {
		t.Fatal(err)
	}

	name := "tekton-npm"
	tr, pod := n.runTaskRun(ctx, t, name,
		example(t, "tekton/npm-task.yaml", "image: node:20", "image: "+tektonNodeImage),
		example(t, "tekton/npm-taskrun.yaml",
			"name: nodejs-npm-demo\n", "name: "+name+"\n",
			"https://nexus.example.com/repository/npm-hosted", address))
	log := n.podLog(t, pod.uid)
	if status, reason, msg := tr.succeeded(); status != "True" {
		t.Fatalf("the TaskRun ended %s (%s): %s\n%s", status, reason, msg, log)
	}
	if !strings.Contains(log, dependencyGreeting) {
		t.Errorf("the step's log does not show the installed dependency's %q:\n%s", dependencyGreeting, log)
	}
	var publishes, tarballs int
	for _, r := range reg.Log.Requests() {
		if r.User != "publisher" {
			t.Errorf("verdaccio saw %s %s as %q, want publisher: the proxy did not inject the credential", r.Method, r.Path, r.User)
		}
		if r.Method == http.MethodPut && strings.Contains(r.Path, "hello-connectors") {
			publishes++
		}
		if strings.HasSuffix(r.Path, "/greeting-1.0.0.tgz") {
			tarballs++
		}
	}
	if publishes == 0 || tarballs == 0 {
		t.Errorf("verdaccio saw %d publishes of hello-connectors and %d downloads of greeting's tarball, want both", publishes, tarballs)
	}
	plugin := n.pluginPodOf(ctx, t, pod.name)
	if !n.waitAudited(ctx, t, string(plugin.UID), "default/npm", "forward") {
		t.Error("the DaemonSet pod logged no forward request for default/npm with the credential injected")
	}
	n.checkTektonNoSecret(ctx, t, name, pod, password, reg.Log.Authorizations())
}

// publishGreeting publishes the greeting package, the dependency of the
// nodejs TaskRun's project, to the registry at addr as user, from the
// host, before the TaskRun starts.
func publishGreeting(ctx context.Context, t *testing.T, npm, addr, user, password string) {
	t.Helper()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "greeting")
	if err := os.Mkdir(pkg, 0o750); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		filepath.Join(pkg, "package.json"): `{"name": "greeting", "version": "1.0.0", "main": "index.js", "license": "MIT"}` + "\n",
		filepath.Join(pkg, "index.js"):     `module.exports = "` + dependencyGreeting + `";` + "\n",
		filepath.Join(dir, ".npmrc"): "registry=http://" + addr + "/\n//" + addr + "/:_auth=" +
			base64.StdEncoding.EncodeToString([]byte(user+":"+password)) + "\naudit=false\nfund=false\nupdate-notifier=false\n",
	}
	for f, c := range files {
		if err := os.WriteFile(f, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(ctx, npm, "publish") //nolint:gosec // the host's npm
	cmd.Dir = pkg
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "NPM_CONFIG_USERCONFIG=" + filepath.Join(dir, ".npmrc"), "NPM_CONFIG_CACHE=" + filepath.Join(dir, "cache")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("publishing greeting to the registry: %v\n%s", err, out)
	}
}
