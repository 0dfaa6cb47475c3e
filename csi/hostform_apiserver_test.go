package csi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// TestHostFormServiceOfAUserOnAPIServer reproduces issue 22 finding 4 on a
// real API server with deploy/'s RBAC and Service admission policy, the
// status writer not running: a user who may write Services and Connector
// status creates c-<name> as an ExternalName to a host of their own and
// points the status at it, or pre-creates c-<name> for a proxy-resolver:
// host class. The volumes get the path form. The plugin reads Services
// with the node's own token (its RBAC is enough); the status writer's
// Service, made with that token under the policy, is trusted; the user
// cannot forge its label.
func TestHostFormServiceOfAUserOnAPIServer(t *testing.T) {
	env := apiserver.Start(t, apiserver.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, manifests.InstallBase(ctx, env.Client, apiserver.RepoRoot()))
	ns := env.Namespace(t, "team")

	// The user: Services and Connector status in their namespace.
	env.ServiceAccount(t, ns, "dev")
	require.NoError(t, env.Client.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dev"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "create", "update", "delete"}},
			{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"connectors/status"}, Verbs: []string{"get", "patch"}},
		},
	}))
	require.NoError(t, env.Client.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dev"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "dev"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "dev"}},
	}))
	userCfg := tokenConfig(env, env.Token(t, ns, "dev", nil, time.Hour))
	user, err := kubernetes.NewForConfig(userCfg)
	require.NoError(t, err)
	userClient, err := client.New(userCfg, client.Options{Scheme: apiserver.Scheme()})
	require.NoError(t, err)
	nodeCfg := tokenConfig(env, env.Token(t, "connectors-system", "connectors-node", nil, time.Hour))
	node, err := kubernetes.NewForConfig(nodeCfg)
	require.NoError(t, err)

	hostClass := &v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{
		Name: "hosted-" + ns, Annotations: map[string]string{v1alpha1.ProxyResolverAnnotation: v1alpha1.ProxyResolverHost},
	}}
	plainClass := &v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: "plain-" + ns}}
	require.NoError(t, env.Client.Create(ctx, hostClass))
	require.NoError(t, env.Client.Create(ctx, plainClass))
	connector := func(name, class string) *v1alpha1.Connector {
		c := &v1alpha1.Connector{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: class, Address: "https://git.example.com/org"},
		}
		require.NoError(t, env.Client.Create(ctx, c))
		return c
	}
	hostForm := func(name string) string { return "http://c-" + name + "." + ns + ".svc.cluster.local" }
	pathForm := func(name string) string { return publicurl.Default + "/namespaces/" + ns + "/connectors/" + name }
	setStatus := func(c *v1alpha1.Connector, url string) {
		patch := client.MergeFrom(c.DeepCopy())
		c.Status.Proxy = &v1alpha1.ProxyStatus{HTTPAddress: &v1alpha1.Addressable{URL: url}}
		require.NoError(t, userClient.Status().Patch(ctx, c, patch), "the user writes the status")
	}
	userService := func(name string) {
		_, err := user.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "c-" + name},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "collector.evil.test"},
		}, metav1.CreateOptions{})
		require.NoError(t, err, "the user creates c-%s", name)
	}
	projectService := func(c *v1alpha1.Connector) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{
				Name: "c-" + c.Name,
				Labels: map[string]string{
					v1alpha1.HostFormManagedByLabel: v1alpha1.HostFormManagedByValue, v1alpha1.HostFormConnectorLabel: c.Name,
				},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: v1alpha1.GroupVersion.String(), Kind: "Connector", Name: c.Name, UID: c.UID, Controller: ptr.To(true),
				}},
			},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "connectors-proxy.connectors-system.svc.cluster.local"},
		}
	}

	stolen := connector("stolen", plainClass.Name)
	userService("stolen")
	setStatus(stolen, hostForm("stolen"))
	connector("preempted", hostClass.Name)
	userService("preempted")
	byStatus := connector("by-status", plainClass.Name)
	_, err = node.CoreV1().Services(ns).Create(ctx, projectService(byStatus), metav1.CreateOptions{})
	require.NoError(t, err, "the status writer's token creates the project's Service under the policy")
	setStatus(byStatus, hostForm("by-status"))
	derived := connector("derived", hostClass.Name)
	_, err = node.CoreV1().Services(ns).Create(ctx, projectService(derived), metav1.CreateOptions{})
	require.NoError(t, err)
	forged := connector("forged", plainClass.Name)
	_, err = user.CoreV1().Services(ns).Create(ctx, projectService(forged), metav1.CreateOptions{})
	require.True(t, apierrors.IsForbidden(err), "the user forges the project's labels: %v", err)

	cache, err := kube.NewCache(kube.CacheOptions{Config: nodeCfg})
	require.NoError(t, err)
	require.NoError(t, cache.Start(ctx))
	require.True(t, cache.WaitForSync(ctx))
	h := newHarness(t, func(o *csi.Options) {
		o.Objects = cache
		o.Services = cache
		o.Ready = cache.Synced
	})
	for _, c := range []struct{ name, want string }{
		{"stolen", pathForm("stolen")},
		{"preempted", pathForm("preempted")},
		{"by-status", hostForm("by-status")},
		{"derived", hostForm("derived")},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The informer sees the status the user wrote.
			require.Eventually(t, func() bool {
				got, err := cache.Connector(ctx, ns, c.name)
				return err == nil && (c.name != "stolen" && c.name != "by-status" || got.Status.Proxy != nil)
			}, time.Minute, 20*time.Millisecond)
			req := publishRequest(t, c.name, h.target(c.name))
			req.VolumeContext[csi.AttrPodNamespace] = ns
			req.VolumeContext[csi.AttrConnectors] = c.name
			require.NoError(t, h.publish(ctx, req))
			assert.Equal(t, c.want, readVolumeFile(t, req.TargetPath, "connector.status.proxyAddress"))
		})
	}
}

func tokenConfig(env *apiserver.Env, token string) *rest.Config {
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = token
	return cfg
}
