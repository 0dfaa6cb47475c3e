package status_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// classAPI is a ConnectorClass API server as upstream specifies one: it
// reads the Connector from X-Plugin-Meta, X-Plugin-Auth and X-Plugin-Secret.
type classAPI struct {
	*httptest.Server
	mu   sync.Mutex
	seen []apiRequest
}

type apiRequest struct {
	path, baseURL, secretType, username, password string
}

func startClassAPI(t *testing.T) *classAPI {
	t.Helper()
	a := &classAPI{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req apiRequest
		req.path = r.URL.RequestURI()
		if meta, err := base64.StdEncoding.DecodeString(r.Header.Get("X-Plugin-Meta")); err == nil {
			var m struct {
				BaseURL string `json:"baseURL"`
			}
			_ = json.Unmarshal(meta, &m)
			req.baseURL = m.BaseURL
		}
		if typ, err := base64.StdEncoding.DecodeString(r.Header.Get("X-Plugin-Auth")); err == nil {
			req.secretType = string(typ)
		}
		if raw, err := base64.StdEncoding.DecodeString(r.Header.Get("X-Plugin-Secret")); err == nil {
			var data map[string][]byte // values base64, as Kubernetes writes Secret data
			_ = json.Unmarshal(raw, &data)
			req.username, req.password = string(data["username"]), string(data["password"])
		}
		a.mu.Lock()
		a.seen = append(a.seen, req)
		a.mu.Unlock()
		switch r.URL.Path {
		case "/api/health":
			w.WriteHeader(http.StatusOK)
		case "/api/auth/check":
			if req.username != upstreamUser || req.password != upstreamPass {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *classAPI) requests() []apiRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]apiRequest(nil), a.seen...)
}

func apiClass(name, apiURI string) *v1alpha1.ConnectorClass {
	return &v1alpha1.ConnectorClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ConnectorClassSpec{
			Address: &v1alpha1.ParamSpec{Name: "address", Type: "string"},
			Auth: v1alpha1.ConnectorClassAuth{Types: []v1alpha1.AuthType{
				{Name: "basicAuth", SecretType: string(corev1.SecretTypeBasicAuth)},
			}},
			API:           &v1alpha1.APISpec{Destination: v1alpha1.Destination{URI: apiURI}},
			LivenessProbe: &v1alpha1.Probe{API: &v1alpha1.APIProbe{Path: "/health"}},
			AuthProbes: []v1alpha1.AuthProbe{{AuthName: "basicAuth", Probe: &v1alpha1.Probe{
				API: &v1alpha1.APIProbe{Path: "/auth/check?repo={{ .Connector.Name }}"},
			}}},
		},
	}
}

// TestAPIProbesGoToTheClassAPI runs api probes against a real class API:
// the class gets status.api.address and APIReady; liveness and auth go
// below the API address with upstream's X-Plugin headers; a wrong password
// is CredentialsRejected; a path that climbs out of the API address is
// refused before anything is sent; a class without spec.api says so.
func TestAPIProbesGoToTheClassAPI(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "apiprobe")
	api := startClassAPI(t)
	tool := startUpstream(t)
	n := startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})
	ctx := context.Background()

	cls := apiClass("api-"+ns, api.URL+"/api/")
	create(t, env, cls, basicSecret(ns, "tool-auth", upstreamPass), gitConnector(t, ns, "tool", cls.Name, tool.URL, "tool-auth"))
	waitReady(t, env, ns, "tool", status.True, "")

	eventually(t, "class API status", func() (bool, string) {
		var got v1alpha1.ConnectorClass
		require.NoError(t, env.Client.Get(ctx, client.ObjectKey{Name: cls.Name}, &got))
		c := findCond(got.Status.Conditions, status.TypeAPIReady)
		if got.Status.API == nil || got.Status.API.Address == nil || c == nil {
			return false, "no API status"
		}
		return got.Status.API.Address.URL == api.URL+"/api" && c.Status == status.True, got.Status.API.Address.URL + " " + c.Status
	})
	var sawAuth, sawLive bool
	for _, r := range api.requests() {
		switch r.path {
		case "/api/auth/check?repo=tool":
			sawAuth = true
			require.Equal(t, tool.URL, r.baseURL, "X-Plugin-Meta carries spec.address")
			require.Equal(t, string(corev1.SecretTypeBasicAuth), r.secretType)
			require.Equal(t, upstreamPass, r.password)
		case "/api/health":
			sawLive = true
		}
	}
	require.True(t, sawAuth && sawLive, "%+v", api.requests())
	require.Zero(t, tool.hits.Load(), "api probes go to the class API, not the tool")

	// The class API rejects the credential.
	require.NoError(t, env.Client.Update(ctx, basicSecret(ns, "tool-auth", "wrong-password")))
	c := waitReady(t, env, ns, "tool", status.False, status.ReasonCredentialsRejected)
	require.Contains(t, condition(c, status.TypeAuthReady).Message, "spec.authProbes[0].probe.api: GET "+api.URL+"/api/auth/check")
	require.NoError(t, env.Client.Update(ctx, basicSecret(ns, "tool-auth", upstreamPass)))
	waitReady(t, env, ns, "tool", status.True, "")

	// A path that climbs out of the API address is refused unsent.
	var got v1alpha1.ConnectorClass
	require.NoError(t, env.Client.Get(ctx, client.ObjectKey{Name: cls.Name}, &got))
	got.Spec.AuthProbes[0].Probe.API.Path = "/../admin"
	require.NoError(t, env.Client.Update(ctx, &got))
	c = waitReady(t, env, ns, "tool", status.False, status.ReasonProbeTargetRefused)
	require.Contains(t, condition(c, status.TypeAuthReady).Message, "not under the connectorclass API address")
	for _, r := range api.requests() {
		require.NotEqual(t, "/admin", r.path, "the credential went outside the API address")
	}

	// Without spec.api an api probe is the class's fault, named by field.
	noAPI := apiClass("noapi-"+ns, "")
	noAPI.Spec.API = nil
	create(t, env, noAPI, gitConnector(t, ns, "noapi", noAPI.Name, tool.URL, "tool-auth"))
	c = waitReady(t, env, ns, "noapi", status.False, status.ReasonProbeInvalid)
	require.Contains(t, condition(c, status.TypeLivenessReady).Message, `connectorclass "`+noAPI.Name+`" spec.livenessProbe.api: spec.api: required`)

	// A class API that does not answer is APIReady False.
	down := apiClass("down-"+ns, "http://127.0.0.1:1/api")
	create(t, env, down)
	eventually(t, "APIReady False", func() (bool, string) {
		var got v1alpha1.ConnectorClass
		require.NoError(t, env.Client.Get(ctx, client.ObjectKey{Name: down.Name}, &got))
		c := findCond(got.Status.Conditions, status.TypeAPIReady)
		if c == nil {
			return false, "none"
		}
		return c.Status == status.False && c.Reason == status.ReasonAPIUnreachable, c.Status + " " + c.Message
	})

	require.NotContains(t, n.logs.String(), upstreamPass)
}

func findCond(conds []v1alpha1.Condition, typ string) *v1alpha1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}
