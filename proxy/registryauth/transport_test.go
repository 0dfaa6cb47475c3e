package registryauth

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/connectors-node/connectors-node/grammar/match"
)

const (
	testBasic = "Basic dXNlcjpwYXNz" // user:pass
	testToken = "registry-token-1"
)

// tokenRegistry is a registry that wants a Bearer token from realm, and the
// token service behind realm.
type tokenRegistry struct {
	srv   *httptest.Server
	realm string

	mu       sync.Mutex
	fetches  int
	realmHit []string // Authorization values the token service saw
	seen     []string // Authorization values the registry saw
}

func newTokenRegistry(t *testing.T) *tokenRegistry {
	t.Helper()
	tr := &tokenRegistry{}
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if r.URL.Path == "/token" {
			tr.fetches++
			tr.realmHit = append(tr.realmHit, r.Header.Get("Authorization"))
			if r.Header.Get("Authorization") != testBasic {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			_, _ = io.WriteString(w, `{"token":"`+testToken+`","expires_in":300}`)
			return
		}
		tr.seen = append(tr.seen, r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.Header().Set("Www-Authenticate", `Bearer realm="`+tr.realm+`",service="reg"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(tr.srv.Close)
	tr.realm = tr.srv.URL + "/token"
	return tr
}

func candidatesOf(t *testing.T, addrs ...string) []match.Candidate {
	t.Helper()
	var out []match.Candidate
	for _, s := range addrs {
		a, err := match.ParseAddress(s)
		if err != nil {
			t.Fatalf("address %q: %v", s, err)
		}
		out = append(out, match.Candidate{Address: a})
	}
	return out
}

// get sends a manifest GET to base through the flow and returns the
// status and headers the caller sees.
func get(t *testing.T, a *Auth, f *Flow, base string) (int, http.Header, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v2/app/manifests/latest", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Transport(http.DefaultTransport, f).RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

func TestTransportFetchesAndReusesToken(t *testing.T) {
	tr := newTokenRegistry(t)
	a := New(Options{Challenge: `Basic realm="proxy"`})
	f := &Flow{Connector: "ns/reg", Addresses: candidatesOf(t, tr.srv.URL), Basic: testBasic,
		Ping: tr.srv.URL + "/v2/", Scopes: []string{"repository:app:pull"}}
	for range 3 {
		if status, _, err := get(t, a, f, tr.srv.URL); err != nil || status != http.StatusOK {
			t.Fatalf("status %d err %v", status, err)
		}
	}
	if tr.fetches != 1 {
		t.Errorf("%d token fetches, want 1", tr.fetches)
	}
}

// The stricter realm rule: a realm that is not one of the Connector's
// addresses is never sent the credential.
func TestTransportRealmOutsideAddressesGetsNothing(t *testing.T) {
	tr := newTokenRegistry(t)
	other := newTokenRegistry(t)
	tr.realm = other.realm // the registry points at another host's token service
	a := New(Options{})
	f := &Flow{Connector: "ns/reg", Addresses: candidatesOf(t, tr.srv.URL), Basic: testBasic,
		Ping: tr.srv.URL + "/v2/", Scopes: []string{"repository:app:pull"}}
	_, _, err := get(t, a, f, tr.srv.URL)
	var re *Error
	if !errors.As(err, &re) || !strings.Contains(re.Message, "not an address of connector") {
		t.Fatalf("err %v, want the realm refusal", err)
	}
	if other.fetches != 0 {
		t.Errorf("the foreign realm was asked %d times", other.fetches)
	}
	if strings.Contains(err.Error(), "dXNlcjpwYXNz") {
		t.Errorf("credential in error %q", err)
	}
}

// A 401 the caller sees carries the configured challenge, not the
// registry's realm.
func TestTransportHidesRegistryChallenge(t *testing.T) {
	tr := newTokenRegistry(t)
	a := New(Options{Challenge: `Basic realm="proxy"`})
	wrong := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:wrong"))
	f := &Flow{Connector: "ns/reg", Addresses: candidatesOf(t, tr.srv.URL), Basic: wrong,
		Ping: tr.srv.URL + "/v2/", Scopes: []string{"repository:app:pull"}}
	_, _, err := get(t, a, f, tr.srv.URL)
	var re *Error
	if !errors.As(err, &re) || !strings.Contains(re.Message, "rejected the credential") {
		t.Fatalf("err %v, want the rejected credential", err)
	}

	// A registry that keeps answering 401 to a good token.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Www-Authenticate", `Basic realm="registry-internal"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	f = &Flow{Connector: "ns/basic", Addresses: candidatesOf(t, srv.URL), Basic: testBasic, Ping: srv.URL + "/v2/"}
	status, h, err := get(t, a, f, srv.URL)
	if err != nil || status != http.StatusUnauthorized {
		t.Fatalf("status %d err %v", status, err)
	}
	if got := h.Get("Www-Authenticate"); got != `Basic realm="proxy"` {
		t.Errorf("challenge %q reached the caller", got)
	}
}

func TestCheckRealm(t *testing.T) {
	addrs := candidatesOf(t, "https://reg.example.test", "https://auth.example.test/token")
	cases := map[string]bool{
		"https://reg.example.test/token":        true,
		"https://auth.example.test/token":       true,
		"https://auth.example.test/token/sub":   true,
		"https://auth.example.test/other":       false,
		"http://reg.example.test/token":         false,
		"https://evil.example.test/token":       false,
		"https://reg.example.test:444/token":    false,
		"https://user@reg.example.test/token":   false,
		"https://reg.example.test/a/../token":   false,
		"/token":                                false,
		"":                                      false,
		"https://reg.example.test%2Fevil/token": false,
	}
	for realm, want := range cases {
		_, err := CheckRealm("ns/reg", addrs, realm)
		if (err == nil) != want {
			t.Errorf("%q: err %v, want accepted=%v", realm, err, want)
		}
	}
}
