package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// chartDir is the Helm chart, beside deploy/.
var chartDir = filepath.Join("..", "charts", "connectors-node")

// helm runs the pinned helm of bin/ (make tools) and returns its output.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := filepath.Join(apiserver.RepoRoot(), "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		testenv.SkipOrFail(t, "bin/helm is missing: run `make tools`")
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, args...) //nolint:gosec // the pinned helm with the test's own arguments
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	require.NoError(t, cmd.Run(), "helm %v: %s%s", args, out.String(), errb.String())
	return out.Bytes()
}

// render is `helm template` of the chart with the CRDs, decoded.
func render(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "connectors-node", chartDir, "--include-crds"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	objs, err := manifests.Decode("helm template", helm(t, args...))
	require.NoError(t, err)
	return objs
}

func TestChartLints(t *testing.T) {
	for _, topology := range []string{"node", "split"} {
		t.Run(topology, func(t *testing.T) {
			helm(t, "lint", "--strict", chartDir, "--set", "topology="+topology)
		})
	}
	out, err := exec.CommandContext(t.Context(), filepath.Join(apiserver.RepoRoot(), "bin", "helm"), "template", "x", chartDir, "--set", "topology=central").CombinedOutput() //nolint:gosec // the pinned helm
	require.Error(t, err, "an unknown topology must fail")
	require.Contains(t, string(out), "/topology")
}

// TestChartEqualsKustomize renders the chart with its default values for
// each topology, and with the Connectors API gateway on, and compares every
// object with the kustomize overlay's.
func TestChartEqualsKustomize(t *testing.T) {
	for overlay, set := range map[string][]string{
		"node":           {"topology=node"},
		"split":          {"topology=split"},
		"connectors-api": {"topology=node", "connectorsAPI.enabled=true"},
	} {
		t.Run(overlay, func(t *testing.T) {
			want := byKey(t, kustomize(t, "overlays/"+overlay))
			got := byKey(t, render(t, set...))
			require.ElementsMatch(t, keysOf(want), keysOf(got), "the chart and the overlay install different objects")
			for k, w := range want {
				require.Equal(t, w.Object, got[k].Object, "%s differs between the chart and the overlay", k)
			}
		})
	}
}

func byKey(t *testing.T, objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	t.Helper()
	m := map[string]*unstructured.Unstructured{}
	for _, u := range objs {
		k := u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
		require.NotContains(t, m, k, "%s twice", k)
		m[k] = u
	}
	return m
}

// TestChartValues checks that the values choose the topology, image,
// resources, flags and the Service name.
func TestChartValues(t *testing.T) {
	objs := render(t, "topology=split", "serviceName=central-proxy", "image.repository=registry.example/connectors-node",
		"image.tag=v1.2.3", "proxy.replicas=3", "extraArgs={--v=2}", "proxy.extraArgs={--allow-unmatched-tunnels}",
		"proxy.resources.limits.memory=512Mi")
	svc := find[corev1.Service](t, objs, "Service", "central-proxy")
	require.Equal(t, "connectors-system", svc.Namespace)
	dep := find[appsv1.Deployment](t, objs, "Deployment", "central-proxy")
	require.Equal(t, int32(3), *dep.Spec.Replicas)
	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "connectors-node")
	proxy, node := dep.Spec.Template.Spec.Containers[0], ds.Spec.Template.Spec.Containers[0]
	for _, c := range []corev1.Container{proxy, node} {
		require.Equal(t, "registry.example/connectors-node:v1.2.3", c.Image)
		require.Equal(t, "http://central-proxy.connectors-system.svc", flagValue(c.Args, "--public-url"), "%s writes or serves another address", c.Name)
		require.Contains(t, c.Args, "--v=2")
	}
	require.Contains(t, proxy.Args, "--allow-unmatched-tunnels")
	require.NotContains(t, node.Args, "--allow-unmatched-tunnels")
	require.Equal(t, "512Mi", proxy.Resources.Limits.Memory().String())
	find[corev1.ServiceAccount](t, objs, "ServiceAccount", "connectors-proxy")

	for _, u := range render(t, "networkPolicy.enabled=false") {
		require.NotEqual(t, "NetworkPolicy", u.GetKind(), "networkPolicy.enabled=false still installs one")
	}
	np := find[networkingv1.NetworkPolicy](t, render(t, "networkPolicy.metricsNamespaceSelector.matchLabels.team=monitoring"),
		"NetworkPolicy", "connectors-node")
	require.Equal(t, "monitoring", np.Spec.Ingress[1].From[0].NamespaceSelector.MatchLabels["team"])

	// The Connectors API gateway runs where the proxy role does.
	objs = render(t, "topology=split", "connectorsAPI.enabled=true", "connectorsAPI.permissions=true", "connectorsAPI.writePassthrough=true")
	api := find[corev1.Service](t, objs, "Service", "connectors-api")
	require.Equal(t, "proxy", api.Spec.Selector["app.kubernetes.io/component"])
	proxy = find[appsv1.Deployment](t, objs, "Deployment", "connectors-proxy").Spec.Template.Spec.Containers[0]
	node = find[appsv1.DaemonSet](t, objs, "DaemonSet", "connectors-node").Spec.Template.Spec.Containers[0]
	require.Equal(t, ":8081", flagValue(proxy.Args, "--connectors-api-listen"))
	require.Contains(t, proxy.Args, "--enable-connector-apis-permissions")
	require.Contains(t, proxy.Args, "--enable-connector-apis-write-passthrough")
	require.Empty(t, flagValue(node.Args, "--connectors-api-listen"), "a CSI-only node serves no gateway")

	node2 := find[appsv1.DaemonSet](t, render(t, "serviceName=px", "publicURL=https://proxy.example:8443"), "DaemonSet", "connectors-node")
	require.Equal(t, "https://proxy.example:8443", flagValue(node2.Spec.Template.Spec.Containers[0].Args, "--public-url"))
}

// TestChartAppliesToARealAPIServer creates the chart's objects, for each
// topology, in a real API server.
func TestChartAppliesToARealAPIServer(t *testing.T) {
	for _, topology := range []string{"node", "split"} {
		t.Run(topology, func(t *testing.T) {
			objs := render(t, "topology="+topology)
			env := apiserver.Start(t, apiserver.Options{NoCRDs: true})
			require.NoError(t, manifests.Create(context.Background(), env.Client, objs))
		})
	}
}
