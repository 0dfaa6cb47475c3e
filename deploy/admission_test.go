package deploy_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// TestServicePolicyOnARealAPIServer installs each topology, with its
// ValidatingAdmissionPolicy, in a real API server and writes Services as
// the status writer's ServiceAccount (with its own token), as an ordinary
// user allowed to write Services, and as the admin: the status writer may
// write only labelled ExternalName Services named c-<connector>; nobody
// else may set the label, nor change a labelled Service's labels or spec.
func TestServicePolicyOnARealAPIServer(t *testing.T) {
	for _, tc := range []struct{ dir, writer string }{
		{"overlays/node", "connectors-node"},
		{"overlays/split", "connectors-proxy"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			objs := kustomize(t, tc.dir)
			env := apiserver.Start(t, apiserver.Options{})
			ctx := context.Background()
			require.NoError(t, manifests.Create(ctx, env.Client, slices.DeleteFunc(objs, func(u *unstructured.Unstructured) bool {
				return u.GetKind() == "CustomResourceDefinition"
			})))
			require.NoError(t, manifests.WaitForServicePolicy(ctx, env.Client))
			ns := env.Namespace(t, "team")

			writer := clientFor(t, env, env.Token(t, "connectors-system", tc.writer, nil, time.Hour))
			env.ServiceAccount(t, ns, "dev")
			grantServices(t, env, ns, "dev")
			user := clientFor(t, env, env.Token(t, ns, "dev", nil, time.Hour))

			refused := func(err error, who, what string) {
				t.Helper()
				require.Error(t, err, "%s: %s was allowed", who, what)
				require.True(t, apierrors.IsForbidden(err), "%s: %s: %v", who, what, err)
				require.Contains(t, err.Error(), "connectors-node-services", "%s: %s: refused by the policy", who, what)
			}

			// The status writer: labelled ExternalName Services only.
			_, err := writer.CoreV1().Services(ns).Create(ctx, service("c-git", true, corev1.ServiceTypeExternalName, "proxy.example"), metav1.CreateOptions{})
			require.NoError(t, err, "the status writer creates its host-form Service")
			_, err = writer.CoreV1().Services(ns).Create(ctx, service("c-plain", false, corev1.ServiceTypeExternalName, "proxy.example"), metav1.CreateOptions{})
			refused(err, tc.writer, "creating an unlabelled Service")
			_, err = writer.CoreV1().Services(ns).Create(ctx, service("c-clusterip", true, corev1.ServiceTypeClusterIP, ""), metav1.CreateOptions{})
			refused(err, tc.writer, "creating a labelled ClusterIP Service")
			_, err = writer.CoreV1().Services(ns).Create(ctx, service("database", true, corev1.ServiceTypeExternalName, "proxy.example"), metav1.CreateOptions{})
			refused(err, tc.writer, "creating a labelled Service not named c-<connector>")
			ours, err := writer.CoreV1().Services(ns).Get(ctx, "c-git", metav1.GetOptions{})
			require.NoError(t, err)
			ours.Spec.ExternalName = "proxy2.example"
			ours, err = writer.CoreV1().Services(ns).Update(ctx, ours, metav1.UpdateOptions{})
			require.NoError(t, err, "the status writer repoints its Service")
			unlabel := ours.DeepCopy()
			delete(unlabel.Labels, v1alpha1.HostFormManagedByLabel)
			_, err = writer.CoreV1().Services(ns).Update(ctx, unlabel, metav1.UpdateOptions{})
			refused(err, tc.writer, "removing the label")

			// Someone else's Service is out of the status writer's reach.
			_, err = user.CoreV1().Services(ns).Create(ctx, service("app", false, corev1.ServiceTypeClusterIP, ""), metav1.CreateOptions{})
			require.NoError(t, err, "an ordinary user creates an unlabelled Service")
			app, err := writer.CoreV1().Services(ns).Get(ctx, "app", metav1.GetOptions{})
			require.NoError(t, err)
			app.Spec.Selector = map[string]string{"app": "elsewhere"}
			_, err = writer.CoreV1().Services(ns).Update(ctx, app, metav1.UpdateOptions{})
			refused(err, tc.writer, "updating another's Service")
			err = writer.CoreV1().Services(ns).Delete(ctx, "app", metav1.DeleteOptions{})
			refused(err, tc.writer, "deleting another's Service")
			err = writer.CoreV1().Services("default").Delete(ctx, "kubernetes", metav1.DeleteOptions{})
			refused(err, tc.writer, "deleting the kubernetes Service")

			// Nobody else sets the label or changes a labelled Service.
			for _, other := range []struct {
				name string
				c    kubernetes.Interface
			}{{"an ordinary user", user}, {"the admin", env.Kube}} {
				_, err = other.c.CoreV1().Services(ns).Create(ctx, service("c-forged", true, corev1.ServiceTypeExternalName, "collector.evil.test"), metav1.CreateOptions{})
				refused(err, other.name, "creating a labelled Service")
				app, err := other.c.CoreV1().Services(ns).Get(ctx, "app", metav1.GetOptions{})
				require.NoError(t, err)
				app.Labels = map[string]string{v1alpha1.HostFormManagedByLabel: v1alpha1.HostFormManagedByValue}
				_, err = other.c.CoreV1().Services(ns).Update(ctx, app, metav1.UpdateOptions{})
				refused(err, other.name, "labelling a Service")
				cur, err := other.c.CoreV1().Services(ns).Get(ctx, "c-git", metav1.GetOptions{})
				require.NoError(t, err)
				retarget := cur.DeepCopy()
				retarget.Spec.ExternalName = "collector.evil.test"
				_, err = other.c.CoreV1().Services(ns).Update(ctx, retarget, metav1.UpdateOptions{})
				refused(err, other.name, "repointing the status writer's Service")
				relabel := cur.DeepCopy()
				relabel.Labels[v1alpha1.HostFormConnectorLabel] = "other"
				_, err = other.c.CoreV1().Services(ns).Update(ctx, relabel, metav1.UpdateOptions{})
				refused(err, other.name, "relabelling the status writer's Service")
				// Metadata alone (as the garbage collector's owner
				// reference removal) stays allowed.
				annotate := cur.DeepCopy()
				annotate.Annotations = map[string]string{"note": other.name}
				_, err = other.c.CoreV1().Services(ns).Update(ctx, annotate, metav1.UpdateOptions{})
				require.NoError(t, err, "%s annotates the status writer's Service", other.name)
			}
			_, err = user.CoreV1().Services(ns).Create(ctx, service("c-other", false, corev1.ServiceTypeExternalName, "elsewhere.example"), metav1.CreateOptions{})
			require.NoError(t, err, "an unlabelled ExternalName Service stays the user's to make")

			require.NoError(t, writer.CoreV1().Services(ns).Delete(ctx, "c-git", metav1.DeleteOptions{}), "the status writer deletes its Service")
		})
	}
}

