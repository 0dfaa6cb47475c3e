package e2e

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/gitserver"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
)

const readme = "Cloned through the connectors proxy.\n"

// gitStory is a story with a Git server, its credential, a git Connector
// and a ServiceAccount allowed to use it.
type gitStory struct {
	*story
	git  *gitBackend
	repo string
	sa   string
}

func newGitStory(t *testing.T, prefix string, o gitOptions, ca []byte) *gitStory {
	t.Helper()
	s := newStory(t, prefix)
	password := randomHex(16)
	git := s.startGit(password, o)
	g := &gitStory{story: s, git: git, sa: "git-clone"}
	g.repo = git.repo(t, "private-repo", map[string]string{"README.md": readme})
	s.basicAuthSecret("git-credentials", gitUser, password)
	c := connectorSpec{name: "git", class: "git", address: git.URL, authName: "basicAuth", secret: "git-credentials"}
	if ca != nil {
		s.caSecret("git-ca", ca)
		c.caSecret = "git-ca"
	}
	s.connector(c)
	s.serviceAccount(s.ns, g.sa)
	s.allow(s.ns, g.sa, "git")
	return g
}

// checkClone checks a finished clone: the command's error, the cloned
// file, and that the credential reached the Git server while the pod's
// tokens did not.
func (g *gitStory) checkClone(err error, dest string, tokens ...string) {
	g.t.Helper()
	if err != nil {
		g.t.Fatalf("git clone failed: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dest, "README.md")) //nolint:gosec // the clone just made
	if err != nil {
		g.t.Fatalf("reading the clone: %v", err)
	}
	if string(got) != readme {
		g.t.Errorf("cloned README.md = %q, want %q", got, readme)
	}
	if users := g.git.Users(); len(users) == 0 || users[0] != gitUser {
		g.t.Errorf("the Git server saw users %q, want %q: the proxy did not inject the credential", users, gitUser)
	}
	for _, tok := range tokens {
		if g.git.sawHeader(tok) {
			g.t.Errorf("the pod's token reached the Git server")
		}
	}
}

// Story 1: a Job clones with the mounted .gitconfig of
// examples/git-clone-job.yaml, through the reverse proxy.
func TestGitCloneJobWithMountedGitconfig(t *testing.T) {
	t.Parallel()
	g := newGitStory(t, "e2e-gitconfig", gitOptions{}, nil)
	job := loadJob(t, "git-clone-job.yaml")
	tok := g.token(g.ns, g.sa)
	v := g.publish(g.sa, job.attrs, tok)

	gitconfig := v.file(t, ".gitconfig")
	proxyAddress := g.h.publicURL + "/namespaces/" + g.ns + "/connectors/git"
	if !strings.Contains(gitconfig, `[url "`+proxyAddress+`/"]`) {
		t.Errorf(".gitconfig does not send %s to %s", g.git.URL, proxyAddress)
	}
	if got := v.file(t, "context.token"); got != tok.Token {
		t.Errorf("context.token is not the pod's token")
	}

	dest := filepath.Join(t.TempDir(), "repo")
	script, env := job.localize(t, v.target, map[string]string{
		"https://github.com/example/private-repo": g.repo,
		"/tmp/repo": dest,
	})
	out, err := g.shell(t.TempDir(), append(gitserver.Env(t.TempDir()), env...), script)
	g.checkClone(err, dest, tok.Token)
	if !strings.Contains(out, "initial commit") {
		t.Errorf("the Job's `git log -1 --oneline` does not show the commit")
	}
	if g.auditLine("git", "reverse") == "" {
		t.Errorf("no audit line for a reverse-proxied request with the credential injected")
	}
}

// Story 1, again: `source .env` and clone over HTTPS through the forward
// proxy, which intercepts TLS with its CA (trusted through the mounted
// ca.crt) and verifies the Git server with the Connector's caCertSecretRef.
func TestGitCloneThroughForwardProxyWithEnv(t *testing.T) {
	t.Parallel()
	needTool(t, "git")
	suite(t)
	// Clients never proxy loopback addresses or names in no_proxy: the Git
	// server needs a host name of its own.
	host := "git-" + randomHex(4) + ".e2e.test"
	mapHost(t, host)
	ca := newCA(t)
	g := newGitStory(t, "e2e-forward", gitOptions{cert: ca.leaf(t, host), host: host}, ca.pem)
	tok := g.token(g.ns, g.sa)
	v := g.publish(g.sa, map[string]string{"connectors": "git"}, tok)
	if env := v.file(t, ".env"); strings.Contains(env, host) {
		t.Errorf(".env lists %s in no_proxy: git would bypass the proxy", host)
	}

	dest := filepath.Join(t.TempDir(), "repo")
	env := append(gitserver.Env(t.TempDir()), "CONNECTORS="+v.target, "REPO="+g.repo, "DEST="+dest)
	// .env holds plain assignments: `set -a` exports them to git.
	script := `set -a; . "$CONNECTORS/.env"; set +a
export GIT_SSL_CAINFO="$CONNECTORS/ca.crt"
git clone "$REPO" "$DEST" && git -C "$DEST" log -1 --oneline`
	out, err := g.shell(t.TempDir(), env, script)
	g.checkClone(err, dest, tok.Token)
	if !strings.Contains(out, "initial commit") {
		t.Errorf("`git log -1 --oneline` does not show the commit")
	}
	if g.auditLine("git", "mitm") == "" {
		t.Errorf("no audit line for an intercepted (mitm) request with the credential injected")
	}
}

// Story 4: kubelet republishes the volume with a new token while a clone
// with the old one is in flight. The clone finishes, context.token changes
// atomically, a new clone uses the new token, and the old token stops
// working at its expiry.
func TestTokenRotationDuringClone(t *testing.T) {
	t.Parallel()
	// The first clone's pack request waits at the Git server until the
	// volume has been republished.
	held := make(chan struct{})
	release := make(chan struct{})
	var holdOnce, releaseOnce sync.Once
	before := func(r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			return
		}
		first := false
		holdOnce.Do(func() { first = true })
		if !first {
			return
		}
		close(held)
		select {
		case <-release:
		case <-time.After(60 * time.Second):
		}
	}
	g := newGitStory(t, "e2e-rotate", gitOptions{before: before}, nil)
	// Registered after the Git server, so it runs before the server waits
	// for its handlers.
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })

	// The old token: real, but expiring in 25s (TokenRequest tokens live at
	// least ten minutes).
	oldExp := time.Now().Add(25 * time.Second)
	old := g.h.env.Resign(t, g.token(g.ns, g.sa).Token, oldExp)
	g.podToken("the old pod token", old)
	v := g.publish(g.sa, map[string]string{"connectors": "git", "configuration.names": "gitconfig"},
		kubelet.Token{Token: old, ExpirationTimestamp: oldExp})
	if v.file(t, "context.token") != old {
		t.Fatalf("context.token is not the old token")
	}

	gitEnv := func() []string {
		return append(gitserver.Env(t.TempDir()), "GIT_CONFIG_GLOBAL="+filepath.Join(v.target, ".gitconfig"))
	}
	destOld := filepath.Join(t.TempDir(), "old")
	cloned := make(chan error, 1)
	finished := make(chan struct{})
	envOld, dirOld := gitEnv(), t.TempDir()
	go func() {
		defer close(finished)
		_, err := g.run(dirOld, envOld, "git", "clone", g.repo, destOld)
		cloned <- err
	}()
	// However the test ends, the clone ends before it.
	t.Cleanup(func() {
		releaseOnce.Do(func() { close(release) })
		<-finished
	})
	select {
	case <-held:
	case err := <-cloned:
		t.Fatalf("the clone ended before reaching the Git server: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the clone did not reach the Git server within 60s")
	}

	// Read context.token without pause during the republish: every read
	// must be the whole old or the whole new token.
	tok := g.token(g.ns, g.sa)
	stop := make(chan struct{})
	type reads struct{ old, new, other int }
	seen := make(chan reads, 1)
	go func() {
		var n reads
		for {
			select {
			case <-stop:
				seen <- n
				return
			default:
			}
			b, err := os.ReadFile(filepath.Join(v.target, "context.token"))
			switch {
			case err == nil && string(b) == old:
				n.old++
			case err == nil && string(b) == tok.Token:
				n.new++
			default:
				n.other++
			}
		}
	}()
	g.republish(v, tok)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	n := <-seen
	if n.other > 0 {
		t.Errorf("%d reads of context.token during the republish were neither the old nor the new token", n.other)
	}
	if v.file(t, "context.token") != tok.Token {
		t.Fatalf("context.token is not the new token after the republish")
	}
	t.Logf("context.token reads during the republish: %d old, %d new", n.old, n.new)
	gitconfig := v.file(t, ".gitconfig")
	if !strings.Contains(gitconfig, base64.StdEncoding.EncodeToString([]byte(":"+tok.Token))) ||
		strings.Contains(gitconfig, base64.StdEncoding.EncodeToString([]byte(":"+old))) {
		t.Errorf(".gitconfig does not carry the new token alone after the republish")
	}

	// The clone that started with the old token finishes.
	releaseOnce.Do(func() { close(release) })
	g.checkClone(<-cloned, destOld, old, tok.Token)

	// A new clone uses the new content.
	destNew := filepath.Join(t.TempDir(), "new")
	_, err := g.run(t.TempDir(), gitEnv(), "git", "clone", g.repo, destNew)
	g.checkClone(err, destNew, old, tok.Token)

	// The old token works until it expires, then the proxy refuses it.
	refs := g.h.publicURL + "/namespaces/" + g.ns + "/connectors/git/private-repo.git/info/refs?service=git-upload-pack"
	if time.Now().Before(oldExp.Add(-2 * time.Second)) {
		if code, _ := g.get(refs, basicToken(old)); code != http.StatusOK {
			t.Errorf("the old token before its expiry: %d, want 200", code)
		}
	}
	time.Sleep(time.Until(oldExp) + time.Second)
	if code, _ := g.get(refs, basicToken(old)); code != http.StatusUnauthorized {
		t.Errorf("the old token after its expiry: %d, want 401", code)
	}
	if code, _ := g.get(refs, basicToken(tok.Token)); code != http.StatusOK {
		t.Errorf("the new token after the old one expired: %d, want 200", code)
	}
}

// basicToken is how .gitconfig presents a token: Basic with an empty user.
func basicToken(token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+token))
}
