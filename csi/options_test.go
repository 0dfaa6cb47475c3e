package csi_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/grammar/publicurl"
)

// The public URL and the cluster domain the command parsed reach the
// rendered files: the forward proxy and no_proxy's cluster-local suffixes.
func TestPublicURLAndClusterDomainReachTheVolume(t *testing.T) {
	h := newHarness(t, func(o *csi.Options) {
		o.PublicURL = publicurl.MustParse("https://proxy.corp.example:8443")
		o.ClusterDomain = "corp.example"
	})
	req := publishRequest(t, "vol", h.target("vol"))
	require.NoError(t, h.publish(context.Background(), req))
	env := readVolumeFile(t, req.TargetPath, ".env")
	assert.Contains(t, env, "no_proxy='localhost,127.0.0.1,::1,.svc,.svc.corp.example,.corp.example,proxy.corp.example")
	assert.NotContains(t, env, "cluster.local")
	assert.Contains(t, readVolumeFile(t, req.TargetPath, "http.proxy"), "@proxy.corp.example:8443")
}
