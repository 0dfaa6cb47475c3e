package e2e

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/test/servers/gitapi"
	"github.com/connectors-node/connectors-node/test/servers/gitserver"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
)

// tokenSecret creates a Secret of secretType holding token in its token
// key, as the GitLab and GitHub classes take it. gitUser, when not empty,
// is the user Git sends the token with (so the Basic form is forbidden too).
func (s *story) tokenSecret(name, secretType, token, gitUser string) {
	s.t.Helper()
	s.credential("the token of Secret "+name, gitUser, token)
	s.create(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Type:       corev1.SecretType(secretType),
		StringData: map[string]string{"token": token},
	})
}

// cloneWithClass clones from a Git server that wants user:token through
// a Connector <class>-git of the class with the Secret, as the pod of tok
// (whose ServiceAccount is ci), with the built-in gitconfig, and checks the
// clone and the user the server saw.
func (s *story) cloneWithClass(class, secret, user, token string, tok kubelet.Token) {
	t := s.t
	t.Helper()
	root := filepath.Join(t.TempDir(), "repos")
	if err := os.MkdirAll(root, 0o750); err != nil {
		t.Fatal(err)
	}
	git, err := gitserver.Start(root, user, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = git.Close() })
	repo, err := git.CreateRepo("app", map[string]string{"README.md": readme})
	if err != nil {
		t.Fatal(err)
	}
	name := class + "-git"
	s.connector(connectorSpec{name: name, class: class, address: strings.TrimSuffix(repo, "/app.git"),
		authName: "patAuth", secret: secret})
	s.allow(s.ns, "ci", name)
	v := s.publish("ci", map[string]string{"connectors": name, "configuration.names": "gitconfig"}, tok)
	dest := filepath.Join(t.TempDir(), "app")
	if _, err := s.run(t.TempDir(), append(gitserver.Env(t.TempDir()), "GIT_CONFIG_GLOBAL="+v.target+"/.gitconfig"),
		"git", "clone", repo, dest); err != nil {
		t.Fatalf("git clone through the %s class failed: %v", class, err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "README.md")); err != nil || string(b) != readme { //nolint:gosec // the clone just made
		t.Errorf("the clone's README.md: %q, %v", b, err)
	}
	if users := git.Users(); len(users) == 0 || users[0] != user {
		t.Errorf("the Git server saw users %q, want %s: the class's generator did not send Basic", users, user)
	}
}

// checkAPI checks what a stand-in saw: at least one request, each with the
// Connector's token in the style's header, none with the pod's token.
func checkAPI(t *testing.T, api *gitapi.Server, tok kubelet.Token) {
	t.Helper()
	seen := api.Requests()
	if len(seen) == 0 {
		t.Fatal("the API saw no request")
	}
	for i, r := range seen {
		if !r.Authorized {
			t.Errorf("request %d (%s %s) reached the API without the Connector's token", i+1, r.Method, r.Path)
		}
		for h, v := range r.Credentials {
			if strings.Contains(v, tok.Token) {
				t.Errorf("request %d carried the pod's token to the API in %s", i+1, h)
			}
		}
	}
}

// The gitlab class of deploy/classes: curl and glab's mounted config.yml
// call the API through the reverse proxy with the pod's token in
// PRIVATE-TOKEN, which the class's authExtractor takes; its generator sends
// GitLab the Connector's token in PRIVATE-TOKEN, and git (the built-in
// gitconfig) clones with it as Basic oauth2:<token>.
func TestCatalogGitLabAPIAndClone(t *testing.T) {
	t.Parallel()
	needTool(t, "curl")
	needTool(t, "git")
	s := newStory(t, "e2e-gitlab")
	pat := "glpat-" + randomHex(10)
	api := gitapi.Start(gitapi.Options{Style: gitapi.GitLab, Token: pat})
	t.Cleanup(api.Close)
	s.tokenSecret("gitlab-token", "connectors.cpaas.io/gitlab-pat-auth", pat, "oauth2")
	s.caSecret("gitlab-ca", api.CAPEM())
	s.connector(connectorSpec{name: "gitlab", class: "gitlab", address: api.URL(),
		authName: "patAuth", secret: "gitlab-token", caSecret: "gitlab-ca"})
	s.serviceAccount(s.ns, "ci")
	s.allow(s.ns, "ci", "gitlab")
	tok := s.token(s.ns, "ci")
	v := s.publish("ci", map[string]string{"connectors": "gitlab", "configuration.names": "gitlabconfig"}, tok)

	// curl, as docs/catalog.md shows it.
	env := append(gitserver.Env(t.TempDir()), "CONNECTORS="+v.target)
	out, err := s.shell(t.TempDir(), env,
		`curl -fsS -H "PRIVATE-TOKEN: $(cat "$CONNECTORS/context.token")" "$(cat "$CONNECTORS/connector.status.proxyAddress")/api/v4/user"`)
	if err != nil {
		t.Fatalf("curl through the reverse proxy failed: %v", err)
	}
	var user map[string]any
	if err := json.Unmarshal([]byte(out), &user); err != nil || user["username"] != gitapi.User {
		t.Errorf("GET /api/v4/user answered %q, want user %s", out, gitapi.User)
	}

	// glab's config.yml: the request glab makes from it (glab is not in
	// Debian), <api_protocol>://<api_host>/api/v4/... with PRIVATE-TOKEN.
	var cfg struct {
		Host  string `json:"host"`
		Hosts map[string]struct {
			Token       string `json:"token"`
			APIHost     string `json:"api_host"`
			APIProtocol string `json:"api_protocol"`
		} `json:"hosts"`
	}
	if err := yaml.Unmarshal([]byte(v.file(t, "config.yml")), &cfg); err != nil {
		t.Fatalf("config.yml is not YAML: %v", err)
	}
	proxy, _ := url.Parse(s.h.publicURL)
	host, ok := cfg.Hosts[cfg.Host]
	if cfg.Host != proxy.Host || !ok {
		t.Fatalf("config.yml's host is %q (hosts %v), want the proxy's %q", cfg.Host, cfg.Hosts, proxy.Host)
	}
	if host.Token != tok.Token {
		t.Errorf("config.yml's token is not the pod's token")
	}
	out, err = s.shell(t.TempDir(), append(env, "TOKEN="+host.Token, "API="+host.APIProtocol+"://"+host.APIHost),
		`curl -fsS -H "PRIVATE-TOKEN: $TOKEN" "$API/api/v4/projects"`)
	if err != nil {
		t.Fatalf("the API call glab makes from config.yml failed: %v", err)
	}
	if !strings.Contains(out, gitapi.User+"/app") {
		t.Errorf("GET /api/v4/projects answered %q", out)
	}

	// git, with the built-in gitconfig, against a Git server that wants
	// Basic oauth2:<token>, as GitLab does.
	s.cloneWithClass("gitlab", "gitlab-token", "oauth2", pat, tok)

	checkAPI(t, api, tok)
	if s.auditLine("gitlab", "reverse") == "" || s.auditLine("gitlab-git", "reverse") == "" {
		t.Errorf("no audit line for a reverse-proxied request with the credential injected")
	}
}

