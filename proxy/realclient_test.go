package proxy

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/cgi" //nolint:gosec // G504: serves git http-backend to the test; Go >= 1.6.3 drops the Proxy header (httpoxy)
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/connectors-node/connectors-node/test/testenv"
)

// needBinary skips when a tool is missing, except in CI where it fails.
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.SkipOrFail(t, "%s not installed (make deps installs it): %v", name, err)
	}
	return p
}

// childEnv is a clean environment for a child process: no inherited proxy
// or CA settings, its own HOME, no system git config.
func childEnv(home string, extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false",
	}, extra...)
}

func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// gitServer serves bare repositories under root with git http-backend
// behind HTTP Basic auth (git-user:git-pass) and logs who pushed/fetched.
type gitServer struct {
	root, backend string
	mu            sync.Mutex
	users         []string
}

const gitUser, gitPass = "git-user", "git-pass-6f7e8d"

func (g *gitServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != gitUser || pass != gitPass {
		w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	g.mu.Lock()
	g.users = append(g.users, "REMOTE_USER="+user+" "+r.URL.Path)
	g.mu.Unlock()
	h := &cgi.Handler{Path: g.backend, Dir: g.root, Env: []string{
		"GIT_PROJECT_ROOT=" + g.root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=" + user,
		"HOME=" + g.root, "GIT_CONFIG_NOSYSTEM=1",
	}}
	h.ServeHTTP(w, r)
}

func (g *gitServer) log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.users, "\n")
}