// TestServicePolicyNamesTheStatusWriter pins that the policy's writer is
// the ServiceAccount the status ClusterRole is bound to, in each topology.
func TestServicePolicyNamesTheStatusWriter(t *testing.T) {
	for _, dir := range []string{"overlays/node", "overlays/split"} {
		objs := kustomize(t, dir)
		vap := find[admissionregistrationv1.ValidatingAdmissionPolicy](t, objs, "ValidatingAdmissionPolicy", "connectors-node-services")
		crb := find[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "connectors-node-status")
		s := crb.Subjects[0]
		require.Equal(t, "writer", vap.Spec.Variables[0].Name, dir)
		require.Equal(t, "request.userInfo.username == 'system:serviceaccount:"+s.Namespace+":"+s.Name+"'", vap.Spec.Variables[0].Expression, dir)
		require.Equal(t, admissionregistrationv1.Fail, *vap.Spec.FailurePolicy, dir)
		b := find[admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, objs, "ValidatingAdmissionPolicyBinding", "connectors-node-services")
		require.Equal(t, vap.Name, b.Spec.PolicyName, dir)
		require.Equal(t, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}, b.Spec.ValidationActions, dir)
		require.Nil(t, b.Spec.MatchResources, "%s: the binding covers every namespace", dir)
	}
}

func clientFor(t *testing.T, env *apiserver.Env, token string) kubernetes.Interface {
	t.Helper()
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = token
	c, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return c
}

// grantServices lets the ServiceAccount ns/sa write every Service in ns.
func grantServices(t *testing.T, env *apiserver.Env, ns, sa string) {
	t.Helper()
	ctx := context.Background()
	_, err := env.Kube.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "services"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "create", "update", "patch", "delete"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = env.Kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "services"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "services"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// service is a Service named name, labelled as the status writer labels
// its own when labelled.
func service(name string, labelled bool, typ corev1.ServiceType, externalName string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Type: typ, ExternalName: externalName},
	}
	if typ != corev1.ServiceTypeExternalName {
		s.Spec.Ports = []corev1.ServicePort{{Port: 80}}
	}
	if labelled {
		s.Labels = map[string]string{
			v1alpha1.HostFormManagedByLabel: v1alpha1.HostFormManagedByValue,
			v1alpha1.HostFormConnectorLabel: strings.TrimPrefix(name, "c-"),
		}
	}
	return s
}

// TestChartServicePolicyFollowsTheNamespace pins that the chart's policy
// names the status writer in the chart's namespace, for each topology.
func TestChartServicePolicyFollowsTheNamespace(t *testing.T) {
	for topology, sa := range map[string]string{"node": "connectors-node", "split": "connectors-proxy"} {
		objs := render(t, "topology="+topology, "namespace=platform")
		vap := find[admissionregistrationv1.ValidatingAdmissionPolicy](t, objs, "ValidatingAdmissionPolicy", "connectors-node-services")
		require.Equal(t, "request.userInfo.username == 'system:serviceaccount:platform:"+sa+"'", vap.Spec.Variables[0].Expression, topology)
		crb := find[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "connectors-node-status")
		require.Equal(t, rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: "platform"}, crb.Subjects[0], topology)
	}
}
