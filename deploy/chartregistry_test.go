package deploy_test

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/registry"
	"github.com/connectors-node/connectors-node/test/servers/testpki"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// TestChartSchemaRejectsBadValues: values.schema.json refuses a bad value
// with a message naming it.
func TestChartSchemaRejectsBadValues(t *testing.T) {
	bin := filepath.Join(apiserver.RepoRoot(), "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		testenv.SkipOrFail(t, "bin/helm is missing: run `make tools`")
	}
	for set, want := range map[string]string{
		"topology=central":                 "/topology",
		"proxy.replicas=0":                 "/proxy/replicas",
		"image.pullPolicy=Sometimes":       "/image/pullPolicy",
		"nodes.extraArgs={--v=2}":          "'nodes' not allowed",
		"node.goMemLimit=lots":             "/node/goMemLimit",
		"extraArgs={v=2}":                  "/extraArgs/0",
		"publicURL=proxy.example":          "/publicURL",
		"monitoring.dashboard.enabled=yes": "/monitoring/dashboard/enabled",
	} {
		out, err := exec.CommandContext(t.Context(), bin, "template", "x", chartDir, "--set", set).CombinedOutput() //nolint:gosec // the pinned helm
		require.Error(t, err, "%s was accepted", set)
		require.Contains(t, string(out), want, "%s", set)
	}
}

// TestChartMonitoringFilesAreTheExamples: the chart ships the alerts and
// the dashboard of examples/prometheus unchanged, and renders them when
// asked.
func TestChartMonitoringFilesAreTheExamples(t *testing.T) {
	for _, f := range []string{"rules.yaml", "dashboard.json"} {
		example, err := os.ReadFile(filepath.Join("..", "examples", "prometheus", f))
		require.NoError(t, err)
		shipped, err := os.ReadFile(filepath.Join(chartDir, "files", f))
		require.NoError(t, err)
		require.Equal(t, string(example), string(shipped), "charts/connectors-node/files/%s differs from examples/prometheus/%s", f, f)
	}
	plain := byKey(t, render(t))
	for _, key := range []string{"PrometheusRule connectors-system/connectors-node", "ConfigMap connectors-system/connectors-node-dashboard"} {
		require.NotContains(t, plain, key, "monitoring objects without being asked")
	}
	for _, u := range plain {
		require.NotEqual(t, "PrometheusRule", u.GetKind(), "monitoring objects without being asked")
	}
	objs := render(t, "monitoring.prometheusRule.enabled=true", "monitoring.dashboard.enabled=true", "monitoring.prometheusRule.labels.release=kps")
	rule := byKey(t, objs)["PrometheusRule connectors-system/connectors-node"]
	require.NotNil(t, rule)
	require.Equal(t, "kps", rule.GetLabels()["release"])
	groups, _, err := unstructured.NestedSlice(rule.Object, "spec", "groups")
	require.NoError(t, err)
	require.NotEmpty(t, groups)
	cm := byKey(t, objs)["ConfigMap connectors-system/connectors-node-dashboard"]
	require.NotNil(t, cm)
	require.Equal(t, "1", cm.GetLabels()["grafana_dashboard"])
}

