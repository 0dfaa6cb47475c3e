package deploy_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/connectors-node/connectors-node/kube/ca"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// needTool skips without the named program, except in CI.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.SkipOrFail(t, "%s is not installed: run `make deps`", name)
	}
	return p
}

// kustomize renders dir with `kubectl kustomize`.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	kubectl := needTool(t, "kubectl")
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(t.Context(), kubectl, "kustomize", dir) //nolint:gosec // the test's own overlay directories
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "kubectl kustomize %s: %s", dir, errb.String())
	objs, err := manifests.Decode(dir, out.Bytes())
	require.NoError(t, err)
	return objs
}

// A rule is one (API group, resource, name, verb): RBAC rules expanded so
// that two role sets compare exactly.
type rule struct{ group, resource, name, verb string }

func (r rule) String() string {
	s := r.verb + " " + r.resource
	if r.group != "" {
		s += "." + r.group
	}
	if r.name != "" {
		s += "/" + r.name
	}
	return s
}

func expand(rules []rbacv1.PolicyRule) []rule {
	var out []rule
	for _, pr := range rules {
		names := pr.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range pr.APIGroups {
			for _, res := range pr.Resources {
				for _, n := range names {
					for _, v := range pr.Verbs {
						out = append(out, rule{g, res, n, v})
					}
				}
			}
		}
	}
	return out
}

