package csi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/internal/testsupport"
)

// TestControlCharacterInAConnectorIsInvalidArgument pins the renderer's
// structural guard at the CSI boundary: a Connector whose address holds a
// line break that reaches a file fails the publish with InvalidArgument
// naming the Connector and the field. Neither the message nor the logs
// hold the value or the token, and nothing is mounted.
func TestControlCharacterInAConnectorIsInvalidArgument(t *testing.T) {
	var logs testsupport.LogBuffer
	h := newHarness(t, func(o *csi.Options) { o.Log = logs.Logger() })
	h.objects.addConnector(podNamespace, "evil", "git", "https://git.example/x\n[core]\n\tsshCommand = touch /tmp/pwned")
	req := publishRequest(t, "vol", h.target("vol"))
	req.VolumeContext[csi.AttrConnectors] = "evil"
	req.VolumeContext[csi.AttrConfigurationNames] = "notes"

	err := h.publish(context.Background(), req)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	msg := status.Convert(err).Message()
	assert.Contains(t, msg, `connector "`+podNamespace+`/evil" spec.address`)
	assert.Contains(t, msg, "U+000A")
	out := logs.String() + "\n" + msg
	assert.NotContains(t, out, "sshCommand")
	for _, part := range strings.Split(testToken, ".") {
		assert.NotContains(t, out, part, "a token fragment leaked")
	}
	mps, err := h.mounter.List()
	require.NoError(t, err)
	assert.Empty(t, mps, "a refused volume is not mounted")
}