// TestChartFromAnOCIRegistry packages the chart as make chart does, at a
// previous version and the current one, pushes both with helm push to a
// real registry (Debian's docker-registry over TLS), installs the previous
// one with helm install oci://… onto a real API server and upgrades to the
// current one: every object keeps its UID (no DaemonSet re-creation).
func TestChartFromAnOCIRegistry(t *testing.T) {
	if _, err := os.Stat(registry.Binary); err != nil {
		testenv.SkipOrFail(t, "%s is not installed (make deps installs docker-registry)", registry.Binary)
		return
	}
	ca, err := testpki.NewCA("chart-test")
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue("127.0.0.1", "localhost")
	require.NoError(t, err)
	srv, err := registry.Start(t.Context(), registry.Config{Dir: t.TempDir(), CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: ca.PEM})
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	require.NoError(t, os.WriteFile(caFile, ca.PEM, 0o600))

	// The version make chart stamps follows git describe.
	out, err := exec.CommandContext(t.Context(), filepath.Join(apiserver.RepoRoot(), "hack", "chart-version.sh"), "v1.4.0-3-gabc1234").Output() //nolint:gosec // the repository's script
	require.NoError(t, err)
	require.Equal(t, "1.4.0-3.gabc1234\n", string(out))

	// The previous version differs in its image tag, as a release does.
	repo := "oci://" + srv.Addr + "/charts"
	for _, c := range []struct{ version, tag string }{{"1.4.0", "v1.4.0"}, {"1.4.1-1.gabc1234", "v1.4.1"}} {
		src := filepath.Join(dir, "src-"+c.version)
		require.NoError(t, os.CopyFS(src, os.DirFS(chartDir)))
		values := filepath.Join(src, "values.yaml")
		b, err := os.ReadFile(values) //nolint:gosec // the test's copy
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(values, bytes.Replace(b, []byte("tag: latest"), []byte("tag: "+c.tag), 1), 0o600)) //nolint:gosec // the test's copy of the chart
		helm(t, "package", src, "--version", c.version, "--app-version", c.tag, "--destination", dir)
		helm(t, "push", filepath.Join(dir, "connectors-node-"+c.version+".tgz"), repo, "--ca-file", caFile)
	}

	env := apiserver.Start(t, apiserver.Options{NoCRDs: true})
	kubeconfig := filepath.Join(dir, "kubeconfig")
	require.NoError(t, env.WriteAdminKubeconfig(kubeconfig))
	helmHome := t.TempDir()
	helmKube := func(args ...string) []byte {
		t.Helper()
		bin := filepath.Join(apiserver.RepoRoot(), "bin", "helm")
		cmd := exec.CommandContext(t.Context(), bin, append(args, "--kubeconfig", kubeconfig, "--ca-file", caFile)...) //nolint:gosec // the pinned helm with the test's own arguments
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"), "HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"), "HELM_DATA_HOME="+filepath.Join(helmHome, "data"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "helm %v: %s", args, out)
		return out
	}
	helmKube("install", "connectors-node", repo+"/connectors-node", "--version", "1.4.0")
	before := installed(t, env)
	require.Contains(t, before, "DaemonSet connectors-system/connectors-node")
	require.Equal(t, "connectors-node:v1.4.0", image(t, env))

	helmKube("upgrade", "connectors-node", repo+"/connectors-node", "--version", "1.4.1-1.gabc1234")
	after := installed(t, env)
	require.Equal(t, "connectors-node:v1.4.1", image(t, env), "the upgrade did not reach the DaemonSet")
	require.Equal(t, keys(before), keys(after), "the upgrade added or removed objects")
	for k, uid := range before {
		require.Equal(t, uid, after[k], "%s was re-created by the upgrade", k)
	}
}

// installed maps every object the chart installs (helm template of the
// checked-out chart names them) to its UID in the API server.
func installed(t *testing.T, env *apiserver.Env) map[string]types.UID {
	t.Helper()
	out := map[string]types.UID{}
	for _, u := range render(t) {
		if u.GetKind() == "" {
			continue
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(u.GroupVersionKind())
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: u.GetNamespace(), Name: u.GetName()}, got)
		require.NoError(t, err, "%s %s/%s is not installed", u.GetKind(), u.GetNamespace(), u.GetName())
		out[u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName()] = got.GetUID()
	}
	return out
}

func image(t *testing.T, env *apiserver.Env) string {
	t.Helper()
	ds, err := env.Kube.AppsV1().DaemonSets("connectors-system").Get(context.Background(), "connectors-node", metav1.GetOptions{})
	require.NoError(t, err)
	return ds.Spec.Template.Spec.Containers[0].Image
}

func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
