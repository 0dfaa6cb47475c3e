package node

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/pypiindex"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// tektonPythonImage holds the host's Python 3, with pip, setuptools, wheel
// and twine from its Debian packages, and sh, cp and mkdir, for the
// python-publish Task's step.
const tektonPythonImage = "connectors-e2e-tekton-python:dev"

// The python-publish Task of examples/tekton/ run by the real Tekton
// controller with its pip-conf and pypirc workspaces bound to the PyPI
// Connector's pipconf and pypirc, against an index that wants its Basic
// user for every read and upload: pip installs the project's dependency
// through the reverse proxy, python runs the project, pip builds its wheel
// and twine uploads it. The index saw the Connector's user on every
// request and never the pod's token, and the password is in no mounted
// file, log line, result, or the TaskRun's or the pod's object.
func TestTektonPypiInstallAndUploadThroughTheReverseProxy(t *testing.T) {
	n := suite(t)
	twine, err := exec.LookPath("twine")
	if err != nil {
		testenv.SkipOrFail(t, "twine not found (make deps installs it): %v", err)
	}
	for _, p := range []string{"/usr/bin/python3", "/usr/lib/python3/dist-packages/setuptools", "/usr/lib/python3/dist-packages/wheel"} {
		if _, err := os.Stat(p); err != nil {
			testenv.SkipOrFail(t, "%s not found (make deps installs it): %v", p, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n.tekton(ctx, t)
	password := randomHex(t)
	index := pypiindex.Start("uploader", password)
	t.Cleanup(index.Close)
	uploadGreeting(ctx, t, twine, index.URL, "uploader", password)
	index.Log.Reset()

	if _, err := n.kubectl(ctx, catalogClass(t, "pypi.yaml"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kubectl(ctx, example(t, "tekton/pypi-connector.yaml",
		"replace-with-the-index-password", password,
		"https://nexus.example.com/repository/pypi-hosted", reachable(index.URL),
	), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = n.kubectl(ctx, "", "delete", "-n", "default", "connector/pypi", "secret/pypi-secret", "--ignore-not-found")
	})
	lib := "/usr/lib/" + map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH] + "-linux-gnu/"
	if err := n.buildTektonBuilderImage(ctx, tektonPythonImage, false, nil,
		"/bin/sh", "/usr/bin/python3", "/usr/bin/twine", "/usr/bin/env", "/usr/bin/cp", "/usr/bin/mkdir", "/etc/nsswitch.conf",
		"/usr/lib/python3.11", "/usr/lib/python3/dist-packages", lib+"libffi.so.8", lib+"libssl.so.3", lib+"libcrypto.so.3"); err != nil {
		t.Fatal(err)
	}

	name := "tekton-pypi"
	tr, pod := n.runTaskRun(ctx, t, name,
		example(t, "tekton/pypi-task.yaml", "image: python:3.11", "image: "+tektonPythonImage),
		example(t, "tekton/pypi-taskrun.yaml", "name: python-publish-demo\n", "name: "+name+"\n"))
	log := n.podLog(t, pod.uid)
	if status, reason, msg := tr.succeeded(); status != "True" {
		t.Fatalf("the TaskRun ended %s (%s): %s\n%s", status, reason, msg, log)
	}
	if !strings.Contains(log, dependencyGreeting) {
		t.Errorf("the step's log does not show the installed dependency's %q:\n%s", dependencyGreeting, log)
	}
	if got := index.Files("hello-connectors"); len(got) != 1 || !strings.HasSuffix(got[0], ".whl") {
		t.Errorf("the index holds %q for hello-connectors, want the uploaded wheel", got)
	}
	var uploads, downloads int
	for _, r := range index.Log.Requests() {
		if r.User != "uploader" {
			t.Errorf("the index saw %s %s as %q, want uploader: the proxy did not inject the credential", r.Method, r.Path, r.User)
		}
		if r.Method == http.MethodPost {
			uploads++
		}
		if strings.HasPrefix(r.Path, "/packages/") {
			downloads++
		}
	}
	if uploads == 0 || downloads == 0 {
		t.Errorf("the index saw %d uploads and %d downloads, want both", uploads, downloads)
	}
	n.checkTektonNoSecret(ctx, t, name, pod, password, index.Log.Authorizations())
}

// uploadGreeting uploads a wheel of the greeting package, the dependency of
// the python-publish TaskRun's project, to the index at url as user, from
// the host, before the TaskRun starts.
func uploadGreeting(ctx context.Context, t *testing.T, twine, url, user, password string) {
	t.Helper()
	dir := t.TempDir()
	wheel, err := pypiindex.Wheel(dir, "greeting", "1.0.0", "greeting", "GREETING = \""+dependencyGreeting+"\"\n")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, twine, "upload", "--non-interactive", "--disable-progress-bar", "--repository-url", url+"/", wheel) //nolint:gosec // the host's twine
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "TWINE_USERNAME=" + user, "TWINE_PASSWORD=" + password}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("uploading greeting to the index: %v\n%s", err, out)
	}
}
