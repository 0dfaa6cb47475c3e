package e2e

import (
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Story 5: without RBAC on the Connector a pod can neither mount it nor
// use the proxy, whatever token it holds; the Git server hears of none of
// these attempts.
func TestRefusals(t *testing.T) {
	t.Parallel()
	g := newGitStory(t, "e2e-refuse", gitOptions{}, nil)
	key := g.ns + "/git"

	// A ServiceAccount with no RBAC at all, one in another namespace that
	// names the Connector across namespaces, and the allowed one.
	g.serviceAccount(g.ns, "intruder")
	other := g.h.env.Namespace(t, "e2e-elsewhere")
	g.serviceAccount(other, "git-clone")

	t.Log("NodePublishVolume for a pod whose ServiceAccount may not get the Connector")
	for _, c := range []struct {
		podNS, sa, connectors string
	}{
		{g.ns, "intruder", "git"},
		{other, "git-clone", key},
	} {
		v := g.newVolume(c.sa, map[string]string{"connectors": c.connectors, "configuration.names": "gitconfig"})
		v.pod.Namespace = c.podNS
		err := g.publishOnce(v, g.token(c.podNS, c.sa))
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), `"`+key+`"`) {
			t.Errorf("%s/%s publishing %s: %v, want PermissionDenied naming %q", c.podNS, c.sa, c.connectors, err, key)
		}
		if mps, _ := mountPoints(v.target); len(mps) > 0 {
			t.Errorf("a refused publish left %s mounted", v.target)
		}
		if entries, _ := os.ReadDir(v.target); len(entries) > 0 {
			t.Errorf("a refused publish left %d files in the volume", len(entries))
		}
	}

	t.Log("the proxy, with tokens from elsewhere")
	intruder := g.token(g.ns, "intruder")
	elsewhere := g.token(other, "git-clone")
	allowed := g.token(g.ns, g.sa)
	// Real tokens of the allowed ServiceAccount, but not for the proxy.
	apiAudience, err := g.h.mint(g.ns, g.sa, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g.podToken("a token for the API server's audience", apiAudience)
	expired := g.h.env.ExpiredToken(t, g.ns, g.sa, []string{audience})
	g.podToken("an expired token", expired)
	unbound, err := g.h.mint(g.ns, g.sa, []string{audience}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g.podToken("a token bound to no pod", unbound)

	refs := "/private-repo.git/info/refs?service=git-upload-pack"
	reverse := g.h.publicURL + "/namespaces/" + g.ns + "/connectors/git" + refs
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"a ServiceAccount without RBAC", intruder.Token, http.StatusForbidden},
		{"a ServiceAccount of another namespace", elsewhere.Token, http.StatusForbidden},
		{"a token for another audience", apiAudience, http.StatusUnauthorized},
		{"an expired token", expired, http.StatusUnauthorized},
		{"a token bound to no pod", unbound, http.StatusUnauthorized},
		{"no token", "", http.StatusUnauthorized},
	} {
		auth := ""
		if c.token != "" {
			auth = basicToken(c.token)
		}
		if code, _ := g.get(reverse, auth); code != c.want {
			t.Errorf("reverse proxy, %s: %d, want %d", c.name, code, c.want)
		}
	}
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"a ServiceAccount without RBAC", intruder.Token, http.StatusForbidden},
		{"a ServiceAccount of another namespace", elsewhere.Token, http.StatusForbidden},
		{"an expired token", expired, http.StatusProxyAuthRequired},
		{"a token bound to no pod", unbound, http.StatusProxyAuthRequired},
	} {
		code, body := g.getVia(g.git.URL+refs, key, c.token)
		if code != c.want {
			t.Errorf("forward proxy, %s: %d, want %d", c.name, code, c.want)
		}
		if c.want == http.StatusForbidden && !strings.Contains(body, key) {
			t.Errorf("forward proxy, %s: the 403 does not name %s", c.name, key)
		}
	}
	if users := g.git.Users(); len(users) > 0 {
		t.Fatalf("a refused request reached the Git server as %q", users)
	}

	// The allowed pod's own token, replayed from another address than the
	// pod's, is refused both ways, naming the binding.
	replay := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	fromElsewhere := &http.Client{Transport: &http.Transport{DialContext: replay.DialContext}}
	if code, body := g.do(fromElsewhere, reverse, basicToken(allowed.Token)); code != http.StatusUnauthorized || !strings.Contains(body, "source-address") {
		t.Errorf("reverse proxy, the pod's token replayed from 127.0.0.2: %d %q, want 401 naming the source-address binding", code, body)
	}
	proxyURL := &neturl.URL{Scheme: "http", Host: g.h.proxyAddr, User: neturl.UserPassword(key, allowed.Token)}
	viaElsewhere := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), DialContext: replay.DialContext}}
	if code, _ := g.do(viaElsewhere, g.git.URL+refs, ""); code != http.StatusProxyAuthRequired {
		t.Errorf("forward proxy, the pod's token replayed from 127.0.0.2: %d, want 407", code)
	}
	awaitAuditWindow()
	if log, err := os.ReadFile(g.h.logPath); err != nil || !strings.Contains(string(log), `"binding_refused":"source-address"`) {
		t.Errorf("no audit line records the refused source-address binding")
	}

	// The allowed ServiceAccount gets through both ways, so the refusals
	// above were about the caller.
	if code, _ := g.get(reverse, basicToken(allowed.Token)); code != http.StatusOK {
		t.Errorf("reverse proxy, the allowed ServiceAccount: %d, want 200", code)
	}
	if code, _ := g.getVia(g.git.URL+refs, key, allowed.Token); code != http.StatusOK {
		t.Errorf("forward proxy, the allowed ServiceAccount: %d, want 200", code)
	}
	if users := g.git.Users(); len(users) != 2 {
		t.Errorf("the Git server saw %d authenticated requests, want 2", len(users))
	}
	for _, tok := range []string{intruder.Token, elsewhere.Token, allowed.Token, apiAudience, expired} {
		if g.git.sawHeader(tok) {
			t.Errorf("a pod token reached the Git server")
		}
	}
}
