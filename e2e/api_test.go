package e2e

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/connectors-node/connectors-node/test/servers/gitserver"
)

// bearerAPI is an HTTPS API that wants one bearer token and records every
// Authorization header it is sent.
type bearerAPI struct {
	srv *httptest.Server
	ca  []byte

	mu   sync.Mutex
	auth []string
}

func startBearerAPI(t *testing.T, token string) *bearerAPI {
	t.Helper()
	a := &bearerAPI{}
	a.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.auth = append(a.auth, r.Header.Get("Authorization"))
		a.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "path": r.URL.Path})
	}))
	t.Cleanup(a.srv.Close)
	a.ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.srv.Certificate().Raw})
	return a
}

func (a *bearerAPI) authorizations() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.auth...)
}

// Story 3: a pod calls an HTTPS API through the reverse proxy with the
// command of examples/curl-api-job.yaml:
//
//	curl -H "Authorization: Bearer $(cat context.token)" "$(cat connector.status.proxyAddress)/status"
//
// The proxy swaps the pod's token for the API's own and verifies the API
// with the Connector's caCertSecretRef.
func TestCurlReverseProxyToBearerAPI(t *testing.T) {
	t.Parallel()
	needTool(t, "curl")
	s := newStory(t, "e2e-api")
	apiToken := randomHex(20)
	api := startBearerAPI(t, apiToken)
	s.bearerSecret("api-token", apiToken)
	s.caSecret("api-ca", api.ca)
	s.connector(connectorSpec{name: "api", class: "bearer-api", address: api.srv.URL + "/v1",
		authName: "bearerToken", secret: "api-token", caSecret: "api-ca"})
	s.serviceAccount(s.ns, "api-client")
	s.allow(s.ns, "api-client", "api")

	job := loadJob(t, "curl-api-job.yaml")
	tok := s.token(s.ns, "api-client")
	v := s.publish("api-client", job.attrs, tok)
	want := s.h.publicURL + "/namespaces/" + s.ns + "/connectors/api"
	if got := v.file(t, "connector.status.proxyAddress"); got != want {
		t.Errorf("connector.status.proxyAddress = %q, want %q", got, want)
	}

	script, env := job.localize(t, v.target, nil)
	out, err := s.shell(t.TempDir(), append(gitserver.Env(t.TempDir()), env...), script)
	if err != nil {
		t.Fatalf("the Job's curl failed: %v", err)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(out), &body); err != nil {
		t.Fatalf("the API's answer is not JSON: %v", err)
	}
	if body["status"] != "ok" || body["path"] != "/v1/status" {
		t.Errorf("the API answered %v, want status ok for /v1/status", body)
	}

	// The class's curlrc configuration reaches the API the same way.
	rc := s.publish("api-client", map[string]string{"connectors": "api", "configuration.names": "curlrc"}, tok)
	out, err = s.run(t.TempDir(), gitserver.Env(t.TempDir()), "curl", "-fsS", "-K", rc.target+"/curlrc")
	if err != nil {
		t.Fatalf("curl -K curlrc failed: %v", err)
	}
	if !strings.Contains(out, `"path":"/v1/"`) {
		t.Errorf("curl -K curlrc reached the wrong path")
	}

	// Without the pod's token the proxy answers itself; the API never hears of it.
	before := len(api.authorizations())
	code, _ := s.get(want+"/status", "")
	if code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	for i, a := range api.authorizations() {
		if a != "Bearer "+apiToken {
			t.Errorf("request %d reached the API without the API's token (it carried %d bytes of Authorization)", i+1, len(a))
		}
		if strings.Contains(a, tok.Token) {
			t.Errorf("request %d carried the pod's token to the API", i+1)
		}
	}
	if after := len(api.authorizations()); after != before {
		t.Errorf("a request without a token reached the API")
	}
	if s.auditLine("api", "reverse") == "" {
		t.Errorf("no audit line for a reverse-proxied request with the credential injected")
	}
}
