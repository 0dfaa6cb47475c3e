package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/connectors-node/connectors-node/grammar/connref"
	"github.com/connectors-node/connectors-node/grammar/match"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

func FuzzProxyAuthorization(f *testing.F) {
	for _, s := range []string{
		basicValue("team-a/api", tokA), basicValue("team-a%2Fapi,team-b%2Fapi", tokA), basicValue("team-a/api", ""),
		basicValue("api", tokA), "Basic !!", "Bearer x", "basic " + b64("a/b:c:d"), basicValue("%zz", tokA),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := &http.Request{Header: http.Header{"Proxy-Authorization": {v}}}
		keys, token, err := forwardCredentials(r)
		if err != nil {
			if !errors.Is(err, errNoCredentials) && !errors.Is(err, errBadCredentials) {
				t.Fatalf("error %v is neither sentinel", err)
			}
			if user, pass, ok := parseBasic(v); ok && len(pass) >= 4 && !strings.Contains(user, pass) &&
				strings.Contains(err.Error(), pass) {
				t.Fatalf("error %q shows the token", err)
			}
			return
		}
		if token == "" || len(keys) == 0 || len(keys) > connref.Max {
			t.Fatalf("accepted %d keys, token %q", len(keys), token)
		}
		for _, k := range keys {
			if !connref.Valid(k) {
				t.Fatalf("invalid key %v", k)
			}
		}
	})
}

func FuzzAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer " + tokA, "bearer  x ", basicValue("", tokA), "Basic " + b64("u:"), "Token x", "Bearer"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := &http.Request{Header: http.Header{"Authorization": {v}}}
		token, err := reverseToken(r)
		if err != nil {
			if !errors.Is(err, errNoCredentials) && !errors.Is(err, errBadCredentials) {
				t.Fatalf("error %v is neither sentinel", err)
			}
			return
		}
		if token == "" {
			t.Fatal("empty token accepted")
		}
		if !carriesToken([]string{v}, token) {
			t.Fatalf("carriesToken misses the token %q read from %q", token, v)
		}
	})
}

// FuzzRouting checks host- and path-form routing: every route names a
// valid Connector and a rest below it.
func FuzzRouting(f *testing.F) {
	for _, s := range [][2]string{
		{"c-git.team-a.svc", "/x"},
		{"c-git.team-a.svc.cluster.local:8080", "/"},
		{"proxy", "/namespaces/team-a/connectors/git/repo.git/info/refs"},
		{"proxy", "/namespaces/team-a/connectors/git"},
		{"proxy", "/v2/namespaces/team-a/connectors/reg/app/manifests/latest"},
		{"proxy", "/namespaces/A/connectors/git/x"},
		{"C-a.b.c.SVC.", "/%2e%2e/x"},
	} {
		f.Add(s[0], s[1])
	}
	p := &Proxy{opts: Options{ClusterDomain: "cluster.local"}}
	f.Fuzz(func(t *testing.T, host, path string) {
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return
		}
		r := &http.Request{Host: host, URL: u}
		if k, ok := hostRoute(host, "cluster.local"); ok && !connref.Valid(k) {
			t.Fatalf("host route to invalid %v", k)
		}
		if rt, ok := p.reverseRoute(r); ok {
			if !connref.Valid(rt.key) {
				t.Fatalf("route to invalid %v", rt.key)
			}
			if rt.rest != "" && !strings.HasPrefix(rt.rest, "/") {
				t.Fatalf("rest %q", rt.rest)
			}
		}
		if rt, prefix, ok := p.registryRoute(r); ok {
			if !connref.Valid(rt.key) || !strings.HasPrefix(rt.rest, registryPathPrefix) ||
				"/"+prefix != v1alpha1.PathPrefix(rt.key.Namespace, rt.key.Name) {
				t.Fatalf("registry route %+v prefix %q", rt, prefix)
			}
		}
	})
}

// FuzzJoinTarget checks address joining: a safe rest joined to a
// Connector's address gives a URL that still matches that address, so the
// credential goes only where the address says.
func FuzzJoinTarget(f *testing.F) {
	for _, s := range [][3]string{
		{"https://git.example.com/group", "/repo.git/info/refs", "service=git-upload-pack"},
		{"https://git.example.com/", "", ""},
		{"http://h:8080/a/", "/b%20c", "x=1"},
		{"https://h/a", "/%2e%2e/b", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, address, rest, rawQuery string) {
		a, err := match.ParseAddress(address)
		if err != nil {
			return
		}
		if rest != "" && !strings.HasPrefix(rest, "/") {
			return
		}
		if ru, err := url.Parse(rest); err != nil || ru.EscapedPath() != rest || ru.RawQuery != "" || ru.Fragment != "" || ru.Host != "" {
			return
		}
		if _, unsafe := match.Segments(rest); unsafe {
			return
		}
		var m memos
		u, err := m.address(address).join(rest, rawQuery)
		if err != nil {
			return
		}
		tg, err := match.ParseURL(u)
		if err != nil {
			t.Fatalf("joined %q + %q = %q does not parse: %v", address, rest, u, err)
		}
		if _, ok := a.Matches(tg); !ok {
			t.Fatalf("joined %q + %q = %q no longer matches the address", address, rest, u)
		}
	})
}
