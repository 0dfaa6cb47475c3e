package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/kubelet"
	"github.com/connectors-node/connectors-node/test/servers/loopback"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// ruleFile is the shipped rule file's shape.
type ruleFile struct {
	Groups []struct {
		Name  string           `json:"name"`
		Rules []map[string]any `json:"rules"`
	} `json:"groups"`
}

// TestDashboardAndAlertsAgainstPrometheus runs a real Prometheus, with the
// scrape job of examples/prometheus/scrape-config.yaml (and its metrics
// token) and the alerts of examples/prometheus/rules.yaml, against a node
// serving both roles on a real API server, through a story: volumes
// published, requests proxied, then one fault after another. Before the
// faults no alert is pending or firing; each alert fires under its fault:
// requests without a token (auth refusals), with the token of a pod whose
// ServiceAccount may not use the Connector (binding refusals), to an
// upstream that is gone (5xx ratio), volumes of a missing Connector
// (publishes failing), a CA Secret replaced by one that expires in a week
// (CA near expiry), and the API server stopped (breaker open, and the
// status Lease lost). At the end every query of every panel of
// examples/prometheus/dashboard.json returns series: a metric renamed in
// the code, the dashboard or the rules fails the test.
//
// To keep it fast, Prometheus scrapes and evaluates every second and the
// rule file is rewritten with every `for:` at 1s; expressions, metric
// names and thresholds are the shipped ones.
func TestDashboardAndAlertsAgainstPrometheus(t *testing.T) {
	testenv.NeedRoot(t, "volumes (tmpfs mounts)")
	prom := lookPrometheus(t)
	env := apiserver.Start(t, apiserver.Options{})
	ctx := context.Background()
	installRBAC(t, env, "node", "examples/prometheus/rbac.yaml", "examples/connectorclass-api.yaml")
	// The class probes the API's liveness, for the status probes panel.
	class := &v1alpha1.ConnectorClass{}
	require.NoError(t, env.Client.Get(ctx, client.ObjectKey{Name: "bearer-api"}, class))
	class.Spec.LivenessProbe = &v1alpha1.Probe{HTTP: &v1alpha1.HTTPProbe{Path: "/status"}}
	require.NoError(t, env.Client.Update(ctx, class))
	const node = "node-a"
	require.NoError(t, kubelet.RegisterNode(ctx, env.Kube, node))

	// An HTTPS API that wants a bearer token, its Connector, a pod allowed
	// to use it and a pod that is not.
	const apiToken = "api-secret-9876543210"
	ns, api := bearerAPIConnector(ctx, t, env, apiToken)
	env.ServiceAccount(t, ns, "app")
	env.ServiceAccount(t, ns, "other")
	env.AllowConnectors(t, ns, ns, "app")
	app, err := kubelet.RunPod(ctx, env.Kube, kubelet.Pod{Namespace: ns, Name: "app-1", ServiceAccount: "app"}, node, "127.0.0.1")
	require.NoError(t, err)
	other, err := kubelet.RunPod(ctx, env.Kube, kubelet.Pod{Namespace: ns, Name: "other-1", ServiceAccount: "other"}, node, "127.0.0.1")
	require.NoError(t, err)

	// The node, both roles, as the node topology runs it.
	proxyAddr, err := loopback.FreeAddr()
	require.NoError(t, err)
	publicURL := "http://localhost:" + strings.Split(proxyAddr, ":")[1]
	socket := filepath.Join(t.TempDir(), "csi.sock")
	kubeletRoot := t.TempDir()
	ops, logs := runRole(t, env, "connectors-node", "/readyz", "--node-id="+node, "--csi-endpoint=unix://"+socket,
		"--kubelet-root="+kubeletRoot, "--proxy-listen="+proxyAddr, "--public-url="+publicURL, "--allow-loopback-upstreams")
	t.Cleanup(func() { require.NotContains(t, logs.String(), apiToken, "a credential reached a log") })
	kl, err := kubelet.Dial(socket)
	require.NoError(t, err)
	t.Cleanup(func() { _ = kl.Close() })

	// Prometheus: the example's job with the example's ServiceAccount token.
	web := startPrometheus(t, env, prom, ops)
	p := &promAPI{t: t, web: web}
	require.Eventually(t, func() bool { return scrapeTarget(t, web).Health == "up" }, time.Minute, 200*time.Millisecond, "the node is never scraped")
	require.Eventually(t, func() bool { return p.value(`max(connectors_status_leader)`) == 1 }, time.Minute, 200*time.Millisecond, "the node never leads status")

	// The story, healthy: a volume published, requests proxied.
	appToken, err := kubelet.MintToken(ctx, env.Kube, app, "connectors-proxy", time.Hour)
	require.NoError(t, err)
	otherToken, err := kubelet.MintToken(ctx, env.Kube, other, "connectors-proxy", time.Hour)
	require.NoError(t, err)
	publish := func(volume, connectors string) error {
		target := filepath.Join(kubeletRoot, "pods", app.UID, "volumes", "kubernetes.io~csi", volume, "mount")
		require.NoError(t, os.MkdirAll(target, 0o750))
		t.Cleanup(func() { _ = kl.Unpublish(context.Background(), volume, target) })
		return kl.Publish(ctx, volume, target, app, map[string]string{"connectors": connectors}, map[string]kubelet.Token{"connectors-proxy": appToken})
	}
	require.NoError(t, publish("vol-1", "api"))
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	apiURL := publicURL + "/namespaces/" + ns + "/connectors/api/status"
	request := func(token string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	// traffic sends n requests over about three seconds (three scrapes):
	// a series born with the first of them needs later samples to rise.
	traffic := func(n int, token string, want int) {
		t.Helper()
		for range n {
			require.Equal(t, want, request(token))
			time.Sleep(3 * time.Second / time.Duration(n))
		}
	}
	traffic(30, appToken.Token, http.StatusOK)
	time.Sleep(5 * time.Second) // five evaluations
	require.Empty(t, p.alerts(), "alerts are pending or firing on a healthy node")

	// Faults, one after another; each one's alert fires.
	traffic(300, "", http.StatusUnauthorized)
	p.waitFiring("ConnectorsProxyAuthRefusalsSpiking")
	traffic(300, otherToken.Token, http.StatusForbidden)
	p.waitFiring("ConnectorsProxyBindingRefusalsSpiking")
	api.Close()
	traffic(100, appToken.Token, http.StatusBadGateway)
	p.waitFiring("ConnectorsProxyErrorRatioHigh")
	for i := range 5 {
		require.Error(t, publish(fmt.Sprintf("vol-missing-%d", i), "missing"))
		time.Sleep(600 * time.Millisecond)
	}
	p.waitFiring("ConnectorsVolumePublishFailing")
	nearExpiry, err := ca.NewCA("connectors-proxy-ca-old", time.Now().Add(-10*365*24*time.Hour+7*24*time.Hour))
	require.NoError(t, err)
	der, err := x509.MarshalECPrivateKey(nearExpiry.Key)
	require.NoError(t, err)
	secret, err := env.Kube.CoreV1().Secrets("connectors-system").Get(ctx, "connectors-proxy-ca", metav1.GetOptions{})
	require.NoError(t, err)
	secret.Data = map[string][]byte{"tls.crt": nearExpiry.CertPEM, "tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})}
	_, err = env.Kube.CoreV1().Secrets("connectors-system").Update(ctx, secret, metav1.UpdateOptions{})
	require.NoError(t, err)
	p.waitFiring("ConnectorsProxyCANearExpiry")

	// The API server stops answering: a new token's review times out,
	// which opens the breaker, and the status Lease is not renewed.
	fresh, err := kubelet.MintToken(ctx, env.Kube, app, "connectors-proxy", time.Hour)
	require.NoError(t, err)
	require.NoError(t, env.Pause())
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = env.Resume()
		}
	})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { request(fresh.Token) })
	}
	p.waitFiring("ConnectorsAPIBreakerOpen")
	p.waitFiring("ConnectorsStatusWriterWithoutLeader")
	require.NoError(t, env.Resume())
	resumed = true
	wg.Wait()

	// Every panel's queries return series from what the node exports.
	b, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), "examples", "prometheus", "dashboard.json"))
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	require.NotEmpty(t, dash.Panels)
	for _, panel := range dash.Panels {
		require.NotEmpty(t, panel.Targets, "panel %q has no query", panel.Title)
		for _, target := range panel.Targets {
			// Grafana's $__rate_interval: the whole story.
			expr := strings.ReplaceAll(target.Expr, "$__rate_interval", "5m")
			require.NotEmpty(t, p.query(expr), "panel %q: %s returns no series", panel.Title, expr)
		}
	}
}

