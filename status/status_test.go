package status_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

// TestEachReasonIsReachedByChangingObjects walks a Connector through every
// Ready reason by changing the objects, as a user would meet them.
func TestEachReasonIsReachedByChangingObjects(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "reasons")
	up := startUpstream(t)
	n := startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})
	ctx := context.Background()

	cls := gitClass("git-"+ns, nil)
	create(t, env, gitConnector(t, ns, "git", cls.Name, up.URL, "git-auth"))
	c := waitReady(t, env, ns, "git", status.False, status.ReasonConnectorClassNotFound)
	require.Contains(t, condition(c, status.TypeReady).Message, "spec.connectorClassName")
	require.NotNil(t, c.Status.API, "status.api.path is written on every Connector, ready or not")
	require.Equal(t, "/connectors/v1alpha1/"+ns+"/git/path", c.Status.API.Path)

	create(t, env, cls)
	c = waitReady(t, env, ns, "git", status.False, status.ReasonSecretNotFound)
	require.Contains(t, condition(c, status.TypeSecretReady).Message, "spec.auth.secretRef.name")

	wrongType := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "git-auth"}, Type: corev1.SecretTypeOpaque,
		StringData: map[string]string{"token": upstreamPass}}
	create(t, env, wrongType)
	c = waitReady(t, env, ns, "git", status.False, status.ReasonSecretTypeMismatch)
	require.Contains(t, condition(c, status.TypeSecretReady).Message, `needs "kubernetes.io/basic-auth"`)
	require.NoError(t, env.Client.Delete(ctx, wrongType))

	create(t, env, basicSecret(ns, "git-auth", "wrong-password"))
	c = waitReady(t, env, ns, "git", status.False, status.ReasonCredentialsRejected)
	require.Contains(t, condition(c, status.TypeAuthReady).Message, "spec.authProbes[0].probe.http")
	require.Equal(t, status.True, condition(c, status.TypeLivenessReady).Status, "a 401 still shows the tool alive")

	s := basicSecret(ns, "git-auth", upstreamPass)
	require.NoError(t, env.Client.Update(ctx, s))
	c = waitReady(t, env, ns, "git", status.True, "")
	readySince := condition(c, status.TypeReady).LastTransitionTime
	require.NotNil(t, readySince)

	// A change that keeps Ready True keeps its lastTransitionTime.
	c.Spec.Params = []v1alpha1.Param{{Name: "x", Value: js(t, "y")}}
	require.NoError(t, env.Client.Update(ctx, c))
	c = waitReady(t, env, ns, "git", status.True, "")
	require.Equal(t, readySince.Unix(), condition(c, status.TypeReady).LastTransitionTime.Unix())

	require.NoError(t, env.Client.Delete(ctx, s))
	c = waitReady(t, env, ns, "git", status.False, status.ReasonSecretNotFound)
	require.Equal(t, status.Unknown, condition(c, status.TypeAuthReady).Status, "no auth probe without the Secret")
	eventually(t, "liveness probed without the Secret", func() (bool, string) {
		c = getConnector(t, env, ns, "git")
		l := condition(c, status.TypeLivenessReady)
		return l.Status == status.True, l.Reason + " " + l.Message
	})
	create(t, env, basicSecret(ns, "git-auth", upstreamPass))
	waitReady(t, env, ns, "git", status.True, "")

	up.Close()
	c = waitReady(t, env, ns, "git", status.False, status.ReasonToolUnreachable)
	require.Contains(t, condition(c, status.TypeLivenessReady).Message, "spec.livenessProbe.http")

	// Nothing the node wrote or logged holds the password.
	var events corev1.EventList
	require.NoError(t, env.Client.List(ctx, &events, client.InNamespace(ns)))
	require.NotEmpty(t, events.Items, "Ready transitions are recorded as Events")
	for _, e := range events.Items {
		require.NotContains(t, e.Message, upstreamPass)
	}
	for _, cd := range c.Status.Conditions {
		require.NotContains(t, cd.Message, upstreamPass)
	}
	require.NotContains(t, n.logs.String(), upstreamPass)
}

// TestProbesNeverLeaveTheConnectorsAddress points a class probe at another
// host: the probe is refused before anything is sent.
func TestProbesNeverLeaveTheConnectorsAddress(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "refused")
	up := startUpstream(t)
	other := startUpstream(t)
	startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})

	cls := gitClass("git-"+ns, nil)
	cls.Spec.AuthProbes[0].Probe.HTTP.Host = strings.TrimPrefix(other.URL, "http://")
	create(t, env, cls, basicSecret(ns, "git-auth", upstreamPass), gitConnector(t, ns, "git", cls.Name, up.URL, "git-auth"))
	c := waitReady(t, env, ns, "git", status.False, status.ReasonProbeTargetRefused)
	require.Contains(t, condition(c, status.TypeAuthReady).Message, "not one of the connector's addresses")
	require.Zero(t, other.hits.Load(), "the probe reached a host that is not the Connector's")
}

