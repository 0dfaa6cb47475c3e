package proxy

import (
	"context"
	"net/http"
	"net/http/cgi" //nolint:gosec // G504: serves git http-backend to the test; Go >= 1.6.3 drops the Proxy header (httpoxy)
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// foreignHost is a server on another loopback address that records every
// request; it serves git (without auth) so a client that followed a
// redirect there carries on with the next request.
type foreignHost struct {
	url  string
	git  http.Handler
	mu   sync.Mutex
	seen []http.Header
}

func (f *foreignHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	h := r.Header.Clone()
	h.Set("X-Target", r.URL.String())
	f.seen = append(f.seen, h)
	f.mu.Unlock()
	if strings.Contains(r.URL.Path, ".git/") {
		f.git.ServeHTTP(w, r)
		return
	}
	w.WriteHeader(http.StatusNotFound)
}

func (f *foreignHost) take() []http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.seen
	f.seen = nil
	return out
}

// startForeignHost listens on 127.0.0.2, another host than the proxy and
// the Connectors' upstreams on 127.0.0.1.
func startForeignHost(t *testing.T, gitRoot, backend string) *foreignHost {
	t.Helper()
	ln := testenv.ListenSecondLoopback(t)
	f := &foreignHost{url: "http://" + ln.Addr().String(), git: &cgi.Handler{Path: backend, Dir: gitRoot, Env: []string{
		"GIT_PROJECT_ROOT=" + gitRoot, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + gitRoot, "GIT_CONFIG_NOSYSTEM=1",
	}}}
	srv := httptest.NewUnstartedServer(f)
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

// TestRealClientsDoNotCarryTheTokenAcrossRedirects pins that no file the
// plugin writes lets git, curl, crane or skopeo send the pod's token to a
// host an upstream redirects them to. The Connectors' upstreams answer
// with a 302 to another loopback address; the proxy passes it on (it is
// none of the Connectors' addresses) and each client, configured only by
// the rendered volume, follows it or stops.
func TestRealClientsDoNotCarryTheTokenAcrossRedirects(t *testing.T) {
	curl := needBinary(t, "curl")
	skopeo := needBinary(t, "skopeo")
	crane := testdataCrane(t)
	g := newGitServer(t)
	foreign := startForeignHost(t, g.root, g.backend)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
			_, _ = w.Write([]byte("{}"))
			return
		}
		http.Redirect(w, r, foreign.url+r.URL.RequestURI(), http.StatusFound) //nolint:gosec // the redirect to another host is what the test is about
	}))
	t.Cleanup(upstream.Close)
	addr := "http://up.example.test:" + port(t, upstream)
	o := newFakeObjects()
	gitSecret(o)
	o.connector("team-a", "git", addr, "git")
	o.connector("team-a", "reg", addr, "git")
	e := startEnv(t, o, nil)

	var cs []configgen.Connector
	for _, name := range []string{"git", "reg"} {
		c, err := o.Connector(context.Background(), "team-a", name)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, configgen.Connector{Object: c, ProxyAddress: c.ProxyAddress(e.url)})
	}
	files, err := configgen.Render(configgen.Input{Connectors: cs, Token: tokA, ProxyURL: publicurl.MustParse(e.url), CACertPEM: e.ca.CertPEM,
		Configurations: []string{configgen.GeneratorGitconfig, configgen.GeneratorRegistryConfig}})
	if err != nil {
		t.Fatal(err)
	}
	vol := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(vol, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	home := t.TempDir()
	forward := strings.TrimSpace(string(files[configgen.FileHTTPProxy]))
	registryRef := strings.TrimPrefix(e.url, "http://") + "/namespaces/team-a/connectors/reg/app:v1"
	clients := []struct {
		name string
		env  []string
		cmd  []string
		// followed: the client goes on to the foreign host (without the token).
		followed bool
	}{
		{"git clone through the reverse proxy", childEnv(home, "GIT_CONFIG_GLOBAL="+filepath.Join(vol, configgen.FileGitconfig)),
			[]string{"git", "clone", "-q", addr + "/repo.git", filepath.Join(t.TempDir(), "work")}, false},
		{"curl -L with the token as a Bearer header", childEnv(home),
			[]string{curl, "-sS", "-L", "--noproxy", "*", "-H", "Authorization: Bearer " + string(files[configgen.FileToken]),
				strings.TrimRight(string(files[configgen.FileProxyAddress]), "/") + "/moved"}, true},
		{"curl -L with the token as the Basic password", childEnv(home),
			[]string{curl, "-sS", "-L", "--noproxy", "*", "-u", ":" + string(files[configgen.FileToken]),
				strings.TrimRight(string(files[configgen.FileProxyAddress]), "/") + "/moved"}, true},
		{"curl -L through the forward proxy of .env", childEnv(home, "http_proxy="+forward),
			[]string{curl, "-sS", "-L", "--noproxy", "", addr + "/moved"}, false},
		// crane refuses, on its own, to follow a redirect to a private
		// address such as the foreign host's.
		{"crane through the reverse proxy with config.json", childEnv(home, "DOCKER_CONFIG="+vol),
			[]string{crane, "manifest", "--insecure", registryRef}, false},
		{"skopeo through the reverse proxy with config.json", childEnv(home),
			[]string{skopeo, "inspect", "--raw", "--tls-verify=false", "--authfile", filepath.Join(vol, configgen.FileRegistryConfig),
				"docker://" + registryRef}, true},
	}
	forms := []string{tokA, b64(":" + tokA), b64("team-a/git:" + tokA), b64("team-a/reg:" + tokA)}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			out, _ := run(t, home, c.env, c.cmd[0], c.cmd[1:]...)
			seen := foreign.take()
			if c.followed && len(seen) == 0 {
				t.Errorf("the client did not follow the redirect to the foreign host:\n%s", out)
			}
			for _, h := range seen {
				for k, vs := range h {
					for _, v := range vs {
						for _, f := range forms {
							if strings.Contains(v, f) {
								t.Errorf("the foreign host got the pod's token in %s (request %s)", k, h.Get("X-Target"))
							}
						}
					}
				}
			}
		})
	}
	if !strings.Contains(e.logs.String(), `"status":302`) {
		t.Errorf("the proxy passed no redirect on")
	}
	assertNoSecrets(t, "logs", e.logs.String())
}
