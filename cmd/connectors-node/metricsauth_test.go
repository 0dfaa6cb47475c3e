package main

import (
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// installRBAC creates the ServiceAccounts and RBAC of a deploy/ overlay,
// as `kubectl kustomize` renders them, and the objects of extra files.
func installRBAC(t *testing.T, env *apiserver.Env, overlay string, extra ...string) {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		testenv.SkipOrFail(t, "kubectl is not installed: run make deps")
	}
	root := apiserver.RepoRoot()
	rendered, err := exec.CommandContext(t.Context(), kubectl, "kustomize", filepath.Join(root, "deploy", "overlays", overlay)).Output() //nolint:gosec // the test's own paths
	require.NoError(t, err)
	all, err := manifests.Decode("deploy/overlays/"+overlay, rendered)
	require.NoError(t, err)
	var objs []*unstructured.Unstructured
	for _, o := range all {
		switch o.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			objs = append(objs, o)
		}
	}
	for _, f := range extra {
		more, err := manifests.Load(filepath.Join(root, f))
		require.NoError(t, err)
		objs = append(objs, more...)
	}
	require.NoError(t, manifests.Create(t.Context(), env.Client, objs))
}

// startCSINode runs a CSI-only connectors-node in this process with the
// ServiceAccount's own kubeconfig until the test ends, and returns its
// ops address once /healthz answers. (It is not ready without a proxy
// publishing the CA; the ops port serves before that.)
func startCSINode(t *testing.T, env *apiserver.Env, sa string, args ...string) (string, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	return runRole(t, env, sa, "/healthz", append([]string{"--serve=csi", "--node-id=node-a",
		"--csi-endpoint=unix://" + filepath.Join(dir, "csi.sock"), "--kubelet-root=" + dir}, args...)...)
}

type scrape struct {
	status    int
	challenge string
	body      string
}

func get(t *testing.T, ops, path, token string) scrape {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ops+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	require.NoError(t, err)
	return scrape{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), body: b.String()}
}

// TestMetricsNeedAReaderToken runs a CSI-only node as the split topology
// deploys it (the narrowest role), with the RBAC of deploy/ and the
// Prometheus ServiceAccount of examples/prometheus, on a real API server.
// /metrics answers only a token the API server accepts whose user the
// shipped reader ClusterRole allows; the probes stay open; a scrape every
// few seconds costs no API call; with the API server gone a cached reader
// still scrapes and a new token gets 503.
func TestMetricsNeedAReaderToken(t *testing.T) {
	env := apiserver.Start(t, apiserver.Options{}) // its own: the test kills it
	installRBAC(t, env, "split", "examples/prometheus/rbac.yaml")
	env.ServiceAccount(t, "monitoring", "other")
	reader := env.Token(t, "monitoring", "prometheus", nil, time.Hour)
	unseen := env.Token(t, "monitoring", "prometheus", nil, time.Hour)
	other := env.Token(t, "monitoring", "other", nil, time.Hour)
	proxyAudience := env.Token(t, "monitoring", "prometheus", []string{"connectors-proxy"}, time.Hour)

	ops, logs := startCSINode(t, env, "connectors-csi", "--pprof")
	unguarded, unguardedLogs := startCSINode(t, env, "connectors-csi", "--metrics-auth=false")
	t.Cleanup(func() {
		for _, l := range []*syncBuffer{logs, unguardedLogs} {
			for _, tok := range []string{reader, unseen, other, proxyAudience} {
				require.NotContains(t, l.String(), tok, "a token reached the log")
			}
		}
	})

	require.Equal(t, http.StatusOK, get(t, ops, "/healthz", "").status, "kubelet's liveness probe has no token")
	require.NotEqual(t, http.StatusUnauthorized, get(t, ops, "/readyz", "").status, "kubelet's readiness probe has no token")
	for name, c := range map[string]struct {
		token string
		want  int
	}{
		"no token":                {"", http.StatusUnauthorized},
		"garbage":                 {"not-a-token", http.StatusUnauthorized},
		"a proxy-audience token":  {proxyAudience, http.StatusUnauthorized},
		"a user without the role": {other, http.StatusForbidden},
	} {
		s := get(t, ops, "/metrics", c.token)
		require.Equal(t, c.want, s.status, name)
		require.NotContains(t, s.body, "go_goroutines", name)
		if c.want == http.StatusUnauthorized {
			require.True(t, strings.HasPrefix(s.challenge, "Bearer"), "%s: WWW-Authenticate %q", name, s.challenge)
		}
	}
	var s scrape
	require.Eventually(t, func() bool { s = get(t, ops, "/metrics", reader); return s.status == http.StatusOK },
		10*time.Second, 100*time.Millisecond, "the reader never scraped: %d", s.status)
	require.Contains(t, s.body, "go_goroutines")
	require.Equal(t, http.StatusForbidden, get(t, ops, "/debug/pprof/heap", reader).status, "the reader role grants /metrics alone")

	// Scrapes with a cached token and decision make no API call.
	calls := func() string {
		m := regexp.MustCompile(`(?m)^connectors_auth_api_calls_total\{result="ok",review="ops-(token|access)"\} .*$`)
		return strings.Join(m.FindAllString(get(t, ops, "/metrics", reader).body, -1), "\n")
	}
	before := calls()
	require.Contains(t, before, `review="ops-token"`)
	for range 3 {
		require.Equal(t, http.StatusOK, get(t, ops, "/metrics", reader).status)
	}
	require.Equal(t, before, calls(), "a repeated scrape called the API server")

	require.Equal(t, http.StatusOK, get(t, unguarded, "/metrics", "").status, "--metrics-auth=false serves without a token")

	// The API server goes away.
	require.NoError(t, env.Kill())
	require.Equal(t, http.StatusOK, get(t, ops, "/metrics", reader).status, "a cached reader still scrapes")
	s = get(t, ops, "/metrics", unseen)
	require.Equal(t, http.StatusServiceUnavailable, s.status, "a token that cannot be checked")
	require.NotContains(t, s.body, "go_goroutines")
	require.Equal(t, http.StatusOK, get(t, ops, "/healthz", "").status)
}
