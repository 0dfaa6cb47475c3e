package csi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/test/fake"
)

func TestTokenNeverLogged(t *testing.T) {
	var logs fake.LogBuffer
	h := newHarness(t, func(o *csi.Options) { o.Log = logs.Logger() })
	ctx := context.Background()
	tokenParts := strings.Split(testToken, ".")
	secretToken := "secret-path-token-0123456789"

	// A publish with the token in volume_context, a republish with it in
	// the request secrets, a republish that fails, a failing publish and
	// an unpublish.
	req := publishRequest(t, "vol", h.target("vol"))
	req.VolumeContext[csi.AttrConfigurationNames] = "gitconfig,notes"
	require.NoError(t, h.publish(ctx, req))
	req.Secrets = map[string]string{csi.TokensKey: tokensJSON(t, audience, secretToken, time.Now().Add(time.Hour))}
	delete(req.VolumeContext, csi.TokensKey)
	require.NoError(t, h.publish(ctx, req))
	h.auth.Deny(podNamespace + "/git")
	require.NoError(t, h.publish(ctx, req))
	req2 := publishRequest(t, "vol2", h.target("vol2"))
	require.Error(t, h.publish(ctx, req2))
	require.NoError(t, h.unpublish(ctx, "vol", req.TargetPath))

	out := logs.String()
	require.Contains(t, out, "NodePublishVolume", "the calls must have been logged")
	require.Contains(t, out, "republish failed")
	require.Contains(t, out, csi.TokensKey, "the request was logged with the token key redacted")
	for _, secret := range append(tokenParts, testToken, secretToken) {
		assert.NotContains(t, out, secret, "a token leaked into the logs")
	}
}

func TestLongTokenExpirationOnlyWarns(t *testing.T) {
	var logs fake.LogBuffer
	h := newHarness(t, func(o *csi.Options) { o.Log = logs.Logger() })
	req := publishRequest(t, "vol", h.target("vol"))
	req.VolumeContext[csi.AttrTokenExpiration] = "48h"
	require.NoError(t, h.publish(context.Background(), req))
	assert.Contains(t, logs.String(), "token.expiration is longer than the projected token lives")
}

// TestTemplateErrorDoesNotLogTheToken pins that a class template that puts a
// transformed token into its error does not bring it into the logs or the
// gRPC message (which kubelet turns into pod events).
func TestTemplateErrorDoesNotLogTheToken(t *testing.T) {
	var logs fake.LogBuffer
	h := newHarness(t, func(o *csi.Options) { o.Log = logs.Logger() })
	h.objects.addConnector(podNamespace, "leaky", "leaky", "https://leaky.example.com")
	h.objects.AddClass(&v1alpha1.ConnectorClass{
		ObjectMeta: metav1.ObjectMeta{Name: "leaky"},
		Spec: v1alpha1.ConnectorClassSpec{Configurations: []v1alpha1.Configuration{{
			Name: "leak",
			Data: map[string]string{"out": `{{ fail (.context.token | upper | substr 1 -1) }}`},
		}}},
	})
	req := publishRequest(t, "vol", h.target("vol"))
	req.VolumeContext[csi.AttrConnectors] = "leaky"
	req.VolumeContext[csi.AttrConfigurationNames] = "leak"
	err := h.publish(context.Background(), req)
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	out := strings.ToUpper(logs.String() + "\n" + err.Error())
	for _, part := range strings.Split(strings.ToUpper(testToken), ".") {
		assert.NotContains(t, out, part[1:], "a token fragment leaked")
	}
}