// lookPrometheus returns Debian's prometheus, or skips (fails in CI).
func lookPrometheus(t *testing.T) string {
	t.Helper()
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		testenv.SkipOrFail(t, "prometheus is not installed (make deps installs it)")
	}
	return prom
}

// startPrometheus runs Prometheus with the example's scrape job against
// ops, every second, and the shipped rules with every `for:` at 1s, and
// returns its web address.
func startPrometheus(t *testing.T, env *apiserver.Env, prom, ops string) string {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(env.Token(t, "monitoring", "prometheus", nil, time.Hour)), 0o600))
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(exampleScrapeConfig(t, ops, tokenFile), &cfg))
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	cfg["rule_files"] = []string{filepath.Join(dir, "rules.yaml")}
	b, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), b, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yaml"), shortRules(t), 0o600))

	return runPrometheus(t, prom, dir)
}

// shortRules is examples/prometheus/rules.yaml with every `for:` at 1s.
func shortRules(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), "examples", "prometheus", "rules.yaml"))
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.UnmarshalStrict(b, &rf))
	require.NotEmpty(t, rf.Groups)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			require.Contains(t, r, "for", "alert %v has no for:", r["alert"])
			r["for"] = "1s"
		}
	}
	out, err := yaml.Marshal(rf)
	require.NoError(t, err)
	return out
}

