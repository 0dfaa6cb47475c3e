package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/test/servers/pypiindex"
)

const pypiGreeting = "installed through the connectors proxy"

// Catalog, pypi: with the .pypirc and pip.conf of deploy/classes/pypi.yaml,
// twine uploads a wheel to upstream's repository name connectors-pypi and
// pip installs it back through the reverse proxy,
// while the index (PEP 503 and the legacy upload API behind Basic auth)
// sees only the Connector's credential and never the pod's token.
func TestCatalogPypiUploadAndInstall(t *testing.T) {
	t.Parallel()
	needTool(t, "python3")
	needTool(t, "twine")
	s := newStory(t, "e2e-pypi")
	s.installCatalogClass("pypi.yaml")
	password := randomHex(16)
	index := pypiindex.Start("uploader", password)
	t.Cleanup(index.Close)
	tok, v := s.catalogConnector("pypi", index.URL, "uploader", password, "pipconf,pypirc")
	proxyAddress := s.h.publicURL + "/namespaces/" + s.ns + "/connectors/pypi"
	if pypirc := v.file(t, ".pypirc"); !strings.Contains(pypirc, "repository = "+proxyAddress+"/\n") {
		t.Errorf(".pypirc does not upload to %s", proxyAddress)
	}

	dist := t.TempDir()
	wheel, err := pypiindex.Wheel(dist, "hello-connectors", "1.0.0", "hello_connectors", "GREETING = \""+pypiGreeting+"\"\n")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "PIP_CONFIG_FILE=" + filepath.Join(v.target, "pip.conf")}
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

	reqs := index.Log.Requests()
	s.checkServerLog("index", reqs, index.Log.SawHeader(tok.Token), "uploader")
	var uploads, downloads int
	for _, r := range reqs {
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
	if s.auditLine("pypi", "reverse") == "" {
		t.Errorf("no audit line for a reverse-proxied request with the credential injected")
	}
}