// The github class of deploy/classes: gh, with the mounted githubconfig
// (a placeholder token) and .env, and curl go through the forward proxy
// over HTTPS, intercepted under the proxy CA (trusted through the mounted
// ca-bundle.crt); the class's generator sends GitHub the Connector's token
// as "Authorization: token". git clones through the reverse proxy with it
// as Basic x-access-token:<token>.
func TestCatalogGitHubAPIAndClone(t *testing.T) {
	t.Parallel()
	needTool(t, "curl")
	needTool(t, "gh")
	needTool(t, "git")
	suite(t)
	s := newStory(t, "e2e-github")
	// Clients never proxy loopback addresses: the API needs a host name.
	host := "github-" + randomHex(4) + ".e2e.test"
	mapHost(t, host)
	ca := newCA(t)
	pat := "ghp_" + randomHex(18)
	api := gitapi.Start(gitapi.Options{Style: gitapi.GitHub, Token: pat, Cert: ca.leaf(t, host), Host: host})
	t.Cleanup(api.Close)
	s.tokenSecret("github-token", string(corev1.SecretTypeOpaque), pat, "x-access-token")
	s.caSecret("github-ca", ca.pem)
	s.connector(connectorSpec{name: "github", class: "github", address: api.URL(),
		authName: "patAuth", secret: "github-token", caSecret: "github-ca"})
	s.serviceAccount(s.ns, "ci")
	s.allow(s.ns, "ci", "github")
	tok := s.token(s.ns, "ci")
	v := s.publish("ci", map[string]string{"connectors": "github", "configuration.names": "githubconfig"}, tok)
	apiHost := strings.TrimPrefix(api.URL(), "https://")
	if hosts := v.file(t, "hosts.yml"); !strings.Contains(hosts, apiHost+":") || strings.Contains(hosts, tok.Token) {
		t.Errorf("hosts.yml names no entry for %s, or holds the pod's token:\n%s", apiHost, hosts)
	}

	env := append(gitserver.Env(t.TempDir()), "CONNECTORS="+v.target, "API="+api.URL(), "GH_HOST="+apiHost)
	// gh, as docs/catalog.md shows it. A host other than github.com is GitHub
	// Enterprise to gh: it calls https://<host>/api/v3/.
	out, err := s.shell(t.TempDir(), env, `set -a; . "$CONNECTORS/.env"; set +a
export SSL_CERT_FILE="$CONNECTORS/ca-bundle.crt" GH_CONFIG_DIR="$CONNECTORS" GH_NO_UPDATE_NOTIFIER=1 GH_PROMPT_DISABLED=1
gh api user --jq .login`)
	if err != nil {
		t.Fatalf("gh api user through the forward proxy failed: %v", err)
	}
	if strings.TrimSpace(out) != gitapi.User {
		t.Errorf("gh api user printed %q, want %s", out, gitapi.User)
	}
	// curl, the same way.
	out, err = s.shell(t.TempDir(), env, `set -a; . "$CONNECTORS/.env"; set +a
curl -fsS --cacert "$CONNECTORS/ca-bundle.crt" "$API/user/repos"`)
	if err != nil {
		t.Fatalf("curl through the forward proxy failed: %v", err)
	}
	if !strings.Contains(out, gitapi.User+"/app") {
		t.Errorf("GET /user/repos answered %q", out)
	}

	// git, with the built-in gitconfig, against a Git server that wants
	// Basic x-access-token:<token>, as GitHub does.
	s.cloneWithClass("github", "github-token", "x-access-token", pat, tok)

	checkAPI(t, api, tok)
	for _, r := range api.Requests() {
		if strings.Contains(r.Credentials["Authorization"], "injected-by-the-connectors-proxy") {
			t.Errorf("the placeholder of hosts.yml reached the API on %s", r.Path)
		}
	}
	if s.auditLine("github", "mitm") == "" || s.auditLine("github-git", "reverse") == "" {
		t.Errorf("no audit line for a proxied request with the credential injected")
	}
}