// promAPI queries a running Prometheus.
type promAPI struct {
	t   *testing.T
	web string
}

func (p *promAPI) get(path string, into any) {
	p.t.Helper()
	req, err := http.NewRequestWithContext(p.t.Context(), http.MethodGet, "http://"+p.web+path, nil)
	require.NoError(p.t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(p.t, err)
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	require.NoError(p.t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(p.t, "success", body.Status, "%s: %s", path, body.Error)
	require.NoError(p.t, json.Unmarshal(body.Data, into))
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query evaluates expr now and returns its series.
func (p *promAPI) query(expr string) []promSample {
	p.t.Helper()
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	p.get("/api/v1/query?query="+url.QueryEscape(expr), &data)
	require.Equal(p.t, "vector", data.ResultType, expr)
	return data.Result
}

// value is the value of expr's one series, or -1 without one.
func (p *promAPI) value(expr string) float64 {
	p.t.Helper()
	r := p.query(expr)
	if len(r) != 1 {
		return -1
	}
	var v float64
	s, _ := r[0].Value[1].(string)
	_, _ = fmt.Sscan(s, &v)
	return v
}

// alerts returns the pending and firing alerts by name and state.
func (p *promAPI) alerts() map[string]string {
	p.t.Helper()
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	p.get("/api/v1/alerts", &data)
	out := map[string]string{}
	for _, a := range data.Alerts {
		out[a.Labels["alertname"]] = a.State
	}
	return out
}

// waitFiring waits until the alert name fires.
func (p *promAPI) waitFiring(name string) {
	p.t.Helper()
	var seen map[string]string
	require.Eventually(p.t, func() bool {
		seen = p.alerts()
		return seen[name] == "firing"
	}, 90*time.Second, 250*time.Millisecond, "%s never fired; alerts: %v", name, seen)
}
