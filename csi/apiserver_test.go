package csi_test

import (
	"context"
	"os"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
	"github.com/connectors-node/connectors-node/test/apiserver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	apiserver.StopShared()
	os.Exit(code)
}

// TestAgainstAPIServer publishes volumes with Connectors read through the
// informer cache and access decided by SubjectAccessReview on a real API
// server with RBAC.
func TestAgainstAPIServer(t *testing.T) {
	env := apiserver.Shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	podNS := env.Namespace(t, "pods")
	otherNS := env.Namespace(t, "shared")
	className := "git-" + podNS
	for _, obj := range []client.Object{
		&v1alpha1.ConnectorClass{ObjectMeta: metav1.ObjectMeta{Name: className}},
		&v1alpha1.Connector{
			ObjectMeta: metav1.ObjectMeta{Namespace: podNS, Name: "git"},
			Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: className, Address: "https://git.example.com/org"},
		},
		&v1alpha1.Connector{
			ObjectMeta: metav1.ObjectMeta{Namespace: otherNS, Name: "shared"},
			Spec:       v1alpha1.ConnectorSpec{ConnectorClassName: className, Address: "https://registry.example.com"},
		},
	} {
		require.NoError(t, env.Client.Create(ctx, obj))
	}
	env.ServiceAccount(t, podNS, "builder")
	env.ServiceAccount(t, podNS, "nobody")
	env.AllowConnectors(t, podNS, podNS, "builder")

	cache, err := kube.NewCache(kube.CacheOptions{Config: env.Config})
	require.NoError(t, err)
	require.NoError(t, cache.Start(ctx))
	require.True(t, cache.WaitForSync(ctx))
	// A denial is not cached here, so that granting access takes effect
	// at once.
	reviewer, err := kube.NewReviewer(kube.ReviewerOptions{Client: env.Kube, Audience: audience, DenyTTL: time.Nanosecond})
	require.NoError(t, err)
	// The API server's authorizer sees new bindings through its own
	// informer; wait for the first one.
	builder := kube.ServiceAccountUser(podNS, "builder")
	require.Eventually(t, func() bool { return reviewer.Authorize(ctx, builder, podNS, "git") == nil },
		time.Minute, 50*time.Millisecond)

	h := newHarness(t, func(o *csi.Options) {
		o.Objects = cache
		o.Authorizer = reviewer
		o.Ready = cache.Synced
	})
	probe, err := h.identity.Probe(ctx, &csipb.ProbeRequest{})
	require.NoError(t, err)
	assert.True(t, probe.GetReady().GetValue(), "ready once the cache has synced")

	token := env.Token(t, podNS, "builder", []string{audience}, 10*time.Minute)
	request := func(id, sa, connectors string) *csipb.NodePublishVolumeRequest {
		req := publishRequest(t, id, h.target(id))
		req.VolumeContext[csi.AttrPodNamespace] = podNS
		req.VolumeContext[csi.AttrServiceAccount] = sa
		req.VolumeContext[csi.AttrConnectors] = connectors
		req.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, token, time.Now().Add(10*time.Minute))
		return req
	}

	t.Run("service account with a role binding gets its volume", func(t *testing.T) {
		req := request("allowed", "builder", "git")
		require.NoError(t, h.publish(ctx, req))
		assert.Equal(t, token, readVolumeFile(t, req.TargetPath, "context.token"))
		assert.Equal(t, publicurl.Default+"/namespaces/"+podNS+"/connectors/git",
			readVolumeFile(t, req.TargetPath, "connector.status.proxyAddress"))
		require.NoError(t, h.unpublish(ctx, "allowed", req.TargetPath))
	})

	t.Run("service account without a role binding is denied", func(t *testing.T) {
		req := request("denied", "nobody", "git")
		err := h.publish(ctx, req)
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "error: %v", err)
		assert.Contains(t, status.Convert(err).Message(), `connector "`+podNS+`/git"`)
		assertNoVolume(t, h.mounter, req.TargetPath)
	})

	t.Run("missing connector is not found", func(t *testing.T) {
		req := request("missing", "builder", "git,missing")
		err := h.publish(ctx, req)
		assert.Equal(t, codes.NotFound, status.Code(err), "error: %v", err)
		assert.Equal(t, `connector "`+podNS+`/missing" not found`, status.Convert(err).Message())
		assertNoVolume(t, h.mounter, req.TargetPath)
	})

	t.Run("connector in another namespace needs RBAC there", func(t *testing.T) {
		req := request("cross", "builder", "git,"+otherNS+"/shared")
		err := h.publish(ctx, req)
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "error: %v", err)
		assert.Contains(t, status.Convert(err).Message(), `connector "`+otherNS+`/shared"`)
		assertNoVolume(t, h.mounter, req.TargetPath)

		env.AllowConnectors(t, otherNS, podNS, "builder")
		require.Eventually(t, func() bool { return h.publish(ctx, req) == nil }, time.Minute, 50*time.Millisecond)
		assert.Contains(t, readVolumeFile(t, req.TargetPath, "http.proxy"), podNS+"%2Fgit,"+otherNS+"%2Fshared")
		require.NoError(t, h.unpublish(ctx, "cross", req.TargetPath))
	})
}
