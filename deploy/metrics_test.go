package deploy_test

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// opsPods are the pod templates of objs that serve an ops port, with the
// ServiceAccount each runs as.
func opsPods(t *testing.T, objs []*unstructured.Unstructured) map[string]corev1.PodTemplateSpec {
	t.Helper()
	out := map[string]corev1.PodTemplateSpec{}
	for _, u := range objs {
		switch u.GetKind() {
		case "DaemonSet":
			out["DaemonSet "+u.GetName()] = find[appsv1.DaemonSet](t, objs, u.GetKind(), u.GetName()).Spec.Template
		case "Deployment":
			out["Deployment "+u.GetName()] = find[appsv1.Deployment](t, objs, u.GetKind(), u.GetName()).Spec.Template
		}
	}
	return out
}

// TestScrapeHintsMatchTheOpsPort: every pod that serves /metrics behind
// --metrics-auth says where (the port named metrics, its --ops-listen
// port and path) and does not invite token-less pods jobs with
// prometheus.io/scrape.
func TestScrapeHintsMatchTheOpsPort(t *testing.T) {
	for _, topology := range []string{"node", "split"} {
		t.Run(topology, func(t *testing.T) {
			for name, tmpl := range opsPods(t, kustomize(t, "overlays/"+topology)) {
				c := tmpl.Spec.Containers[0]
				_, port, err := net.SplitHostPort(flagValue(c.Args, "--ops-listen"))
				require.NoError(t, err, "%s --ops-listen", name)
				var named string
				for _, p := range c.Ports {
					if p.Name == "metrics" {
						named = strconv.Itoa(int(p.ContainerPort))
					}
				}
				require.Equal(t, port, named, "%s: the port named metrics is not --ops-listen", name)
				require.Equal(t, port, tmpl.Annotations["prometheus.io/port"], name)
				require.Equal(t, "/metrics", tmpl.Annotations["prometheus.io/path"], name)
				require.NotContains(t, c.Args, "--metrics-auth=false", "%s serves /metrics to anyone", name)
				require.NotContains(t, tmpl.Annotations, "prometheus.io/scrape", "%s invites scrapes without a token", name)
			}
		})
	}
}

// TestMetricsReaderRole pins the reader ClusterRole: get on /metrics and
// nothing else, in both topologies.
func TestMetricsReaderRole(t *testing.T) {
	for _, dir := range []string{"overlays/node", "overlays/split"} {
		cr := find[rbacv1.ClusterRole](t, kustomize(t, dir), "ClusterRole", "connectors-node-metrics-reader")
		require.Equal(t, []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}, cr.Rules, dir)
		require.Nil(t, cr.AggregationRule, dir)
	}
}

// TestOpsPortRBACOnARealAPIServer installs each topology and the
// Prometheus example in a real API server and asks it: every
// ServiceAccount that runs a pod with an ops port may create the
// TokenReviews and SubjectAccessReviews --metrics-auth makes; the example's
// Prometheus may get /metrics, and no more; another ServiceAccount may not.
func TestOpsPortRBACOnARealAPIServer(t *testing.T) {
	for _, topology := range []string{"node", "split"} {
		t.Run(topology, func(t *testing.T) {
			example, err := manifests.Load(filepath.Join("..", "examples", "prometheus", "rbac.yaml"))
			require.NoError(t, err)
			objs := kustomize(t, "overlays/"+topology)
			env := apiserver.Start(t, apiserver.Options{NoCRDs: true})
			ctx := context.Background()
			require.NoError(t, manifests.Create(ctx, env.Client, append(slices.Clone(objs), example...)))
			can := func(ns, sa string, attrs authorizationv1.SubjectAccessReviewSpec) bool {
				t.Helper()
				attrs.User = "system:serviceaccount:" + ns + ":" + sa
				attrs.Groups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
				resp, err := env.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: attrs}, metav1.CreateOptions{})
				require.NoError(t, err)
				return resp.Status.Allowed
			}
			create := func(group, resource string) authorizationv1.SubjectAccessReviewSpec {
				return authorizationv1.SubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "create", Group: group, Resource: resource}}
			}
			get := func(path string) authorizationv1.SubjectAccessReviewSpec {
				return authorizationv1.SubjectAccessReviewSpec{NonResourceAttributes: &authorizationv1.NonResourceAttributes{Verb: "get", Path: path}}
			}
			pods := opsPods(t, objs)
			require.NotEmpty(t, pods)
			for name, tmpl := range pods {
				sa := tmpl.Spec.ServiceAccountName
				require.True(t, can("connectors-system", sa, create("authentication.k8s.io", "tokenreviews")), "%s (%s) may not review the scraper's token", name, sa)
				require.True(t, can("connectors-system", sa, create("authorization.k8s.io", "subjectaccessreviews")), "%s (%s) may not review the scraper's access", name, sa)
				require.False(t, can("connectors-system", sa, get("/metrics")), "%s (%s) may read metrics", name, sa)
			}
			require.True(t, can("monitoring", "prometheus", get("/metrics")), "the example's Prometheus may not get /metrics")
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/metrics/extra", "/healthz/x"} {
				require.False(t, can("monitoring", "prometheus", get(path)), "the reader may get %s", path)
			}
			require.False(t, can("monitoring", "default", get("/metrics")), "another ServiceAccount may get /metrics")
		})
	}
}