func ruleStrings(rs []rule) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// granted collects, per ServiceAccount, the rules every binding in objs
// gives it: cluster-wide rules, and namespaced ones prefixed by namespace.
func granted(t *testing.T, objs []*unstructured.Unstructured) map[string][]string {
	t.Helper()
	clusterRoles := map[string][]rbacv1.PolicyRule{}
	roles := map[string][]rbacv1.PolicyRule{}
	for _, u := range objs {
		switch u.GetKind() {
		case "ClusterRole":
			cr := find[rbacv1.ClusterRole](t, objs, "ClusterRole", u.GetName())
			require.Nil(t, cr.AggregationRule, "ClusterRole %s aggregates", cr.Name)
			clusterRoles[cr.Name] = cr.Rules
		case "Role":
			r := find[rbacv1.Role](t, objs, "Role", u.GetName())
			roles[r.Namespace+"/"+r.Name] = r.Rules
		}
	}
	out := map[string][]string{}
	add := func(subjects []rbacv1.Subject, prefix string, rules []rbacv1.PolicyRule) {
		for _, s := range subjects {
			require.Equal(t, rbacv1.ServiceAccountKind, s.Kind, "only ServiceAccounts are bound")
			key := s.Namespace + "/" + s.Name
			for _, r := range ruleStrings(expand(rules)) {
				out[key] = append(out[key], prefix+r)
			}
		}
	}
	for _, u := range objs {
		switch u.GetKind() {
		case "ClusterRoleBinding":
			b := find[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", u.GetName())
			require.Equal(t, "ClusterRole", b.RoleRef.Kind)
			rules, ok := clusterRoles[b.RoleRef.Name]
			require.True(t, ok, "ClusterRoleBinding %s names a missing ClusterRole", b.Name)
			add(b.Subjects, "", rules)
		case "RoleBinding":
			b := find[rbacv1.RoleBinding](t, objs, "RoleBinding", u.GetName())
			require.Equal(t, "Role", b.RoleRef.Kind, "RoleBinding %s binds a ClusterRole in a namespace", b.Name)
			rules, ok := roles[b.Namespace+"/"+b.RoleRef.Name]
			require.True(t, ok, "RoleBinding %s names a missing Role", b.Name)
			add(b.Subjects, b.Namespace+": ", rules)
		}
	}
	for k := range out {
		sort.Strings(out[k])
		out[k] = slices.Compact(out[k])
	}
	return out
}

// The exact permissions of each role. A rule added to a manifest must be
// added here too, to the role that needs it; anything broader fails.
var (
	csiRules = []string{
		"create subjectaccessreviews.authorization.k8s.io",
		// The scraper's token of the ops port (--metrics-auth).
		"create tokenreviews.authentication.k8s.io",
		"get connectorclasses.connectors.alauda.io",
		"get connectors.connectors.alauda.io",
		"list connectorclasses.connectors.alauda.io",
		"list connectors.connectors.alauda.io",
		"watch connectorclasses.connectors.alauda.io",
		"watch connectors.connectors.alauda.io",
		// The CA ConfigMap: read and watched by its name.
		"connectors-system: get configmaps/connectors-proxy-ca.crt",
		"connectors-system: list configmaps/connectors-proxy-ca.crt",
		"connectors-system: watch configmaps/connectors-proxy-ca.crt",
		// A Connector's host-form Service, read by name before its
		// host-form address is written.
		"get services",
		// Warning Events on pods for configuration.names not found.
		"create events.events.k8s.io",
		"patch events.events.k8s.io",
	}
	proxyRules = []string{
		"create subjectaccessreviews.authorization.k8s.io",
		"create tokenreviews.authentication.k8s.io",
		"get connectorclasses.connectors.alauda.io",
		"get connectors.connectors.alauda.io",
		"get pods", // the pod a token is bound to
		// Pods' names and UIDs, watched so that a deleted pod's tokens end
		// within seconds (the node's own pods, by field selector).
		"list pods",
		"watch pods",
		"get secrets",
		"list connectorclasses.connectors.alauda.io",
		"list connectors.connectors.alauda.io",
		"watch connectorclasses.connectors.alauda.io",
		"watch connectors.connectors.alauda.io",
		"connectors-system: create configmaps",
		"connectors-system: create secrets",
		// The CA Secret and ConfigMap: read and watched by their names.
		"connectors-system: get configmaps/connectors-proxy-ca.crt",
		"connectors-system: get secrets/connectors-proxy-ca",
		"connectors-system: list configmaps/connectors-proxy-ca.crt",
		"connectors-system: list secrets/connectors-proxy-ca",
		"connectors-system: update configmaps/connectors-proxy-ca.crt",
		"connectors-system: watch configmaps/connectors-proxy-ca.crt",
		"connectors-system: watch secrets/connectors-proxy-ca",
		// Global CA Secrets: list and watch in the service's namespace only.
		"connectors-system: list secrets",
		"connectors-system: watch secrets",
		// Status: the Lease, Connector and class status, the host-form
		// Services c-<name>, and Events on Connectors.
		"connectors-system: create leases.coordination.k8s.io",
		"connectors-system: get leases.coordination.k8s.io/connectors-node-status",
		"connectors-system: list leases.coordination.k8s.io/connectors-node-status",
		"connectors-system: update leases.coordination.k8s.io/connectors-node-status",
		"connectors-system: watch leases.coordination.k8s.io/connectors-node-status",
		"patch connectors/status.connectors.alauda.io",
		"patch connectorclasses/status.connectors.alauda.io",
		"create services",
		"delete services",
		"get services",
		"list services",
		"update services",
		"watch services",
		"create events",
		"patch events",
	}
)

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return slices.Compact(s)
}