// TestAddresses covers both resolvers and a class's own proxy.
func TestAddresses(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "addr")
	up := startUpstream(t)
	startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})
	ctx := context.Background()

	host := gitClass("host-"+ns, nil)
	path := gitClass("path-"+ns, map[string]string{v1alpha1.ProxyResolverAnnotation: "path"})
	own := gitClass("own-"+ns, nil)
	own.Spec.Proxy = &v1alpha1.ProxySpec{Destination: v1alpha1.Destination{
		Ref: &v1alpha1.KReference{Kind: "Service", Name: "oci-proxy", Namespace: "tools"}, URI: "/base", Audience: "oci-proxy",
	}}
	ownPath := gitClass("ownpath-"+ns, map[string]string{v1alpha1.ProxyResolverAnnotation: "path"})
	ownPath.Spec.Proxy = &v1alpha1.ProxySpec{Destination: v1alpha1.Destination{URI: "https://proxy.example.com:8443/p", CACerts: "PEM"}}
	create(t, env, host, path, own, ownPath, basicSecret(ns, "git-auth", upstreamPass))
	for _, cls := range []string{host.Name, path.Name, own.Name, ownPath.Name} {
		create(t, env, gitConnector(t, ns, strings.Split(cls, "-")[0], cls, up.URL, "git-auth"))
	}

	for name, want := range map[string]v1alpha1.Addressable{
		"host":    {URL: "http://c-host." + ns + ".svc.cluster.local", Audience: "connectors-proxy"},
		"path":    {URL: "http://connectors-proxy.connectors-system.svc/namespaces/" + ns + "/connectors/path", Audience: "connectors-proxy"},
		"own":     {URL: "http://c-own." + ns + ".svc.cluster.local", Audience: "oci-proxy"},
		"ownpath": {URL: "https://proxy.example.com:8443/p/namespaces/" + ns + "/connectors/ownpath", CACerts: "PEM"},
	} {
		c := waitReady(t, env, ns, name, status.True, "")
		require.NotNil(t, c.Status.Proxy)
		require.Equal(t, want, *c.Status.Proxy.HTTPAddress, name)
	}

	// Host form: an owned ExternalName Service c-<name> leads to the proxy.
	for name, target := range map[string]string{
		"host": "connectors-proxy.connectors-system.svc.cluster.local",
		"own":  "oci-proxy.tools.svc.cluster.local",
	} {
		svc, err := env.Kube.CoreV1().Services(ns).Get(ctx, "c-"+name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, corev1.ServiceTypeExternalName, svc.Spec.Type)
		require.Equal(t, target, svc.Spec.ExternalName)
		conn := getConnector(t, env, ns, name)
		ref := metav1.GetControllerOf(svc)
		require.NotNil(t, ref, "the Service is owned by its Connector, so the garbage collector removes it")
		require.Equal(t, conn.UID, ref.UID)
		require.Equal(t, "Connector", ref.Kind)
		require.Equal(t, v1alpha1.GroupVersion.String(), ref.APIVersion)
	}
	for _, name := range []string{"path", "ownpath"} {
		_, err := env.Kube.CoreV1().Services(ns).Get(ctx, "c-"+name, metav1.GetOptions{})
		require.True(t, apierrors.IsNotFound(err), "path form needs no Service")
	}

	// The class status names its proxy.
	eventually(t, "class status", func() (bool, string) {
		var cls v1alpha1.ConnectorClass
		require.NoError(t, env.Client.Get(ctx, client.ObjectKey{Name: own.Name}, &cls))
		if cls.Status.Proxy == nil || len(cls.Status.Conditions) == 0 {
			return false, "no status"
		}
		return cls.Status.Proxy.HTTPAddress.URL == "http://oci-proxy.tools.svc.cluster.local/base" &&
			cls.Status.Conditions[len(cls.Status.Conditions)-1].Status == status.True, cls.Status.Proxy.HTTPAddress.URL
	})

	// Switching to the path resolver drops the Service; deleting the
	// Connector deletes its Service (the garbage collector would too).
	conn := getConnector(t, env, ns, "host")
	require.NoError(t, env.Client.Delete(ctx, conn))
	eventually(t, "service of a deleted connector removed", func() (bool, string) {
		_, err := env.Kube.CoreV1().Services(ns).Get(ctx, "c-host", metav1.GetOptions{})
		return apierrors.IsNotFound(err), "still there"
	})
}

// TestServiceNameClashIsAConditionNotAnOverwrite pre-creates a Service
// c-<name> of someone else's: it stays as it was, the Connector says why
// and gets the path-form address instead.
func TestServiceNameClashIsAConditionNotAnOverwrite(t *testing.T) {
	env := apiserver.Shared(t)
	ns := env.Namespace(t, "clash")
	up := startUpstream(t)
	ctx := context.Background()
	theirs := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c-git", Labels: map[string]string{"app": "theirs"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}, Selector: map[string]string{"app": "theirs"}},
	}
	theirs, err := env.Kube.CoreV1().Services(ns).Create(ctx, theirs, metav1.CreateOptions{})
	require.NoError(t, err)
	startNode(t, env, nodeOptions{identity: "node-a", leaseNS: ns})
	cls := gitClass("git-"+ns, nil)
	create(t, env, cls, basicSecret(ns, "git-auth", upstreamPass), gitConnector(t, ns, "git", cls.Name, up.URL, "git-auth"))

	c := waitReady(t, env, ns, "git", status.False, status.ReasonServiceConflict)
	require.Contains(t, condition(c, status.TypeProxyServiceReady).Message, `Service "c-git" already exists`)
	require.Equal(t, "http://connectors-proxy.connectors-system.svc/namespaces/"+ns+"/connectors/git", c.Status.Proxy.HTTPAddress.URL,
		"the host-form name leads to someone else's Service: publish the path form")
	after, err := env.Kube.CoreV1().Services(ns).Get(ctx, "c-git", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, theirs.ResourceVersion, after.ResourceVersion, "the Service was changed")
	require.Empty(t, after.OwnerReferences)

	// Deleting the Connector leaves their Service alone.
	require.NoError(t, env.Client.Delete(ctx, c))
	eventually(t, "connector gone", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(c), &v1alpha1.Connector{})
		return apierrors.IsNotFound(err), "still there"
	})
	after, err = env.Kube.CoreV1().Services(ns).Get(ctx, "c-git", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, theirs.ResourceVersion, after.ResourceVersion)
}
