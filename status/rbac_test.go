package status_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/status"
	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/manifests"
)

// TestDeployRBACIsEnough runs the reconciler as deploy/'s ServiceAccount,
// with only deploy/rbac.yaml granted: lease, status patches, the Service
// and Events all go through.
func TestDeployRBACIsEnough(t *testing.T) {
	env := apiserver.Start(t, apiserver.Options{})
	ctx := context.Background()
	require.NoError(t, manifests.InstallBase(ctx, env.Client, apiserver.RepoRoot()))
	token := env.Token(t, "connectors-system", "connectors-node", nil, time.Hour)
	cfg := &rest.Config{Host: env.Config.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: env.Config.CAData}}

	ns := env.Namespace(t, "rbac")
	up := startUpstream(t)
	n := startNode(t, env, nodeOptions{identity: "node-a", leaseNS: "connectors-system", config: cfg})
	cls := gitClass("git-rbac", nil)
	create(t, env, cls, gitConnector(t, ns, "git", cls.Name, up.URL, "git-auth"))
	waitReady(t, env, ns, "git", status.False, status.ReasonSecretNotFound)
	eventually(t, "a Warning Event on the Connector", func() (bool, string) {
		var events corev1.EventList
		require.NoError(t, env.Client.List(ctx, &events, client.InNamespace(ns)))
		return len(events.Items) > 0 && events.Items[0].Reason == status.ReasonSecretNotFound, ""
	})
	create(t, env, basicSecret(ns, "git-auth", upstreamPass))
	c := waitReady(t, env, ns, "git", status.True, "")
	require.Equal(t, "http://c-git."+ns+".svc.cluster.local", c.Status.Proxy.HTTPAddress.URL)
	_, err := env.Kube.CoreV1().Services(ns).Get(ctx, "c-git", metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, env.Client.Delete(ctx, c))
	eventually(t, "the Service removed with its Connector", func() (bool, string) {
		_, err := env.Kube.CoreV1().Services(ns).Get(ctx, "c-git", metav1.GetOptions{})
		return err != nil, ""
	})
	require.NotContains(t, n.logs.String(), "forbidden", "a request was refused by RBAC")
}
