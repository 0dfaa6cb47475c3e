// Package deploy_test checks the manifests in deploy/: they parse, agree
// with the binary's defaults, and a real API server accepts them.
package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// loadAll reads the objects `kubectl apply -k deploy/` installs, checking
// first that deploy/base/kustomization.yaml lists every manifest beside it.
func loadAll(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
	}
	b, err := os.ReadFile("base/kustomization.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.UnmarshalStrict(b, &k, yaml.DisallowUnknownFields), "base/kustomization.yaml")

	// Every manifest in the directory is listed.
	files, err := filepath.Glob("base/*.yaml")
	require.NoError(t, err)
	crds, err := filepath.Glob("base/crds/*.yaml")
	require.NoError(t, err)
	for _, f := range append(files, crds...) {
		if f != "base/kustomization.yaml" {
			require.Contains(t, k.Resources, strings.TrimPrefix(f, "base/"), "base/kustomization.yaml does not list %s", f)
		}
	}
	return kustomize(t, ".")
}

func find[T any](t *testing.T, objs []*unstructured.Unstructured, kind, name string) *T {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			b, err := u.MarshalJSON()
			require.NoError(t, err)
			var out T
			require.NoError(t, yaml.UnmarshalStrict(b, &out), "%s %s", kind, name)
			return &out
		}
	}
	t.Fatalf("no %s %q in the manifests", kind, name)
	return nil
}

func TestCSIDriverMatchesTheBinary(t *testing.T) {
	objs := loadAll(t)
	d := find[storagev1.CSIDriver](t, objs, "CSIDriver", csi.DriverName)
	require.False(t, *d.Spec.AttachRequired)
	require.True(t, *d.Spec.PodInfoOnMount)
	require.True(t, *d.Spec.RequiresRepublish)
	require.Equal(t, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral}, d.Spec.VolumeLifecycleModes)
	require.Len(t, d.Spec.TokenRequests, 1)
	require.Equal(t, csi.DefaultAudience, d.Spec.TokenRequests[0].Audience)
	require.NotNil(t, d.Spec.TokenRequests[0].ExpirationSeconds)

	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "connectors-node")
	node := ds.Spec.Template.Spec.Containers[0]
	require.Contains(t, node.Args, "--audience="+csi.DefaultAudience)
	require.Contains(t, node.Args, "--public-url="+publicurl.Default)
}

func TestDaemonSet(t *testing.T) {
	objs := loadAll(t)
	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "connectors-node")
	spec := ds.Spec.Template.Spec
	require.Equal(t, "connectors-node", spec.ServiceAccountName)

	names := map[string]corev1.Container{}
	for _, c := range spec.Containers {
		names[c.Name] = c
		require.NotEmpty(t, c.Resources.Requests, "%s has no resource requests", c.Name)
		require.NotEmpty(t, c.Resources.Limits, "%s has no resource limits", c.Name)
	}
	for _, want := range []string{"connectors-node", "node-driver-registrar", "liveness-probe"} {
		require.Contains(t, names, want)
	}
	node := names["connectors-node"]
	require.NotNil(t, node.LivenessProbe)
	require.NotNil(t, node.ReadinessProbe)
	require.True(t, *node.SecurityContext.Privileged, "mounting tmpfs needs a privileged container")

	// The Go runtime's soft memory limit must sit below the container's
	// limit, or the kernel kills the proxy before the collector works hard.
	var memLimit string
	for _, e := range node.Env {
		if e.Name == "GOMEMLIMIT" {
			memLimit = e.Value
		}
	}
	require.NotEmpty(t, memLimit, "GOMEMLIMIT is not set")
	soft, err := resource.ParseQuantity(strings.TrimSuffix(memLimit, "B"))
	require.NoError(t, err, "GOMEMLIMIT %q", memLimit)
	hard := node.Resources.Limits[corev1.ResourceMemory]
	require.Negative(t, soft.Cmp(hard), "GOMEMLIMIT %s is not below the memory limit %s", memLimit, hard.String())
	// Sized from make bench-memory: at 1,500 connections (the
	// --max-connections below) RSS peaked at 186 MiB. The binary's
	// file-backed code and data, which GOMEMLIMIT does not count, are up to
	// 68 MiB at start-up (before --release-startup-pages drops the start-up
	// pages; about 21 MiB after). The limit keeps 64 MiB above the peak, and
	// the soft limit plus the whole file-backed part stays below the limit.
	measured, fileBacked := resource.MustParse("186Mi"), resource.MustParse("68Mi")
	headroom := hard.DeepCopy()
	headroom.Sub(measured)
	require.GreaterOrEqual(t, headroom.Cmp(resource.MustParse("64Mi")), 0, "memory limit %s leaves less than 64Mi above the measured %s", hard.String(), measured.String())
	goAndFile := soft.DeepCopy()
	goAndFile.Add(fileBacked)
	require.Negative(t, goAndFile.Cmp(hard), "GOMEMLIMIT %s plus the binary's %s of mapped code is not below the limit %s", memLimit, fileBacked.String(), hard.String())
	// The request covers the measured RSS with 1,000 Connectors cached, 100
	// volumes and 100 connections of load: 58-63 MiB (GOGC=100, start-up pages
	// released).
	req := node.Resources.Requests[corev1.ResourceMemory]
	require.GreaterOrEqual(t, req.Cmp(resource.MustParse("64Mi")), 0, "memory request %s is below the measured 63 MiB", req.String())
	gogc := ""
	for _, e := range node.Env {
		if e.Name == "GOGC" {
			gogc = e.Value
		}
	}
	require.Equal(t, "100", gogc, "the request is measured with GOGC=100; a higher GOGC needs a larger request")
	require.NotContains(t, node.Args, "--release-startup-pages=false", "the request is measured with the start-up pages released")
	require.Contains(t, node.Args, "--max-connections=1500", "the memory limit is sized for 1,500 connections")

	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	var propagated bool
	for _, m := range node.VolumeMounts {
		if hostPaths[m.Name] == "/var/lib/kubelet" {
			require.Equal(t, corev1.MountPropagationBidirectional, *m.MountPropagation)
			require.Equal(t, "/var/lib/kubelet", m.MountPath, "target paths from kubelet must resolve in the container")
			propagated = true
		}
	}
	require.True(t, propagated, "/var/lib/kubelet is not mounted with Bidirectional propagation")

	// The socket the plugin serves is the one the registrar announces.
	var endpoint string
	for _, a := range node.Args {
		if v, ok := strings.CutPrefix(a, "--csi-endpoint="); ok {
			endpoint = strings.TrimPrefix(v, "unix://")
		}
	}
	require.NotEmpty(t, endpoint)
	registrar := names["node-driver-registrar"]
	require.Contains(t, registrar.Args, "--csi-address="+endpoint)
	var pluginDir string
	for _, m := range node.VolumeMounts {
		if strings.HasPrefix(endpoint, m.MountPath+"/") {
			pluginDir = hostPaths[m.Name]
		}
	}
	require.Equal(t, "/var/lib/kubelet/plugins/"+csi.DriverName, pluginDir)
	require.Contains(t, registrar.Args, "--kubelet-registration-path="+pluginDir+"/"+filepath.Base(endpoint))
}

