package proxy

import (
	"bytes"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// regEnv is a proxy in front of a fake registry with its token service.
type regEnv struct {
	*env
	reg   *fakeRegistry
	port  string
	clock *testingclock.FakeClock
	all   *bodies
}

func newRegEnv(t *testing.T, basicOnly bool) *regEnv {
	t.Helper()
	f := newFakeRegistry(t)
	f.basicOnly = basicOnly
	o := newFakeObjects()
	p := port(t, f.srv)
	addRegistryConnectors(o, f, p)
	clock := testingclock.NewFakeClock(time.Now())
	e := startEnv(t, o, []*x509.Certificate{f.root}, func(o *Options) { o.Now = clock.Now })
	re := &regEnv{env: e, reg: f, port: p, clock: clock, all: &bodies{}}
	t.Cleanup(func() { assertNoRegistrySecrets(t, re) })
	return re
}

// assertNoRegistrySecrets fails when a registry credential, a registry
// token or a client token shows up in the proxy's logs or in a response
// body a client read.
func assertNoRegistrySecrets(t *testing.T, e *regEnv) {
	t.Helper()
	logs, bodies := e.logs.String(), e.all.String()
	for _, s := range []string{regPass, regTokPrefix, b64(regUser + ":" + regPass), tokA, tokB} {
		if strings.Contains(logs, s) {
			t.Errorf("secret %q found in the proxy logs", s)
		}
		if strings.Contains(bodies, s) {
			t.Errorf("secret %q found in a response body", s)
		}
	}
}

const regPath = "/v2/namespaces/team-a/connectors/reg/"

// do sends a reverse request with the token as a Basic password, as docker
// clients do with a config.json entry.
func (e *regEnv) do(t *testing.T, method, path, token string, body io.Reader) (int, http.Header, string) {
	t.Helper()
	req := newRequest(t, method, e.url+path, body)
	if token != "" {
		req.SetBasicAuth("team-a/reg", token)
	}
	return do(t, e.reverseClient(), req, e.all)
}

func TestRegistryPing(t *testing.T) {
	e := newRegEnv(t, false)
	cases := []struct {
		name   string
		method string
		host   string
		token  string
		want   int
	}{
		{"no token", http.MethodGet, "", "", http.StatusUnauthorized},
		{"bad token", http.MethodGet, "", "not-a-token", http.StatusUnauthorized},
		{"good token", http.MethodGet, "", tokA, http.StatusOK},
		{"head", http.MethodHead, "", tokA, http.StatusOK},
		{"host form with access", http.MethodGet, "c-reg.team-a.svc", tokA, http.StatusOK},
		{"host form without access", http.MethodGet, "c-reg.team-a.svc", tokB, http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := newRequest(t, tc.method, e.url+"/v2/", nil)
			req.Host = tc.host
			if tc.token != "" {
				req.SetBasicAuth("team-a/reg", tc.token)
			}
			status, h, _ := do(t, e.reverseClient(), req, e.all)
			if status != tc.want {
				t.Fatalf("status %d, want %d", status, tc.want)
			}
			if status == http.StatusUnauthorized && h.Get("Www-Authenticate") != `Basic realm="connectors"` {
				t.Errorf("challenge %q", h.Get("Www-Authenticate"))
			}
			if status == http.StatusOK && h.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
				t.Errorf("missing Docker-Distribution-Api-Version")
			}
		})
	}
	if reqs := e.reg.takeReqs(); len(reqs) != 0 {
		t.Errorf("the ping reached the registry: %+v", reqs)
	}
}

