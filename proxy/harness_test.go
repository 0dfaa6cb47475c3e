package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/test/servers/testpki"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/fake"
)

// Secrets used by the fixtures; TestSecretsNeverLeak scans for them.
const (
	tokA          = "tok-team-a-7d1f0c2e"
	tokB          = "tok-team-b-5a9e33b1"
	tokNoAccess   = "tok-nobody-c0ffee42"
	upstreamUser  = "inject-user"
	upstreamPass  = "upstream-pass-9b8c7d"
	upstreamBear  = "upstream-bearer-4e5f6a"
	teamBPass     = "team-b-pass-1a2b3c"
	proxyAudience = "connectors-proxy"
)

func basicValue(user, pass string) string {
	return "Basic " + b64(user+":"+pass)
}

// newFakeAuth is the shared token reviewer with the fixture tokens.
func newFakeAuth() *fake.Auth {
	a := fake.NewAuth()
	a.AddToken(tokA, "team-a", "default", "team-a/*")
	a.AddToken(tokB, "team-b", "default", "team-b/*")
	a.AddToken(tokNoAccess, "team-a", "nobody")
	return a
}

// fakeObjects is the shared in-memory kube.Objects with this package's
// fixture builders.
type fakeObjects struct{ *fake.Objects }

func newFakeObjects() *fakeObjects { return &fakeObjects{fake.NewObjects()} }

// class adds a ConnectorClass.
func (o *fakeObjects) class(c *v1alpha1.ConnectorClass) { o.AddClass(c) }

// connector adds a Connector; secret is the Secret's name ("" for none).
func (o *fakeObjects) connector(ns, name, address, secret string, extensions ...string) *v1alpha1.Connector {
	c := &v1alpha1.Connector{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	c.Spec.Address = address
	for i, e := range extensions {
		raw, _ := json.Marshal(e)
		c.Spec.AddressExtensions = append(c.Spec.AddressExtensions,
			v1alpha1.Param{Name: fmt.Sprintf("ext%d", i), Value: apiextensionsv1.JSON{Raw: raw}})
	}
	if secret != "" {
		c.Spec.Auth.SecretRef = &corev1.ObjectReference{Name: secret}
	}
	return o.AddConnector(c)
}

func (o *fakeObjects) secret(ns, name string, typ corev1.SecretType, data map[string]string) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: typ, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	o.AddSecret(s)
}

// seen is one request an upstream received.
type seen struct {
	Host   string
	Path   string // escaped path and query as received
	Header http.Header
}

// recorder is an upstream handler that records every request.
type recorderLog struct {
	mu   sync.Mutex
	reqs []seen
}

func (l *recorderLog) handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		l.mu.Lock()
		l.reqs = append(l.reqs, seen{Host: r.Host, Path: r.RequestURI, Header: r.Header.Clone()})
		l.mu.Unlock()
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/redirect"):
			w.Header().Set("Location", r.URL.Query().Get("to"))
			w.WriteHeader(http.StatusFound)
			return
		case strings.HasSuffix(r.URL.Path, "/echo"):
			echoAuthorization(w, r, name)
			return
		case strings.HasSuffix(r.URL.Path, "/session"):
			w.Header().Set("Set-Cookie", "session=opened-for-the-injected-credential")
		case strings.HasSuffix(r.URL.Path, "/hop"):
			w.Header().Set("Connection", "X-Upstream-Private")
			w.Header().Set("X-Upstream-Private", "1")
			w.Header().Set("Proxy-Authenticate", "Basic")
		}
		w.Header().Set("X-Upstream", name)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = fmt.Fprintf(w, "%s %d", name, len(body))
	})
}

// echoAuthorization answers with the request's Authorization in every
// header block an upstream can send: an informational 103, the final
// headers (whole, its credential part, in a field name) and a trailer.
func echoAuthorization(w http.ResponseWriter, r *http.Request, name string) {
	auth := r.Header.Get("Authorization")
	_, cred, _ := strings.Cut(auth, " ")
	h := w.Header()
	h.Set("X-Hint", auth)
	w.WriteHeader(http.StatusEarlyHints)
	h.Del("X-Hint")
	h.Set("X-Echo-Authorization", auth)
	h.Add("X-Echo-Credential", "seen "+cred)
	h.Add("X-Echo-Credential", "kept")
	if _, pass, ok := parseBasic(auth); ok {
		h.Set("X-Echo-Password", pass)
	}
	if strings.Trim(cred, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == "" {
		h.Set("X-Cred-"+cred, "1") // a bearer token is a valid field name
	}
	h.Set("X-Upstream", name)
	h.Set("Trailer", "X-Trailer-Echo")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, name)
	h.Set("X-Trailer-Echo", auth)
}

func (l *recorderLog) take() []seen {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reqs
	l.reqs = nil
	return out
}

// injected reports whether any recorded request carried the credential.
func injectedIn(reqs []seen, credential string) bool {
	for _, r := range reqs {
		if r.Header.Get("Authorization") == credential {
			return true
		}
	}
	return false
}

// carries reports whether any recorded request holds one of needles in any
// value of any header or in its target.
func carries(reqs []seen, needles ...string) bool {
	for _, r := range reqs {
		for _, n := range needles {
			if strings.Contains(r.Path, n) {
				return true
			}
			for _, vs := range r.Header {
				for _, v := range vs {
					if strings.Contains(v, n) {
						return true
					}
				}
			}
		}
	}
	return false
}