// TestPodMonitorScrapesWhatTheScrapeConfigDoes: the Prometheus Operator's
// form of the example (examples/prometheus/podmonitor.yaml; no operator
// runs here) selects every pod with an ops port in both topologies, in
// their namespace, on the port named metrics, and sends a token of the
// ServiceAccount rbac.yaml lets get /metrics.
func TestPodMonitorScrapesWhatTheScrapeConfigDoes(t *testing.T) {
	objs, err := manifests.Load(filepath.Join(apiserver.RepoRoot(), "examples", "prometheus", "podmonitor.yaml"))
	require.NoError(t, err)
	var pm, secret *unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "PodMonitor":
			pm = o
		case "Secret":
			secret = o
		}
	}
	require.NotNil(t, pm, "no PodMonitor")
	require.NotNil(t, secret, "no token Secret")

	selector, _, err := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	require.NoError(t, err)
	namespaces, _, err := unstructured.NestedStringSlice(pm.Object, "spec", "namespaceSelector", "matchNames")
	require.NoError(t, err)
	endpoints, _, err := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	require.NoError(t, err)
	require.Len(t, endpoints, 1)
	ep := endpoints[0].(map[string]any)
	require.Equal(t, "metrics", ep["port"])
	require.Equal(t, "/metrics", ep["path"])
	tokenSecret, _, err := unstructured.NestedString(ep, "authorization", "credentials", "name")
	require.NoError(t, err)
	require.Equal(t, secret.GetName(), tokenSecret)
	require.Equal(t, pm.GetNamespace(), secret.GetNamespace(), "the operator reads the Secret from the PodMonitor's namespace")
	require.Equal(t, "kubernetes.io/service-account-token", secret.Object["type"])
	require.Equal(t, "monitoring", secret.GetNamespace())
	require.Equal(t, "prometheus", secret.GetAnnotations()["kubernetes.io/service-account.name"],
		"the token is of the ServiceAccount rbac.yaml binds to connectors-node-metrics-reader")

	for _, topology := range []string{"node", "split"} {
		objs := kustomize(t, "overlays/"+topology)
		pods := opsPods(t, objs)
		require.NotEmpty(t, pods, topology)
		for _, u := range objs {
			if u.GetKind() != "DaemonSet" && u.GetKind() != "Deployment" {
				continue
			}
			name := u.GetKind() + " " + u.GetName()
			tmpl := pods[name]
			for k, v := range selector {
				require.Equal(t, v, tmpl.Labels[k], "%s %s: the PodMonitor does not select it", topology, name)
			}
			require.Contains(t, namespaces, u.GetNamespace(), "%s %s", topology, name)
			require.True(t, slices.ContainsFunc(tmpl.Spec.Containers[0].Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" }),
				"%s %s has no port named metrics", topology, name)
		}
	}
}