func TestRegistryPathFormPullWithToken(t *testing.T) {
	e := newRegEnv(t, false)
	for _, repo := range []string{"app", "team/app"} {
		status, _, body := e.do(t, http.MethodGet, regPath+repo+"/manifests/latest", tokA, nil)
		if status != http.StatusOK || !strings.Contains(body, "schemaVersion") {
			t.Fatalf("%s: status %d body %q", repo, status, body)
		}
		var sawManifest, sawRealm bool
		for _, r := range e.reg.takeReqs() {
			switch {
			case r.Path == "/v2/"+repo+"/manifests/latest" && strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "+regTokPrefix):
				sawManifest = true
			case strings.HasPrefix(r.Path, "/token?") && r.Header.Get("Authorization") == basicValue(regUser, regPass):
				sawRealm = strings.Contains(r.Path, "scope=repository%3A"+strings.ReplaceAll(repo, "/", "%2F")+"%3Apull")
			}
		}
		if !sawManifest || !sawRealm {
			t.Errorf("%s: manifest with token %v, realm with credential and scope %v", repo, sawManifest, sawRealm)
		}
	}
}

func TestRegistryHostFormNeedsNoRewrite(t *testing.T) {
	e := newRegEnv(t, false)
	req := newRequest(t, http.MethodGet, e.url+"/v2/app/manifests/latest", nil)
	req.Host = "c-reg.team-a"
	req.SetBasicAuth("", tokA)
	if status, _, _ := do(t, e.reverseClient(), req, e.all); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	reqs := e.reg.takeReqs()
	if last := reqs[len(reqs)-1]; last.Path != "/v2/app/manifests/latest" {
		t.Errorf("registry saw %q", last.Path)
	}
}

func TestRegistryTokenFetchedOncePerScopeAndLifetime(t *testing.T) {
	e := newRegEnv(t, false)
	get := func() {
		if status, _, _ := e.do(t, http.MethodGet, regPath+"app/manifests/latest", tokA, nil); status != http.StatusOK {
			t.Errorf("status %d", status)
		}
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(get)
	}
	wg.Wait()
	for range 10 {
		get()
		if status, _, _ := e.do(t, http.MethodHead, regPath+"app/manifests/latest", tokA, nil); status != http.StatusOK {
			t.Fatalf("HEAD status %d", status)
		}
	}
	if n := e.reg.fetchCount("repository:app:pull"); n != 1 {
		t.Errorf("pull token fetched %d times, want 1", n)
	}
	if status, _, _ := e.do(t, http.MethodPost, regPath+"app/blobs/uploads/", tokA, nil); status != http.StatusAccepted {
		t.Fatalf("POST status %d", status)
	}
	if n := e.reg.fetchCount("repository:app:pull,push"); n != 1 {
		t.Errorf("push token fetched %d times, want 1", n)
	}
	// 60s tokens are reused for 54s.
	e.clock.Step(50 * time.Second)
	get()
	if n := e.reg.fetchCount("repository:app:pull"); n != 1 {
		t.Errorf("after 50s: pull token fetched %d times, want 1", n)
	}
	e.clock.Step(5 * time.Second)
	get()
	if n := e.reg.fetchCount("repository:app:pull"); n != 2 {
		t.Errorf("after 55s: pull token fetched %d times, want 2", n)
	}
}

func TestRegistryUploadLocationRewritten(t *testing.T) {
	e := newRegEnv(t, false)
	want := e.url + regPath + "app/blobs/uploads/u1?_state=s1"
	for _, q := range []string{"", "?abs=1"} {
		status, h, _ := e.do(t, http.MethodPost, regPath+"app/blobs/uploads/"+q, tokA, nil)
		if status != http.StatusAccepted || h.Get("Location") != want {
			t.Fatalf("POST%s: status %d Location %q, want %q", q, status, h.Get("Location"), want)
		}
	}
	body := bytes.Repeat([]byte("x"), 1<<20)
	status, h, _ := e.do(t, http.MethodPatch, strings.TrimPrefix(want, e.url), tokA, bytes.NewReader(body))
	if status != http.StatusAccepted || h.Get("Location") != e.url+regPath+"app/blobs/uploads/u1?_state=s2" {
		t.Fatalf("PATCH: status %d Location %q", status, h.Get("Location"))
	}
	status, h, _ = e.do(t, http.MethodPut, regPath+"app/blobs/uploads/u1?_state=s2&digest=sha256:abc", tokA, nil)
	if status != http.StatusCreated || h.Get("Location") != e.url+regPath+"app/blobs/sha256:abc" {
		t.Fatalf("PUT: status %d Location %q", status, h.Get("Location"))
	}
	e.reg.mu.Lock()
	got := e.reg.bodies["PATCH /v2/app/blobs/uploads/u1"]
	e.reg.mu.Unlock()
	if got != len(body) {
		t.Errorf("registry received %d body bytes, want %d (sent once)", got, len(body))
	}
}