// testCA is an upstream CA that signs test server certificates.
type testCA struct {
	cert *x509.Certificate
	pki  *testpki.CA
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	authority, err := testpki.NewCA("upstream-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: authority.Cert, pki: authority}
}

func (ca *testCA) serverCert(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	cert, err := ca.pki.TLSCertificate(names...)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// startTLS starts an httptest TLS server with cert.
func startTLS(t testing.TB, h http.Handler, cert *tls.Certificate) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	if cert != nil {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func port(t testing.TB, s *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// testResolver maps every *.test name (and localhost.test) to 127.0.0.1
// and a few names to forbidden addresses; nothing reaches real DNS.
func testResolver(_ context.Context, host string) ([]netip.Addr, error) {
	switch host {
	case "metadata.example.test":
		return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
	case "v6ll.example.test":
		return []netip.Addr{netip.MustParseAddr("fe80::1")}, nil
	case "mapped.example.test":
		return []netip.Addr{netip.MustParseAddr("::ffff:169.254.169.254")}, nil
	}
	if strings.HasSuffix(host, ".test") {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host (test resolver)", Name: host, IsNotFound: true}
}

// logBuffer is the shared log and audit buffer the leak scans read.
type logBuffer = fake.LogBuffer

// env is a running proxy with fakes.
type env struct {
	proxy    *Proxy
	server   *Server
	addr     string // host:port of the proxy listener
	url      string // http://addr
	auth     *fake.Auth
	objects  *fakeObjects
	ca       *ca.CA
	caFile   string
	logs     *logBuffer
	registry *prometheus.Registry
	// connects holds the bodies of refused CONNECTs, which net/http hides
	// behind an error, for the leak scan.
	connects bodies
}

type envOption func(*Options)

// testFastPath is Options.UpstreamFastPath for the suite's proxies: on
// unless PROXY_TEST_UPSTREAM_FAST_PATH=0, so that the whole suite runs
// with and without it.
func testFastPath() bool {
	return os.Getenv("PROXY_TEST_UPSTREAM_FAST_PATH") != "0"
}

func startEnv(t testing.TB, objects *fakeObjects, roots []*x509.Certificate, opts ...envOption) *env {
	t.Helper()
	return startEnvServer(t, objects, roots, ServerOptions{}, opts...)
}

// startEnvServer is startEnv with the server's options.
func startEnvServer(t testing.TB, objects *fakeObjects, roots []*x509.Certificate, so ServerOptions, opts ...envOption) *env {
	t.Helper()
	authority, err := ca.NewCA("proxy-test-ca", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{auth: newFakeAuth(), objects: objects, ca: authority, logs: &logBuffer{}, registry: prometheus.NewRegistry()}
	o := Options{
		Objects:       objects,
		Auth:          e.auth,
		CA:            authority,
		AllowLoopback: true,
		Resolver:      testResolver,
		UpstreamRoots: roots,
		AuditLog:      e.logs,
		Log:           e.logs.Logger(),
		Registerer:    e.registry,

		UpstreamFastPath: testFastPath(),
	}
	for _, f := range opts {
		f(&o)
	}
	e.proxy, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.logs.FlushWith(e.proxy.audit.flush)
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	e.url = "http://" + e.addr
	e.server = e.proxy.NewServer(so)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.server.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.server.Shutdown(ctx)
		<-done
	})
	e.caFile = filepath.Join(t.TempDir(), "proxy-ca.crt")
	if err := os.WriteFile(e.caFile, authority.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// caPool trusts the proxy CA only.
func (e *env) caPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.ca.Cert)
	return p
}

// forwardClient uses the proxy with user (a connector list) and token.
func (e *env) forwardClient(user, token string) *http.Client {
	pu, _ := url.Parse(e.url)
	if user != "" || token != "" {
		pu.User = url.UserPassword(user, token)
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:           http.ProxyURL(pu),
			TLSClientConfig: &tls.Config{RootCAs: e.caPool(), MinVersion: tls.VersionTLS12},
			OnProxyConnectResponse: func(_ context.Context, _ *url.URL, _ *http.Request, res *http.Response) error {
				if res.StatusCode != http.StatusOK {
					b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
					e.connects.add(string(b))
				}
				return nil
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// reverseClient talks to the proxy directly.
func (e *env) reverseClient() *http.Client {
	return &http.Client{
		Transport:     &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// bodies collects every response body the tests read, for the leak scan.
type bodies struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *bodies) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(s)
	b.b.WriteString("\n")
}

func (b *bodies) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// do sends req and returns the status, headers and body.
func do(t testing.TB, c *http.Client, req *http.Request, all *bodies) (int, http.Header, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		// A refused CONNECT surfaces as a transport error naming the status.
		return statusOfProxyError(err), nil, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if all != nil {
		all.add(string(b))
	}
	return resp.StatusCode, resp.Header, string(b)
}

// statusOfProxyError reads the status of a failed CONNECT from the error
// net/http returns ("Proxy Authentication Required", "Forbidden", ...).
func statusOfProxyError(err error) int {
	s := err.Error()
	for code := 400; code < 600; code++ {
		if txt := http.StatusText(code); txt != "" && strings.HasSuffix(s, txt) {
			return code
		}
	}
	return 0
}

func newRequest(t testing.TB, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
