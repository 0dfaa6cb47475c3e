package proxy

import (
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Registry secrets; TestRegistrySecretsNeverLeak scans for them.
const (
	regUser      = "reg-robot"
	regPass      = "reg-pass-3c4d5e6f"
	regTokPrefix = "regtok-91ab"
)

// fakeRegistry is an OCI registry and its token service in one TLS server,
// told apart by Host: reg*.example.test is the registry, auth*.example.test
// the token realm, storage.example.test a blob store.
type fakeRegistry struct {
	srv *httptest.Server
	// basicOnly makes the registry answer with a Basic challenge and
	// accept the username and password directly.
	basicOnly bool
	// realm is the realm the registry's challenge names.
	realm string
	// root signed the server's certificate.
	root *x509.Certificate

	mu       sync.Mutex
	seq      int
	tokens   map[string][]string // token -> scopes
	fetches  map[string]int      // sorted scopes -> token requests
	reqs     []seen
	bodies   map[string]int // method+path -> body bytes received
	lifetime int
}

func newFakeRegistry(t testing.TB) *fakeRegistry {
	t.Helper()
	f := &fakeRegistry{tokens: map[string][]string{}, fetches: map[string]int{}, bodies: map[string]int{}, lifetime: 60}
	ca := newTestCA(t)
	cert := ca.serverCert(t, "reg.example.test", "auth.example.test", "evilauth.example.test", "storage.example.test")
	f.srv = startTLS(t, http.HandlerFunc(f.serve), &cert)
	f.realm = "https://auth.example.test:" + port(t, f.srv) + "/token"
	f.root = ca.cert
	return f
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	host := r.Host[:strings.IndexByte(r.Host, ':')]
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{Host: r.Host, Path: r.RequestURI, Header: r.Header.Clone()})
	if n > 0 {
		f.bodies[r.Method+" "+r.URL.Path] += int(n)
	}
	f.mu.Unlock()
	switch {
	case strings.HasPrefix(host, "auth"), strings.HasPrefix(host, "evilauth"):
		f.serveToken(w, r)
	case host == "storage.example.test":
		_, _ = io.WriteString(w, "blob-from-storage")
	default:
		f.serveRegistry(w, r)
	}
}

func (f *fakeRegistry) serveToken(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != regUser || pass != regPass {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	scopes := r.URL.Query()["scope"]
	f.mu.Lock()
	f.seq++
	tok := fmt.Sprintf("%s-%d", regTokPrefix, f.seq)
	f.tokens[tok] = scopes
	f.fetches[strings.Join(scopes, " ")]++
	life := f.lifetime
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"token":%q,"expires_in":%d,"issued_at":%q}`, tok, life, time.Now().UTC().Format(time.RFC3339))
}

// allowed reports whether the request carries a credential for its
// repository and action.
func (f *fakeRegistry) allowed(r *http.Request) bool {
	if f.basicOnly {
		u, p, ok := r.BasicAuth()
		return ok && u == regUser && p == regPass
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	f.mu.Lock()
	scopes, ok := f.tokens[tok]
	f.mu.Unlock()
	if !ok {
		return false
	}
	if r.URL.Path == "/v2/" {
		return true
	}
	want := "repository:" + fakeRepo(r.URL.Path) + ":pull"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		want += ",push"
	}
	for _, s := range scopes {
		if s == want {
			return true
		}
	}
	return false
}

// fakeRepo is the repository of /v2/<repo>/(manifests|blobs)/...
func fakeRepo(path string) string {
	p := strings.TrimPrefix(path, "/v2/")
	for _, kw := range []string{"/manifests/", "/blobs/", "/tags/"} {
		if i := strings.Index(p, kw); i >= 0 {
			return p[:i]
		}
	}
	return p
}

func (f *fakeRegistry) challenge(r *http.Request) string {
	if f.basicOnly {
		return `Basic realm="fake-registry"`
	}
	f.mu.Lock()
	realm := f.realm
	f.mu.Unlock()
	c := fmt.Sprintf(`Bearer realm=%q,service="fake-registry"`, realm)
	if r.URL.Path != "/v2/" {
		c += fmt.Sprintf(`,scope="repository:%s:pull"`, fakeRepo(r.URL.Path))
	}
	return c
}

func (f *fakeRegistry) serveRegistry(w http.ResponseWriter, r *http.Request) {
	if !f.allowed(r) {
		w.Header().Set("Www-Authenticate", f.challenge(r))
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/v2/":
		_, _ = io.WriteString(w, "{}")
	case strings.HasSuffix(p, "/blobs/uploads/") && r.Method == http.MethodPost:
		loc := "/v2/" + fakeRepo(p) + "/blobs/uploads/u1?_state=s1"
		if r.URL.Query().Get("abs") == "1" {
			loc = "https://" + r.Host + loc
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusAccepted)
	case strings.Contains(p, "/blobs/uploads/") && r.Method == http.MethodPatch:
		w.Header().Set("Location", p+"?_state=s2")
		w.WriteHeader(http.StatusAccepted)
	case strings.Contains(p, "/blobs/uploads/") && r.Method == http.MethodPut:
		w.Header().Set("Location", "/v2/"+fakeRepo(p)+"/blobs/"+r.URL.Query().Get("digest"))
		w.WriteHeader(http.StatusCreated)
	case strings.HasSuffix(p, "/blobs/sha256:redirect"):
		w.Header().Set("Location", "https://storage.example.test:"+strings.Split(r.Host, ":")[1]+"/blob?sig=x")
		w.WriteHeader(http.StatusTemporaryRedirect)
	case strings.HasSuffix(p, "/tags/list"):
		w.Header().Set("Link", `</v2/`+fakeRepo(p)+`/tags/list?last=b&n=2>; rel="next"`)
		_, _ = io.WriteString(w, `{"tags":["a","b"]}`)
	case strings.Contains(p, "/manifests/"):
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		_, _ = io.WriteString(w, `{"schemaVersion":2}`)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeRegistry) takeReqs() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.reqs
	f.reqs = nil
	return out
}

func (f *fakeRegistry) fetchCount(scopes string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches[scopes]
}

func (f *fakeRegistry) totalFetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.fetches {
		n += c
	}
	return n
}

// addRegistryConnectors adds the Connectors of the registry suite to o:
//
//	team-a/reg      registry token Secret, realm as address extension
//	team-a/regbasic basic-auth Secret, same registry
//	team-a/noext    registry token Secret, realm not among its addresses
func addRegistryConnectors(o *fakeObjects, f *fakeRegistry, p string) {
	o.secret("team-a", "regtoken", SecretTypeRegistryToken, map[string]string{"username": regUser, "password": regPass})
	o.secret("team-a", "regbasic", corev1.SecretTypeBasicAuth, map[string]string{"username": regUser, "password": regPass})
	o.connector("team-a", "reg", "https://reg.example.test:"+p, "regtoken", f.realm)
	o.connector("team-a", "regbasic", "https://reg.example.test:"+p, "regbasic", "https://auth.example.test:"+p)
	o.connector("team-a", "noext", "https://reg.example.test:"+p, "regtoken", "https://evilauth.example.test:"+p+"/other")
}