// TestRBACPerRole checks each topology's ServiceAccounts against the exact
// permissions their roles need: the node role is the CSI role and the proxy
// role together, the CSI-only role has no Secret verb at all, and nothing
// is bound that is not listed here.
func TestRBACPerRole(t *testing.T) {
	node := granted(t, kustomize(t, "overlays/node"))
	require.Equal(t, []string{"connectors-system/connectors-node"}, keysOf(node))
	require.Equal(t, sorted(append(slices.Clone(csiRules), proxyRules...)), node["connectors-system/connectors-node"],
		"the node role is exactly the CSI role plus the proxy role")
	require.Equal(t, node, granted(t, kustomize(t, ".")), "deploy/ installs the node topology")

	split := granted(t, kustomize(t, "overlays/split"))
	require.Equal(t, []string{"connectors-system/connectors-csi", "connectors-system/connectors-proxy"}, keysOf(split))
	require.Equal(t, sorted(csiRules), split["connectors-system/connectors-csi"])
	require.Equal(t, sorted(proxyRules), split["connectors-system/connectors-proxy"])
	for _, r := range split["connectors-system/connectors-csi"] {
		require.NotContains(t, r, "secrets", "the CSI-only role may not touch Secrets")
	}
	for _, roles := range []map[string][]string{node, split} {
		for sa, rs := range roles {
			for _, r := range rs {
				require.NotContains(t, r, "*", "%s has a wildcard rule", sa)
				require.NotRegexp(t, `^(list|watch) secrets`, r, "%s may list or watch Secrets cluster-wide", sa)
			}
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestSplitTopology checks the central proxy and the CSI-only DaemonSet:
// which role runs where, with whose ServiceAccount, behind which Service.
func TestSplitTopology(t *testing.T) {
	objs := kustomize(t, "overlays/split")
	ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "connectors-node")
	node := ds.Spec.Template.Spec.Containers[0]
	require.Equal(t, "connectors-csi", ds.Spec.Template.Spec.ServiceAccountName)
	require.Contains(t, node.Args, "--serve=csi")
	require.Equal(t, "--serve=csi", lastServe(node.Args), "the DaemonSet serves only the CSI plugin")

	dep := find[appsv1.Deployment](t, objs, "Deployment", "connectors-proxy")
	proxy := dep.Spec.Template.Spec.Containers[0]
	require.Equal(t, "connectors-proxy", dep.Spec.Template.Spec.ServiceAccountName)
	require.Equal(t, "--serve=proxy", lastServe(proxy.Args))
	require.GreaterOrEqual(t, *dep.Spec.Replicas, int32(2))
	require.Equal(t, "/readyz", proxy.ReadinessProbe.HTTPGet.Path, "readiness follows the caches")
	require.NotNil(t, proxy.LivenessProbe)
	require.NotEmpty(t, proxy.Resources.Limits)
	require.False(t, proxy.SecurityContext.Privileged != nil && *proxy.SecurityContext.Privileged, "the proxy needs no privilege")
	require.Empty(t, dep.Spec.Template.Spec.Volumes, "the proxy mounts nothing of the node")
	require.True(t, *dep.Spec.Template.Spec.SecurityContext.RunAsNonRoot)

	// Pods reach the central proxy from their own addresses (kube-proxy
	// rewrites the Service's, not theirs): their tokens stay bound to them.
	require.Contains(t, []string{"", "true"}, flagValue(proxy.Args, "--check-pod-source-address"),
		"the central proxy checks a token's source address")
	require.Equal(t, "false", flagValue(proxy.Args, "--check-pod-node"), "the central proxy serves every node's pods")

	// The same public address is written by the CSI nodes and served by the proxy.
	require.Equal(t, flagValue(node.Args, "--public-url"), flagValue(proxy.Args, "--public-url"))
	require.Equal(t, flagValue(node.Args, "--audience"), flagValue(proxy.Args, "--audience"))

	svc := find[corev1.Service](t, objs, "Service", "connectors-proxy")
	require.Equal(t, corev1.ServiceInternalTrafficPolicyCluster, *svc.Spec.InternalTrafficPolicy, "pods on every node reach the central proxy")
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	require.True(t, sel.Matches(labels.Set(dep.Spec.Template.Labels)), "the Service selects the proxy pods")
	require.False(t, sel.Matches(labels.Set(ds.Spec.Template.Labels)), "the Service must not send requests to CSI-only pods")
	require.Equal(t, "http://"+svc.Name+"."+svc.Namespace+".svc", flagValue(proxy.Args, "--public-url"))

	pdb := find[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "connectors-proxy")
	ps, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	require.NoError(t, err)
	require.True(t, ps.Matches(labels.Set(dep.Spec.Template.Labels)))
	require.False(t, ps.Matches(labels.Set(ds.Spec.Template.Labels)))
	require.Less(t, pdb.Spec.MinAvailable.IntValue(), int(*dep.Spec.Replicas), "the budget must allow a drain")
}

func lastServe(args []string) string {
	var v string
	for _, a := range args {
		if strings.HasPrefix(a, "--serve=") {
			v = a
		}
	}
	return v
}

func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestTopologiesApplyToARealAPIServer creates each overlay's objects in a
// real API server, as `kubectl apply -k` would.
func TestTopologiesApplyToARealAPIServer(t *testing.T) {
	for _, dir := range []string{"overlays/node", "overlays/split"} {
		t.Run(dir, func(t *testing.T) {
			objs := kustomize(t, dir)
			env := apiserver.Start(t, apiserver.Options{NoCRDs: true})
			require.NoError(t, manifests.Create(context.Background(), env.Client, objs))
		})
	}
}

// TestCSIOnlyRoleCannotReadSecrets installs the split topology in a real
// API server and asks it, with SubjectAccessReviews and with the CSI
// ServiceAccount's own token, whether a CSI-only node can reach any Secret
// or the CA key: it cannot; the proxy role can.
func TestCSIOnlyRoleCannotReadSecrets(t *testing.T) {
	objs := kustomize(t, "overlays/split")
	env := apiserver.Start(t, apiserver.Options{})
	ctx := context.Background()
	require.NoError(t, manifests.Create(ctx, env.Client, slices.DeleteFunc(objs, func(u *unstructured.Unstructured) bool {
		return u.GetKind() == "CustomResourceDefinition" // the API server has them already
	})))
	const ns = "connectors-system"
	other := env.Namespace(t, "team")

	can := func(sa, verb, resource, namespace, name string) bool {
		t.Helper()
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:" + ns + ":" + sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: verb, Resource: resource, Namespace: namespace, Name: name,
			},
		}}
		resp, err := env.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		require.NoError(t, err)
		return resp.Status.Allowed
	}
	for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"} {
		for _, namespace := range []string{ns, other, ""} {
			for _, name := range []string{"", "connectors-proxy-ca", "git-credentials"} {
				require.False(t, can("connectors-csi", verb, "secrets", namespace, name),
					"the CSI-only role may %s secrets %q in %q", verb, name, namespace)
			}
		}
	}
	for _, verb := range []string{"get", "list", "watch"} {
		require.True(t, can("connectors-csi", verb, "configmaps", ns, ca.DefaultConfigMap), verb)
		require.False(t, can("connectors-csi", verb, "configmaps", ns, ""), "the CSI-only role may %s every ConfigMap", verb)
	}
	require.False(t, can("connectors-csi", "get", "configmaps", ns, "other"))
	require.True(t, can("connectors-proxy", "get", "secrets", other, "git-credentials"))
	require.True(t, can("connectors-proxy", "get", "secrets", ns, "connectors-proxy-ca"))
	require.False(t, can("connectors-proxy", "list", "secrets", other, ""))

	// The same with the ServiceAccount's real token.
	tok := env.Token(t, ns, "connectors-csi", nil, time.Hour)
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tok
	csiClient, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	_, err = csiClient.CoreV1().Secrets(ns).Get(ctx, "connectors-proxy-ca", metav1.GetOptions{})
	require.True(t, apierrors.IsForbidden(err), "reading the CA Secret: %v", err)
	_, err = csiClient.CoreV1().Secrets(other).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "listing Secrets: %v", err)
	_, err = csiClient.CoreV1().ConfigMaps(ns).Get(ctx, ca.DefaultConfigMap, metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the CA ConfigMap is readable (not yet written): %v", err)

	// The proxy role, with its own token, creates the CA and publishes its
	// certificates; everything the CSI-only role can read then lacks the key.
	proxyCfg := rest.AnonymousClientConfig(env.Config)
	proxyCfg.BearerToken = env.Token(t, ns, "connectors-proxy", nil, time.Hour)
	proxyClient, err := kubernetes.NewForConfig(proxyCfg)
	require.NoError(t, err)
	keeper, err := ca.NewKeeper(ctx, ca.Options{Client: proxyClient, Namespace: ns, Secret: "connectors-proxy-ca"})
	require.NoError(t, err, "the proxy role's RBAC is enough to create and publish the CA")
	keyDER, err := x509.MarshalECPrivateKey(keeper.Signing().Key)
	require.NoError(t, err)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})

	var readable []string
	cm, err := csiClient.CoreV1().ConfigMaps(ns).Get(ctx, ca.DefaultConfigMap, metav1.GetOptions{})
	require.NoError(t, err)
	readable = append(readable, mustJSON(t, cm))
	for _, res := range []string{"connectors", "connectorclasses"} {
		var list unstructured.UnstructuredList
		err := csiClient.RESTClient().Get().AbsPath("/apis/connectors.alauda.io/v1alpha1/" + res).Do(ctx).Into(&list)
		require.NoError(t, err, "the CSI-only role lists %s", res)
		readable = append(readable, mustJSON(t, &list))
	}
	require.Equal(t, string(keeper.Signing().CertPEM), cm.Data[ca.BundleKey])
	for _, text := range readable {
		require.NotContains(t, text, "PRIVATE KEY")
		require.NotContains(t, text, string(keyPEM))
		require.NotContains(t, text, base64.StdEncoding.EncodeToString(keyPEM))
		require.NotContains(t, text, base64.StdEncoding.EncodeToString(keyDER))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestNetworkPolicyAdmitsOnlyClientsAndScrapers checks, for each topology,
// that the NetworkPolicy covers every pod serving the proxy, admits any
// pod in the cluster to the port the Service sends to and only the
// namespaces labelled for metrics to the ops port, and nothing else.
func TestNetworkPolicyAdmitsOnlyClientsAndScrapers(t *testing.T) {
	for _, dir := range []string{"overlays/node", "overlays/split"} {
		t.Run(dir, func(t *testing.T) {
			objs := kustomize(t, dir)
			np := find[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "connectors-node")
			require.Equal(t, "connectors-system", np.Namespace)
			require.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			require.NoError(t, err)

			pods := map[string]corev1.PodTemplateSpec{"DaemonSet": find[appsv1.DaemonSet](t, objs, "DaemonSet", "connectors-node").Spec.Template}
			if dir == "overlays/split" {
				pods["Deployment"] = find[appsv1.Deployment](t, objs, "Deployment", "connectors-proxy").Spec.Template
			}
			svc := find[corev1.Service](t, objs, "Service", "connectors-proxy")
			require.Equal(t, "proxy", svc.Spec.Ports[0].TargetPort.String(), "the Service sends to the port the policy admits")

			require.Len(t, np.Spec.Ingress, 2, "one rule for the proxy port, one for the ops port")
			clients, scrapers := np.Spec.Ingress[0], np.Spec.Ingress[1]
			require.Equal(t, []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}, clients.From,
				"any pod in the cluster is a client; no IP block, nothing outside the cluster")
			require.Equal(t, []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"connectors.alauda.io/metrics": "true"}}}}, scrapers.From,
				"only namespaces labelled for metrics reach the ops port")
			for kind, pod := range pods {
				require.True(t, sel.Matches(labels.Set(pod.Labels)), "the policy does not cover the %s's pods", kind)
				ports := map[string]corev1.ContainerPort{}
				for _, p := range pod.Spec.Containers[0].Ports {
					ports[p.Name] = p
				}
				for rule, want := range map[string]networkingv1.NetworkPolicyIngressRule{"proxy": clients, "metrics": scrapers} {
					require.Len(t, want.Ports, 1)
					port := want.Ports[0]
					require.Equal(t, rule, port.Port.String())
					require.Equal(t, corev1.ProtocolTCP, *port.Protocol)
					require.Contains(t, ports, rule, "the %s's container names no port %q", kind, rule)
				}
			}
		})
	}
}
