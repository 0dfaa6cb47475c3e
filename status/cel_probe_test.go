package status_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// jsonTool is a tool with a JSON health endpoint and a user endpoint that
// wants Basic upstreamUser:upstreamPass and echoes the Authorization it got
// (as debugging endpoints do), so a message quoting the answer would leak.
type jsonTool struct {
	*httptest.Server
	health atomic.Value // string
}

func startJSONTool(t *testing.T) *jsonTool {
	t.Helper()
	tool := &jsonTool{}
	tool.health.Store("healthy")
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(upstreamUser+":"+upstreamPass))
	tool.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Tool", "json-tool")
		switch r.URL.Path {
		case "/health":
			_ = json.NewEncoder(w).Encode(map[string]any{"status": tool.health.Load(), "uptime": 120})
		case "/api/user":
			if r.Header.Get("Authorization") != want {
				w.WriteHeader(http.StatusUnauthorized)
				_ = json.NewEncoder(w).Encode(map[string]any{"message": "bad credentials", "got": r.Header.Get("Authorization")})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"login": upstreamUser, "got": r.Header.Get("Authorization")})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(tool.Close)
	return tool
}

func celClass(name, liveCEL, authCEL string) *v1alpha1.ConnectorClass {
	return &v1alpha1.ConnectorClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ConnectorClassSpec{
			Address: &v1alpha1.ParamSpec{Name: "address", Type: "string"},
			Auth: v1alpha1.ConnectorClassAuth{Types: []v1alpha1.AuthType{
				{Name: "basicAuth", SecretType: string(corev1.SecretTypeBasicAuth)},
			}},
			LivenessProbe: &v1alpha1.Probe{HTTP: &v1alpha1.HTTPProbe{Path: "/health",
				Response: &v1alpha1.ProbeResponse{CEL: liveCEL}}},
			AuthProbes: []v1alpha1.AuthProbe{{AuthName: "basicAuth", Probe: &v1alpha1.Probe{HTTP: &v1alpha1.HTTPProbe{
				Path: "/api/user", Response: &v1alpha1.ProbeResponse{CEL: authCEL},
			}}}},
		},
	}
}

func setAuthCEL(t *testing.T, env *apiserver.Env, class, expr string) {
	t.Helper()
	var cls v1alpha1.ConnectorClass
	require.NoError(t, env.Client.Get(context.Background(), client.ObjectKey{Name: class}, &cls))
	cls.Spec.AuthProbes[0].Probe.HTTP.Response.CEL = expr
	require.NoError(t, env.Client.Update(context.Background(), &cls))
}

// TestResponseCELJudgesProbes runs class probes with response.cel against
// a real tool: the expression sees the status, headers and JSON body; a
// false expression, a failing one and one that does not compile are
// conditions naming the field; none of them carries the credential.
func TestResponseCELJudgesProbes(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "cel")
	tool := startJSONTool(t)
	n := startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})
	ctx := context.Background()

	cls := celClass("cel-"+ns,
		`response.statusCode == 200 && response.body.status == 'healthy' && response.body.uptime > 60`,
		`response.statusCode == 200 && response.body.login == 'probe-bot' && response.headers['x-tool'][0] == 'json-tool'`)
	conn := gitConnector(t, ns, "tool", cls.Name, tool.URL, "tool-auth")
	create(t, env, cls, basicSecret(ns, "tool-auth", upstreamPass), conn)
	waitReady(t, env, ns, "tool", status.True, "")

	// The tool answers 200 but says it is degraded: liveness is false.
	tool.health.Store("degraded")
	c := waitReady(t, env, ns, "tool", status.False, status.ReasonToolUnreachable)
	msg := condition(c, status.TypeLivenessReady).Message
	require.Contains(t, msg, "spec.livenessProbe.http.response.cel")
	require.Contains(t, msg, "is false")
	require.Contains(t, msg, "answered 200")
	tool.health.Store("healthy")
	waitReady(t, env, ns, "tool", status.True, "")

	// A wrong password: the tool answers 401, the expression is false.
	s := basicSecret(ns, "tool-auth", "wrong-password")
	require.NoError(t, env.Client.Update(ctx, s))
	c = waitReady(t, env, ns, "tool", status.False, status.ReasonCredentialsRejected)
	require.Contains(t, condition(c, status.TypeAuthReady).Message, "spec.authProbes[0].probe.http.response.cel")
	s = basicSecret(ns, "tool-auth", upstreamPass)
	require.NoError(t, env.Client.Update(ctx, s))
	waitReady(t, env, ns, "tool", status.True, "")

	// An expression that fails at run time on the echoed credential: its
	// error quotes the value, the condition does not.
	setAuthCEL(t, env, cls.Name, `response.body[response.body.got] == 1`)
	c = waitReady(t, env, ns, "tool", status.False, status.ReasonAuthProbeFailed)
	msg = condition(c, status.TypeAuthReady).Message
	require.Contains(t, msg, "spec.authProbes[0].probe.http.response.cel")
	require.Contains(t, msg, "failed: no such key")
	require.Contains(t, msg, "[redacted]")

	// One that does not compile is the class's fault, named by field.
	compiles := testutil.ToFloat64(metricVec(n.reg, "connectors_status_cel_compiles_total"))
	setAuthCEL(t, env, cls.Name, `response.statusCode ==`)
	c = waitReady(t, env, ns, "tool", status.False, status.ReasonProbeInvalid)
	msg = condition(c, status.TypeAuthReady).Message
	require.Contains(t, msg, `connectorclass "`+cls.Name+`" spec.authProbes[0].probe.http.response.cel: does not compile`)
	// Probes go on (the liveness probe still runs every interval); the
	// class generation is compiled once, not once per probe.
	probes := testutil.ToFloat64(metricVec(n.reg, "connectors_status_probes_total"))
	eventually(t, "more probe rounds", func() (bool, string) {
		return testutil.ToFloat64(metricVec(n.reg, "connectors_status_probes_total")) >= probes+4, "waiting"
	})
	require.LessOrEqual(t, testutil.ToFloat64(metricVec(n.reg, "connectors_status_cel_compiles_total"))-compiles, 2.0,
		"one compile per changed field of the new generation")

	// Nothing written or logged holds the credential in any form.
	basic := base64.StdEncoding.EncodeToString([]byte(upstreamUser + ":" + upstreamPass))
	var events corev1.EventList
	require.NoError(t, env.Client.List(ctx, &events, client.InNamespace(ns)))
	for _, e := range events.Items {
		require.NotContains(t, e.Message, upstreamPass)
		require.NotContains(t, e.Message, basic)
	}
	for _, cd := range getConnector(t, env, ns, "tool").Status.Conditions {
		require.NotContains(t, cd.Message, upstreamPass)
		require.NotContains(t, cd.Message, basic)
	}
	require.NotContains(t, n.logs.String(), upstreamPass)
	require.NotContains(t, n.logs.String(), basic)
}
