package proxy

import (
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// Credentials of the Rego hook tests; the scans look for them.
const (
	regoUpstreamKey = "up-api-key-31c9e0d2"
	regoUpstreamPAT = "up-gitlab-pat-8b7a6c"
)

// Policies in the shapes the upstream docs give.
const (
	privateTokenExtractor = `package proxy
default auth = {"token": ""}
auth = {"token": input.request.headers["Private-Token"][0]} if {
  input.request.headers != null
  input.request.headers["Private-Token"] != null
  count(input.request.headers["Private-Token"]) > 0
}`
	bearerGenerator = `package proxy
auth = {"position": "header", "auth": {"Authorization": concat(" ", ["Bearer", input.data.token])}}`
	apiKeyGenerator = `package proxy
auth = {"position": "header", "auth": {"X-Api-Key": input.data.apikey}}`
	queryGenerator = `package proxy
auth = {"position": "query", "auth": {"api_key": input.data.apikey}}`
	bodyGenerator = `package proxy
auth = {"position": "body", "contentType": "application/json", "auth": {"client_secret": input.data.apikey}}`
)

func regoClass(name, generator, extractor string) *v1alpha1.ConnectorClass {
	cc := &v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: name, UID: "uid-" + "c", Generation: 1}}
	cc.Spec.Auth.Types = []v1alpha1.AuthType{{Name: "token", SecretType: "Opaque", Generator: &v1alpha1.Rego{Rego: generator}}}
	if extractor != "" {
		cc.Spec.Proxy = &v1alpha1.ProxySpec{AuthExtractor: &v1alpha1.Rego{Rego: extractor}}
	}
	return cc
}

// strictUpstream answers 200 only when the request carries the credential
// exactly as its path says the tool wants it, and records what it saw.
func strictUpstream(log *recorderLog) http.Handler {
	rec := log.handler("R")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := false
		var body []byte
		switch {
		case strings.HasSuffix(r.URL.Path, "/bearer"):
			ok = r.Header.Get("Authorization") == "Bearer "+regoUpstreamPAT
		case strings.HasSuffix(r.URL.Path, "/apikey"):
			ok = r.Header.Get("X-Api-Key") == regoUpstreamKey
			// An upstream that echoes the key back.
			w.Header().Set("X-Echo", "key="+r.Header.Get("X-Api-Key"))
		case strings.HasSuffix(r.URL.Path, "/query"):
			ok = r.URL.Query().Get("api_key") == regoUpstreamKey && r.URL.Query().Get("page") == "2"
		case strings.HasSuffix(r.URL.Path, "/json"):
			var v map[string]any
			body, _ = io.ReadAll(r.Body)
			ok = json.Unmarshal(body, &v) == nil && v["client_secret"] == regoUpstreamKey && v["name"] == "x" &&
				r.Header.Get("Content-Type") == "application/json"
		}
		if !ok {
			log.mu.Lock()
			log.reqs = append(log.reqs, seen{Host: r.Host, Path: r.RequestURI, Header: r.Header.Clone()})
			log.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		rec.ServeHTTP(w, r)
	})
}

type regoFixture struct {
	*env
	log *recorderLog
	pa  string
}

func newRegoFixture(t *testing.T) *regoFixture {
	t.Helper()
	f := &regoFixture{log: &recorderLog{}}
	upCA := newTestCA(t)
	cert := upCA.serverCert(t, "gitlab.example.test", "keys.example.test", "broken.example.test", "noext.example.test")
	up := startTLS(t, strictUpstream(f.log), &cert)
	f.pa = port(t, up)
	o := newFakeObjects()
	o.secret("team-a", "pat", "Opaque", map[string]string{"token": regoUpstreamPAT})
	o.secret("team-a", "key", "Opaque", map[string]string{"apikey": regoUpstreamKey})
	o.class(regoClass("gitlab", bearerGenerator, privateTokenExtractor))
	o.class(regoClass("apikey", apiKeyGenerator, ""))
	o.class(regoClass("query", queryGenerator, ""))
	o.class(regoClass("body", bodyGenerator, ""))
	o.class(regoClass("broken-gen", "package proxy\nauth = {", ""))
	o.class(regoClass("broken-ext", apiKeyGenerator, "package proxy\nauth := {\"token\": http.send({})}"))
	o.class(regoClass("bad-shape", "package proxy\nauth := {\"position\": \"header\", \"auth\": {\"X\": 1}}", ""))
	add := func(name, class, host, secret string) {
		c := o.connector("team-a", name, "https://"+host+":"+f.pa, secret)
		c.Spec.ConnectorClassName = class
		c.Spec.Auth.Name = "token"
	}
	add("gitlab", "gitlab", "gitlab.example.test", "pat")
	add("apikey", "apikey", "keys.example.test", "key")
	add("query", "query", "keys.example.test", "key")
	add("body", "body", "keys.example.test", "key")
	add("broken-gen", "broken-gen", "broken.example.test", "key")
	add("broken-ext", "broken-ext", "broken.example.test", "key")
	add("bad-shape", "bad-shape", "broken.example.test", "key")
	f.env = startEnv(t, o, []*x509.Certificate{upCA.cert})
	return f
}