func TestServiceIsNodeLocal(t *testing.T) {
	objs := loadAll(t)
	svc := find[corev1.Service](t, objs, "Service", "connectors-proxy")
	require.Equal(t, corev1.ServiceInternalTrafficPolicyLocal, *svc.Spec.InternalTrafficPolicy)
	require.Equal(t, "connectors-system", svc.Namespace)
	require.Equal(t, int32(80), svc.Spec.Ports[0].Port, "the default public URL has no port")
}

// TestManifestsApplyToARealAPIServer creates every object in a real API
// server, in file order, as `kubectl apply -k deploy/` would.
func TestManifestsApplyToARealAPIServer(t *testing.T) {
	env := apiserver.Start(t, apiserver.Options{NoCRDs: true})
	ctx := context.Background()
	require.NoError(t, manifests.Create(ctx, env.Client, loadAll(t)))
}

// TestStatusRBACIsExactlyWhatItNeeds pins the status writer's grants: any
// broader verb, resource or scope fails here.
func TestStatusRBACIsExactlyWhatItNeeds(t *testing.T) {
	objs := loadAll(t)
	cr := find[rbacv1.ClusterRole](t, objs, "ClusterRole", "connectors-node-status")
	require.Equal(t, []rbacv1.PolicyRule{
		{APIGroups: []string{"connectors.alauda.io"}, Resources: []string{"connectors/status", "connectorclasses/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}, cr.Rules)
	require.Empty(t, cr.AggregationRule)
	role := find[rbacv1.Role](t, objs, "Role", "connectors-node-status")
	require.Equal(t, "connectors-system", role.Namespace)
	require.Equal(t, []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"connectors-node-status"}, Verbs: []string{"get", "list", "watch", "update"}},
	}, role.Rules)
	for _, b := range []struct{ kind, name string }{{"ClusterRoleBinding", "connectors-node-status"}, {"RoleBinding", "connectors-node-status"}} {
		rb := find[rbacv1.RoleBinding](t, objs, b.kind, b.name)
		require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "connectors-node", Namespace: "connectors-system"}}, rb.Subjects, b.kind)
		require.Equal(t, b.name, rb.RoleRef.Name, "%s binds another role", b.kind)
	}
	// Nothing else in deploy/ grants the node more for status: only the
	// roles above mention status, services, core events or leases. (The
	// node role's events.k8s.io rule is for Warning Events on pods.)
	for _, u := range objs {
		if (u.GetKind() == "ClusterRole" || u.GetKind() == "Role") && u.GetName() != "connectors-node-status" {
			b, err := u.MarshalJSON()
			require.NoError(t, err)
			for _, word := range []string{"/status", `"services"`, `"apiGroups":[""],"resources":["events"]`, `"leases"`} {
				require.NotContains(t, string(b), word, "%s %s", u.GetKind(), u.GetName())
			}
		}
	}
}
