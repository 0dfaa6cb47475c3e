package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/test/servers/testpki"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/registry"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// registryUser is the robot account the registries want; each story makes
// its own password.
const registryUser = "robot$ci"

// registryBackend is Debian's docker-registry with token authentication
// over TLS for a host name, and its token service on a second host name.
type registryBackend struct {
	// host is <name>:<port> of the registry; realm is the token service's URL.
	host, realm string
	ca          *testpki.CA
	// mapped is when the host names went into /etc/hosts.
	mapped time.Time
	tokens *registry.TokenService

	mu sync.Mutex
	// authorizations holds every Authorization header the token service
	// got, and the decoded user:password of each Basic one.
	authorizations []string
}

// needRegistryTools skips the test (fails it in CI) without the registry,
// skopeo or bin/crane, and returns crane's path.
func needRegistryTools(t *testing.T) string {
	t.Helper()
	needTool(t, registry.Binary)
	needTool(t, "skopeo")
	crane := filepath.Join(apiserver.RepoRoot(), "bin", "crane")
	if _, err := os.Stat(crane); err != nil {
		testenv.SkipOrFail(t, "%s not built (make tools): %v", crane, err)
	}
	return crane
}

// startRegistry maps regName and authName to 127.0.0.1, issues a
// certificate for both from a CA of its own, and starts the token service
// on authName and the registry on regName. Every token the service issues
// is registered as a credential of the story as it is issued.
func (s *story) startRegistry(regName, authName, password string) *registryBackend {
	s.t.Helper()
	mapHost(s.t, regName)
	mapHost(s.t, authName)
	ca, err := testpki.NewCA("connectors-node e2e registry CA")
	if err != nil {
		s.t.Fatal(err)
	}
	// 127.0.0.1 too: registry.Start probes readiness on the loopback address.
	certPEM, keyPEM, err := ca.Issue(regName, authName, "127.0.0.1")
	if err != nil {
		s.t.Fatal(err)
	}
	b := &registryBackend{ca: ca, mapped: time.Now()}
	b.tokens, err = registry.NewTokenService("e2e-issuer", regName, registryUser, password, 5*time.Minute)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.t.Cleanup(cancel)
	authPort, err := registry.ServeTLS(ctx, b.recording(s), certPEM, keyPEM)
	if err != nil {
		s.t.Fatal(err)
	}
	b.realm = "https://" + authName + ":" + authPort + "/token"
	srv, err := registry.Start(ctx, registry.Config{
		Dir: s.t.TempDir(), CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: ca.PEM,
		Token: &registry.Token{Realm: b.realm, Service: regName, Issuer: "e2e-issuer", RootCertPEM: b.tokens.CertPEM},
	})
	if err != nil {
		s.t.Fatalf("starting the registry: %v", err)
	}
	s.t.Cleanup(srv.Stop)
	b.host = regName + ":" + srv.Port
	return b
}

// resolvable waits until the node's resolver has surely read /etc/hosts
// since the registry's names were mapped.
func (b *registryBackend) resolvable() {
	time.Sleep(time.Until(b.mapped.Add(hostsCacheAge)))
}

// recording wraps the token service: it keeps the Authorization headers and
// registers each issued registry token as a credential, so the leak checks
// look for those too.
func (b *registryBackend) recording(s *story) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.authorizations = append(b.authorizations, r.Header.Get("Authorization"))
		if user, pass, ok := r.BasicAuth(); ok {
			b.authorizations = append(b.authorizations, user+":"+pass)
		}
		b.mu.Unlock()
		rec := httptest.NewRecorder()
		b.tokens.ServeHTTP(rec, r)
		var body struct {
			Token string `json:"token"`
		}
		if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &body) == nil && body.Token != "" {
			s.credential("a registry token from the token service", "", body.Token)
		}
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// sawAuthorization reports whether any request reached the token service
// with an Authorization header holding v.
func (b *registryBackend) sawAuthorization(v string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range b.authorizations {
		if strings.Contains(a, v) {
			return true
		}
	}
	return false
}

// layoutDigest reads the manifest digest of the only image of an OCI
// layout a client wrote.
func layoutDigest(t *testing.T, dir string) string {
	t.Helper()
	d, err := registry.ManifestDigest(dir, "")
	if err != nil {
		t.Fatalf("reading the pulled image: %v", err)
	}
	return d
}

// nodeLogOnFailure shows, when the test fails, the node log lines about the
// story's namespace (checked for credentials like any captured output).
func (s *story) nodeLogOnFailure() {
	s.t.Cleanup(func() {
		if !s.t.Failed() {
			return
		}
		b, err := os.ReadFile(s.h.logPath)
		if err != nil {
			s.t.Log(err)
			return
		}
		var lines []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, s.ns) {
				lines = append(lines, line)
			}
		}
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		s.capture("the node log about "+s.ns, strings.Join(lines, "\n"))
	})
}
