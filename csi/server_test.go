package csi_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/csi"
)

func validOptions(t *testing.T) csi.Options {
	return csi.Options{
		NodeID:     "node-1",
		Endpoint:   filepath.Join(t.TempDir(), "csi.sock"),
		Objects:    newFakeObjects(),
		Authorizer: newAuthorizer(),
		CACertPEM:  []byte(testCAPEM),
		Mounter:    newFakeMounter(),
	}
}

func TestNewServerChecksOptions(t *testing.T) {
	tests := []struct {
		name string
		edit func(*csi.Options)
		want string // substring of the error; empty means no error
	}{
		{"valid", func(*csi.Options) {}, ""},
		{"no node id", func(o *csi.Options) { o.NodeID = "" }, "NodeID"},
		{"no objects", func(o *csi.Options) { o.Objects = nil }, "Objects"},
		{"no authorizer", func(o *csi.Options) { o.Authorizer = nil }, "Authorizer"},
		{"no CA", func(o *csi.Options) { o.CACertPEM = nil }, "CACertPEM"},
		{"bad tmpfs size", func(o *csi.Options) { o.TmpfsSize = "lots" }, "TmpfsSize"},
		{"zero tmpfs size", func(o *csi.Options) { o.TmpfsSize = "0" }, "TmpfsSize"},
		{"tcp endpoint", func(o *csi.Options) { o.Endpoint = "tcp://127.0.0.1:10000" }, "unix"},
		{"unix endpoint URL", func(o *csi.Options) { o.Endpoint = "unix://" + o.Endpoint }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := validOptions(t)
			tt.edit(&opts)
			_, err := csi.NewServer(opts)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestIdentityAndNodeInfo(t *testing.T) {
	var ready atomic.Bool
	h := newHarness(t, func(o *csi.Options) { o.Ready = ready.Load })
	ctx := context.Background()

	info, err := h.identity.GetPluginInfo(ctx, &csipb.GetPluginInfoRequest{})
	require.NoError(t, err)
	assert.Equal(t, "connectors-csi", info.GetName())
	assert.Equal(t, "v0.0.0-test", info.GetVendorVersion())

	caps, err := h.identity.GetPluginCapabilities(ctx, &csipb.GetPluginCapabilitiesRequest{})
	require.NoError(t, err)
	for _, c := range caps.GetCapabilities() {
		assert.NotEqual(t, csipb.PluginCapability_Service_CONTROLLER_SERVICE, c.GetService().GetType())
	}

	probe, err := h.identity.Probe(ctx, &csipb.ProbeRequest{})
	require.NoError(t, err)
	assert.False(t, probe.GetReady().GetValue(), "not ready before the caches sync")
	ready.Store(true)
	probe, err = h.identity.Probe(ctx, &csipb.ProbeRequest{})
	require.NoError(t, err)
	assert.True(t, probe.GetReady().GetValue())

	node, err := h.node.NodeGetInfo(ctx, &csipb.NodeGetInfoRequest{})
	require.NoError(t, err)
	assert.Equal(t, "node-1", node.GetNodeId())

	ncaps, err := h.node.NodeGetCapabilities(ctx, &csipb.NodeGetCapabilitiesRequest{})
	require.NoError(t, err)
	require.Len(t, ncaps.GetCapabilities(), 1)
	assert.Equal(t, csipb.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP, ncaps.GetCapabilities()[0].GetRpc().GetType())

	_, err = h.node.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{})
	assert.Equal(t, codes.Unimplemented, status.Code(err))
	_, err = h.node.NodeGetVolumeStats(ctx, &csipb.NodeGetVolumeStatsRequest{})
	assert.Equal(t, codes.Unimplemented, status.Code(err))
}

func TestStartRemovesStaleSocket(t *testing.T) {
	opts := validOptions(t)
	leaveStaleSocket(t, opts.Endpoint)
	srv, err := csi.NewServer(opts)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	srv.Stop(context.Background())
	_, err = os.Lstat(opts.Endpoint)
	assert.ErrorIs(t, err, os.ErrNotExist, "Stop removes the socket")
}

func TestStartCreatesSocketDirectory(t *testing.T) {
	opts := validOptions(t)
	opts.Endpoint = filepath.Join(filepath.Dir(opts.Endpoint), "plugins", "connectors-csi", "csi.sock")
	srv, err := csi.NewServer(opts)
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	srv.Stop(context.Background())
}

func TestStartRefusesToRemoveNonSocket(t *testing.T) {
	opts := validOptions(t)
	require.NoError(t, os.WriteFile(opts.Endpoint, []byte("keep me"), 0o600))
	srv, err := csi.NewServer(opts)
	require.NoError(t, err)
	require.Error(t, srv.Start())
	got, err := os.ReadFile(opts.Endpoint)
	require.NoError(t, err)
	assert.Equal(t, "keep me", string(got))
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	opts := validOptions(t)
	srv, err := csi.NewServer(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	cancel()
	require.NoError(t, <-done)
	_, err = os.Lstat(opts.Endpoint)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestStopCutsCallsWhenGraceEnds(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	h := newHarness(t, func(o *csi.Options) {
		o.Render = func(configgen.Input) (map[string][]byte, error) {
			close(entered)
			<-release
			return nil, errors.New("released")
		}
	})
	defer close(release)
	req := publishRequest(t, "vol", h.target("vol"))
	result := make(chan error, 1)
	go func() { result <- h.publish(context.Background(), req) }()
	<-entered

	expired, cancel := context.WithCancel(context.Background())
	cancel()
	h.server.Stop(expired)
	err := <-result
	assert.Equal(t, codes.Unavailable, status.Code(err), "a cut call: %v", err)
}