// TestRegistryTagPagesLinkBackToTheProxy pins that a tag list's Link header
// leads the client to the next page under the proxy's prefix, not to the
// backend's path.
func TestRegistryTagPagesLinkBackToTheProxy(t *testing.T) {
	e := newRegEnv(t, false)
	status, h, _ := e.do(t, http.MethodGet, regPath+"app/tags/list?n=2", tokA, nil)
	want := `<` + e.url + regPath + `app/tags/list?last=b&n=2>; rel="next"`
	if status != http.StatusOK || h.Get("Link") != want {
		t.Fatalf("status %d Link %q, want %q", status, h.Get("Link"), want)
	}
}

func TestRegistryRedirectToStoragePassedUnchanged(t *testing.T) {
	e := newRegEnv(t, false)
	status, h, _ := e.do(t, http.MethodGet, regPath+"app/blobs/sha256:redirect", tokA, nil)
	want := "https://storage.example.test:" + e.port + "/blob?sig=x"
	if status != http.StatusTemporaryRedirect || h.Get("Location") != want {
		t.Fatalf("status %d Location %q", status, h.Get("Location"))
	}
	for _, r := range e.reg.takeReqs() {
		if strings.HasPrefix(r.Host, "storage.") {
			t.Errorf("the proxy followed the redirect")
		}
	}
}

func TestRegistryRealmOutsideConnectorIs502(t *testing.T) {
	e := newRegEnv(t, false)
	req := newRequest(t, http.MethodGet, e.url+"/v2/namespaces/team-a/connectors/noext/app/manifests/latest", nil)
	req.SetBasicAuth("", tokA)
	status, _, body := do(t, e.reverseClient(), req, e.all)
	if status != http.StatusBadGateway || !strings.Contains(body, "not an address of connector") {
		t.Fatalf("status %d body %q", status, body)
	}
	for _, r := range e.reg.takeReqs() {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("credential sent to %s%s", r.Host, r.Path)
		}
	}
}

// A request with a body is sent once, with a token fetched beforehand; a
// 401 reaches the client with the proxy's challenge, never the registry's.
func TestRegistryBodyNotReplayedAndChallengeHidden(t *testing.T) {
	e := newRegEnv(t, false)
	if status, _, _ := e.do(t, http.MethodPost, regPath+"app/blobs/uploads/", tokA, nil); status != http.StatusAccepted {
		t.Fatalf("POST status %d", status)
	}
	e.reg.mu.Lock()
	clear(e.reg.tokens) // the registry forgets every token
	e.reg.mu.Unlock()
	e.reg.takeReqs()
	status, h, _ := e.do(t, http.MethodPatch, regPath+"app/blobs/uploads/u1", tokA, strings.NewReader("layer-bytes"))
	if status != http.StatusUnauthorized || h.Get("Www-Authenticate") != `Basic realm="connectors"` {
		t.Fatalf("PATCH: status %d challenge %q", status, h.Get("Www-Authenticate"))
	}
	patches := 0
	for _, r := range e.reg.takeReqs() {
		if r.Path == "/v2/app/blobs/uploads/u1" {
			patches++
		}
	}
	if patches != 1 {
		t.Errorf("PATCH sent %d times, want 1", patches)
	}
	// A body-less request is retried once with a fresh token.
	if status, _, _ := e.do(t, http.MethodGet, regPath+"app/manifests/latest", tokA, nil); status != http.StatusOK {
		t.Fatalf("GET after revocation: status %d", status)
	}
}

