package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/loopback"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// TestPrometheusScrapesWithTheExampleConfig runs a real Prometheus with
// the job of examples/prometheus/scrape-config.yaml against a CSI-only
// node: with the token of the example's ServiceAccount the target is up;
// with another ServiceAccount's token it is down with 403. Prometheus
// builds without Kubernetes discovery (Debian's among them), so the test
// stands in static targets carrying the discovery labels the job's
// relabelling reads; everything else is the shipped job as it is.
func TestPrometheusScrapesWithTheExampleConfig(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		testenv.SkipOrFail(t, "prometheus is not installed (make deps installs it)")
		return
	}
	env := apiserver.Start(t, apiserver.Options{})
	installRBAC(t, env, "split", "examples/prometheus/rbac.yaml")
	env.ServiceAccount(t, "monitoring", "other")
	ops, logs := startCSINode(t, env, "connectors-csi")

	for _, c := range []struct {
		sa, health, lastError string
	}{{"prometheus", "up", ""}, {"other", "down", "403"}} {
		t.Run(c.sa, func(t *testing.T) {
			dir := t.TempDir()
			tokenFile := filepath.Join(dir, "token")
			token := env.Token(t, "monitoring", c.sa, nil, time.Hour)
			require.NoError(t, os.WriteFile(tokenFile, []byte(token), 0o600))
			t.Cleanup(func() { require.NotContains(t, logs.String(), token) })
			config := exampleScrapeConfig(t, ops, tokenFile)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), config, 0o600))
			web := runPrometheus(t, prom, dir)
			var target promTarget
			require.Eventually(t, func() bool {
				target = scrapeTarget(t, web)
				return target.Health == c.health
			}, 30*time.Second, 200*time.Millisecond, "the target is %+v", target)
			require.Contains(t, target.LastError, c.lastError)
			require.Equal(t, "connectors-system", target.Labels["namespace"], "the job's relabelling ran")
			require.Equal(t, "connectors-node-abcde", target.Labels["pod"])
		})
	}
}

// exampleScrapeConfig is examples/prometheus/scrape-config.yaml with one
// static target in place of Kubernetes discovery, its discovery labels as
// the pod role sets them for a DaemonSet pod's two ports, and tokenFile in place
// of the mounted ServiceAccount token.
func exampleScrapeConfig(t *testing.T, target, tokenFile string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(apiserver.RepoRoot(), "examples", "prometheus", "scrape-config.yaml"))
	require.NoError(t, err)
	var cfg struct {
		Global        map[string]any   `json:"global,omitempty"`
		ScrapeConfigs []map[string]any `json:"scrape_configs"`
	}
	require.NoError(t, yaml.UnmarshalStrict(b, &cfg))
	require.Len(t, cfg.ScrapeConfigs, 1)
	job := cfg.ScrapeConfigs[0]
	require.Contains(t, job, "kubernetes_sd_configs")
	delete(job, "kubernetes_sd_configs")
	// The pod role's targets of one DaemonSet pod: one per container
	// port. The job keeps the one named metrics.
	pod := func(port, name string) map[string]any {
		return map[string]any{
			"targets": []string{port},
			"labels": map[string]string{
				"__meta_kubernetes_namespace":                         "connectors-system",
				"__meta_kubernetes_pod_name":                          "connectors-node-abcde",
				"__meta_kubernetes_pod_node_name":                     "node-a",
				"__meta_kubernetes_pod_label_app_kubernetes_io_name":  "connectors-node",
				"__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
				"__meta_kubernetes_pod_container_port_name":           name,
			},
		}
	}
	job["static_configs"] = []any{pod(target, "metrics"), pod("127.0.0.1:1", "proxy")}
	auth, ok := job["authorization"].(map[string]any)
	require.True(t, ok, "the job sends no token")
	require.Equal(t, "/var/run/secrets/kubernetes.io/serviceaccount/token", auth["credentials_file"], "the job sends the mounted token")
	auth["credentials_file"] = tokenFile
	job["scrape_interval"], job["scrape_timeout"] = "1s", "1s"
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	return out
}

type promTarget struct {
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
	Labels    map[string]string `json:"labels"`
}

// scrapeTarget reads the one active target from Prometheus's API.
func scrapeTarget(t *testing.T, web string) promTarget {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("http://%s/api/v1/targets?state=active", web), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return promTarget{}
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Data struct {
			ActiveTargets []promTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Data.ActiveTargets) != 1 {
		return promTarget{}
	}
	return body.Data.ActiveTargets[0]
}

// runPrometheus runs prom with dir/prometheus.yml, its data in dir/data,
// until the test ends, logging its output if the test failed, and returns
// its web address.
func runPrometheus(t *testing.T, prom, dir string) string {
	t.Helper()
	web, err := loopback.FreeAddr()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, prom, "--config.file="+filepath.Join(dir, "prometheus.yml"), //nolint:gosec // the test's own config
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+web)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", out.String())
		}
	})
	return web
}