// newGitServer creates root/repo.git with one commit.
func newGitServer(t *testing.T) *gitServer {
	t.Helper()
	needBinary(t, "git")
	backend := "/usr/lib/git-core/git-http-backend"
	if out, err := exec.CommandContext(context.Background(), "git", "--exec-path").Output(); err == nil {
		backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if _, err := os.Stat(backend); err != nil {
		needBinary(t, "git-http-backend")
	}
	root := t.TempDir()
	env := childEnv(root)
	mustRun(t, root, env, "git", "init", "-q", "--bare", "-b", "main", "repo.git")
	mustRun(t, root, env, "git", "-C", "repo.git", "config", "http.receivepack", "true")
	seed := filepath.Join(root, "seed")
	mustRun(t, root, env, "git", "init", "-q", "-b", "main", seed)
	if err := os.WriteFile(filepath.Join(seed, "README"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, seed, env, "git", "add", "README")
	mustRun(t, seed, env, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed")
	mustRun(t, seed, env, "git", "push", "-q", filepath.Join(root, "repo.git"), "main")
	return &gitServer{root: root, backend: backend}
}

func gitSecret(o *fakeObjects) {
	o.secret("team-a", "git", corev1.SecretTypeBasicAuth, map[string]string{"username": gitUser, "password": gitPass})
}

// Real git clone and push through the reverse proxy (path form), configured
// only by a .gitconfig with insteadOf and the token header.
func TestRealGitThroughReverseProxy(t *testing.T) {
	g := newGitServer(t)
	backend := httptest.NewServer(g)
	t.Cleanup(backend.Close)
	o := newFakeObjects()
	gitSecret(o)
	gitAddr := "http://git.example.test:" + port(t, backend)
	o.connector("team-a", "git", gitAddr, "git")
	e := startEnv(t, o, nil)
	proxyRepo := e.url + "/namespaces/team-a/connectors/git/"

	clone := func(t *testing.T, token string) (string, string, error) {
		home := t.TempDir()
		cfg := "[url \"" + proxyRepo + "\"]\n\tinsteadOf = " + gitAddr + "/\n" +
			"[http \"" + proxyRepo + "\"]\n\textraHeader = Authorization: Basic " + b64(":"+token) + "\n" +
			"[user]\n\tname = t\n\temail = t@t\n"
		if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, home, childEnv(home), "git", "clone", "-q", gitAddr+"/repo.git", "work")
		return home, out, err
	}

	t.Run("clone and push", func(t *testing.T) {
		home, out, err := clone(t, tokA)
		if err != nil {
			t.Fatalf("git clone: %v\n%s", err, out)
		}
		work := filepath.Join(home, "work")
		if b, err := os.ReadFile(filepath.Join(work, "README")); err != nil || string(b) != "hello\n" {
			t.Fatalf("cloned README: %q %v", b, err)
		}
		if err := os.WriteFile(filepath.Join(work, "NEW"), []byte("pushed\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustRun(t, work, childEnv(home), "git", "add", "NEW")
		mustRun(t, work, childEnv(home), "git", "commit", "-q", "-m", "through the proxy")
		mustRun(t, work, childEnv(home), "git", "push", "-q", "origin", "main")
		log := mustRun(t, g.root, childEnv(g.root), "git", "-C", "repo.git", "log", "--format=%s", "main")
		if !strings.Contains(log, "through the proxy") {
			t.Errorf("push did not land: %s", log)
		}
		if !strings.Contains(g.log(), "REMOTE_USER="+gitUser+" /repo.git/git-receive-pack") {
			t.Errorf("backend log lacks the injected user on push:\n%s", g.log())
		}
	})
	t.Run("wrong token gets 401", func(t *testing.T) {
		_, out, err := clone(t, "wrong-token")
		if err == nil {
			t.Errorf("clone with a wrong token succeeded:\n%s", out)
		}
		if !strings.Contains(e.logs.String(), `"status":401`) {
			t.Errorf("the proxy did not answer 401:\n%s", out)
		}
	})
	assertNoSecrets(t, "logs", e.logs.String())
}

// Real git clone over HTTPS through the forward proxy with git's default
// proxy auth (anyauth: the first CONNECT has no credentials, then 407,
// then the retry).
func TestRealGitThroughForwardProxy(t *testing.T) {
	g := newGitServer(t)
	upCA := newTestCA(t)
	cert := upCA.serverCert(t, "gits.example.test")
	backend := startTLS(t, g, &cert)
	o := newFakeObjects()
	gitSecret(o)
	o.connector("team-a", "gits", "https://gits.example.test:"+port(t, backend), "git")
	e := startEnv(t, o, []*x509.Certificate{upCA.cert})
	home := t.TempDir()
	proxyURL := "http://team-a%2Fgits:" + tokA + "@" + e.addr
	env := childEnv(home, "https_proxy="+proxyURL, "HTTPS_PROXY="+proxyURL, "GIT_SSL_CAINFO="+e.caFile)
	out, err := run(t, home, env, "git", "clone", "-q", "https://gits.example.test:"+port(t, backend)+"/repo.git", "work")
	if err != nil {
		t.Fatalf("git clone through the forward proxy: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(home, "work", "README")); err != nil || string(b) != "hello\n" {
		t.Errorf("cloned README: %q %v", b, err)
	}
	if !strings.Contains(e.logs.String(), `"status":407`) {
		t.Errorf("git did not go through the 407 challenge")
	}
	if !strings.Contains(g.log(), "REMOTE_USER="+gitUser) {
		t.Errorf("backend did not see the injected user")
	}
	assertNoSecrets(t, "logs", e.logs.String())
}

func TestRealCurl(t *testing.T) {
	curl := needBinary(t, "curl")
	f := newFixture(t)
	home := t.TempDir()
	env := childEnv(home)
	cases := []struct {
		name   string
		args   []string
		want   string
		inject bool
	}{
		{"forward MITM with --cacert", []string{"--proxy", f.url, "--proxy-user", "team-a/api:" + tokA,
			"--cacert", f.caFile, "https://api.example.test:" + f.pa + "/curl"}, "200", true},
		{"forward with a wrong token", []string{"--proxy", f.url, "--proxy-user", "team-a/api:nope",
			"--cacert", f.caFile, "https://api.example.test:" + f.pa + "/curl"}, "407", false},
		{"reverse with -u :token", []string{"-u", ":" + tokA, f.url + "/namespaces/team-a/connectors/api/curl"}, "200", true},
		{"reverse with a Bearer header", []string{"-H", "Authorization: Bearer " + tokA, f.url + "/namespaces/team-a/connectors/api/curl"}, "200", true},
		{"reverse without a token", []string{f.url + "/namespaces/team-a/connectors/api/curl"}, "401", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "--noproxy", ""}, c.args...)
			if c.args[0] != "--proxy" {
				args = append([]string{"--noproxy", "*"}, args...)
			}
			out, _ := run(t, home, env, curl, args...)
			// A refused CONNECT makes curl print "response 407" and 000.
			if !strings.HasSuffix(strings.TrimSpace(out), c.want) && !strings.Contains(out, "response "+c.want) {
				t.Errorf("curl answered %q, want %s", out, c.want)
			}
			if got := injectedIn(f.log.take(), f.basic); got != c.inject {
				t.Errorf("credential injected: %v, want %v", got, c.inject)
			}
		})
	}
	assertNoSecrets(t, "logs", f.logs.String())
}