func TestRegistryBasicSecretFollowsBearerChallenge(t *testing.T) {
	e := newRegEnv(t, false)
	req := newRequest(t, http.MethodGet, e.url+"/v2/namespaces/team-a/connectors/regbasic/app/manifests/latest", nil)
	req.SetBasicAuth("", tokA)
	if status, _, _ := do(t, e.reverseClient(), req, e.all); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if n := e.reg.fetchCount("repository:app:pull"); n != 1 {
		t.Errorf("token fetched %d times, want 1", n)
	}
}

func TestRegistryBasicRegistryGetsBasic(t *testing.T) {
	e := newRegEnv(t, true)
	if status, _, _ := e.do(t, http.MethodGet, regPath+"app/manifests/latest", tokA, nil); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if n := e.reg.totalFetches(); n != 0 {
		t.Errorf("%d token fetches for a Basic registry", n)
	}
	if !injectedIn(e.reg.takeReqs(), basicValue(regUser, regPass)) {
		t.Errorf("Basic credential not injected")
	}
}

func TestRegistryMountSourceRenamed(t *testing.T) {
	e := newRegEnv(t, false)
	q := "?mount=sha256:abc&from=namespaces%2Fteam-a%2Fconnectors%2Freg%2Fbase"
	if status, _, _ := e.do(t, http.MethodPost, regPath+"app/blobs/uploads/"+q, tokA, nil); status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	var sawFrom bool
	for _, r := range e.reg.takeReqs() {
		if strings.HasPrefix(r.Path, "/v2/app/blobs/uploads/?") {
			sawFrom = strings.Contains(r.Path, "from=base")
		}
	}
	if !sawFrom {
		t.Errorf("the registry did not see from=base")
	}
	if n := e.reg.fetchCount("repository:app:pull,push repository:base:pull"); n != 1 {
		t.Errorf("mount token fetched %d times, want 1", n)
	}
}

func TestRegistryThroughForwardProxy(t *testing.T) {
	e := newRegEnv(t, false)
	base := "https://reg.example.test:" + e.port
	c := e.forwardClient("team-a/reg", tokA)
	for _, path := range []string{"/v2/", "/v2/app/manifests/latest"} {
		status, _, _ := do(t, c, newRequest(t, http.MethodGet, base+path, nil), e.all)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d", path, status)
		}
	}
	status, h, _ := do(t, c, newRequest(t, http.MethodPost, base+"/v2/app/blobs/uploads/", nil), e.all)
	if status != http.StatusAccepted || h.Get("Location") != "/v2/app/blobs/uploads/u1?_state=s1" {
		t.Fatalf("POST: status %d Location %q", status, h.Get("Location"))
	}
	if n := e.reg.fetchCount("repository:app:pull"); n != 1 {
		t.Errorf("token fetched %d times, want 1", n)
	}
	bad := e.forwardClient("team-a/reg", "not-a-token")
	if status, _, _ := do(t, bad, newRequest(t, http.MethodGet, base+"/v2/", nil), e.all); status != http.StatusProxyAuthRequired {
		t.Errorf("wrong token: status %d, want 407", status)
	}
}

// The realm fetch passes the SSRF guard like any upstream dial, even when
// the Connector lists the realm.
func TestRegistryRealmFetchGuarded(t *testing.T) {
	e := newRegEnv(t, false)
	e.reg.mu.Lock()
	e.reg.realm = "https://metadata.example.test:" + e.port + "/token"
	e.reg.mu.Unlock()
	e.objects.connector("team-a", "meta", "https://reg.example.test:"+e.port, "regtoken", "https://metadata.example.test:"+e.port)
	req := newRequest(t, http.MethodGet, e.url+"/v2/namespaces/team-a/connectors/meta/app/manifests/latest", nil)
	req.SetBasicAuth("", tokA)
	status, _, body := do(t, e.reverseClient(), req, e.all)
	if status != http.StatusForbidden || !strings.Contains(body, "link-local") {
		t.Fatalf("status %d body %q", status, body)
	}
}