// Real curl through the reverse proxy and through the forward proxy's
// intercepted tunnel, against upstreams that check the credential exactly.
func TestRegoHooksWithCurl(t *testing.T) {
	curl := needBinary(t, "curl")
	f := newRegoFixture(t)
	home := t.TempDir()
	env := childEnv(home)
	rev := func(name string) string { return f.url + "/namespaces/team-a/connectors/" + name }
	fwd := func(user string) []string {
		return []string{"--proxy", f.url, "--proxy-user", "team-a/" + user + ":" + tokA, "--cacert", f.caFile}
	}
	cases := []struct {
		name string
		args []string
		want string
		body string // a part of the response body
	}{
		{"reverse: PRIVATE-TOKEN extracted, upstream wants Bearer", []string{"-H", "PRIVATE-TOKEN: " + tokA, rev("gitlab") + "/api/v4/bearer"}, "200", ""},
		{"reverse: PRIVATE-TOKEN with a wrong token", []string{"-H", "PRIVATE-TOKEN: nope", rev("gitlab") + "/api/v4/bearer"}, "401", ""},
		{"reverse: no PRIVATE-TOKEN, Authorization still works", []string{"-H", "Authorization: Bearer " + tokA, rev("gitlab") + "/api/v4/bearer"}, "200", ""},
		{"reverse: no token at all", []string{rev("gitlab") + "/api/v4/bearer"}, "401", ""},
		{"reverse: X-Api-Key", []string{"-u", ":" + tokA, rev("apikey") + "/apikey"}, "200", ""},
		{"reverse: ?api_key=", []string{"-u", ":" + tokA, rev("query") + "/query?page=2"}, "200", ""},
		{"reverse: JSON body", []string{"-u", ":" + tokA, "-H", "Content-Type: application/json", "--data", `{"name":"x"}`, rev("body") + "/json"}, "200", ""},
		{"reverse: broken generator", []string{"-u", ":" + tokA, rev("broken-gen") + "/x"}, "502", `connectorclass "broken-gen": spec.auth.types[token].generator.rego`},
		{"reverse: generator of the wrong shape", []string{"-u", ":" + tokA, rev("bad-shape") + "/x"}, "502", `connectorclass "bad-shape"`},
		{"reverse: broken extractor", []string{"-u", ":" + tokA, rev("broken-ext") + "/x"}, "401", `connectorclass "broken-ext": spec.proxy.authExtractor.rego`},
		{"forward MITM: upstream wants Bearer", append(fwd("gitlab"), "https://gitlab.example.test:"+f.pa+"/api/v4/bearer"), "200", ""},
		{"forward MITM: X-Api-Key", append(fwd("apikey"), "https://keys.example.test:"+f.pa+"/apikey"), "200", ""},
		{"forward MITM: ?api_key=", append(fwd("query"), "https://keys.example.test:"+f.pa+"/query?page=2"), "200", ""},
		{"forward MITM: JSON body", append(fwd("body"), "-H", "Content-Type: application/json", "--data", `{"name":"x"}`, "https://keys.example.test:"+f.pa+"/json"), "200", ""},
		{"forward MITM: the client token in a header and the query never goes upstream",
			append(fwd("apikey"), "-H", "X-Token: "+tokA, "https://keys.example.test:"+f.pa+"/apikey?t="+tokA), "200", ""},
	}
	all := &bodies{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir() + "/body"
			args := append([]string{"-sS", "-o", out, "-w", "%{http_code}", "-D", "-"}, c.args...)
			if c.args[0] != "--proxy" {
				args = append([]string{"--noproxy", "*"}, args...)
			} else {
				args = append([]string{"--noproxy", ""}, args...)
			}
			got, _ := run(t, home, env, curl, args...)
			all.add(got)
			if !strings.HasSuffix(strings.TrimSpace(got), c.want) {
				t.Errorf("curl answered %q, want %s", got, c.want)
			}
			if strings.Contains(got, "X-Echo") {
				t.Errorf("a response header echoing the injected key reached the client")
			}
			body := readFile(t, out)
			all.add(body)
			if !strings.Contains(body, c.body) {
				t.Errorf("body %q, want it to contain %q", body, c.body)
			}
			for _, r := range f.log.take() {
				if carries([]seen{r}, tokA) || leaksClientToken(r.Header) {
					t.Errorf("the client token reached the upstream: %s %v", r.Path, r.Header)
				}
			}
		})
	}
	for what, text := range map[string]string{"responses": all.String(), "logs": f.logs.String()} {
		assertNoSecrets(t, what, text)
		for _, s := range []string{regoUpstreamKey, regoUpstreamPAT} {
			if strings.Contains(text, s) {
				t.Errorf("%s hold an injected credential", what)
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // a file of the test's own temp dir
	if err != nil {
		return ""
	}
	return string(b)
}
