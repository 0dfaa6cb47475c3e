package csi_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/csi/mounter"
)

// TestUnpublishLeavesWhatThePluginDidNotMake pins unpublish to the
// plugin's own targets: before, after a publish refused a target that is a
// regular file, NodeUnpublishVolume on it returned OK and removed the file.
// A file, a directory holding files and another mount are refused with
// FailedPrecondition (what is at the target is not this volume's; the call
// can succeed once it is gone) and left as they are; a target that does not
// exist is OK, as CSI's idempotent unpublish requires.
func TestUnpublishLeavesWhatThePluginDidNotMake(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	file := h.target("file")
	require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o750))
	require.NoError(t, os.WriteFile(file, []byte("theirs"), 0o600))
	full := h.target("full")
	require.NoError(t, os.MkdirAll(full, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(full, "theirs"), []byte("theirs"), 0o600))
	foreign := h.target("foreign")
	require.NoError(t, os.MkdirAll(foreign, 0o750))
	require.NoError(t, h.mounter.Mount("someone-else", foreign, "tmpfs", nil))

	for name, target := range map[string]string{"a regular file": file, "a directory with files": full, "another mount": foreign} {
		t.Run(name, func(t *testing.T) {
			err := h.publish(ctx, publishRequest(t, "vol", target))
			require.Equal(t, codes.FailedPrecondition, status.Code(err), "publish: %v", err)
			err = h.unpublish(ctx, "vol", target)
			require.Equal(t, codes.FailedPrecondition, status.Code(err), "unpublish: %v", err)
			_, err = os.Lstat(target)
			require.NoError(t, err, "the target stays")
		})
	}
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "theirs", string(b))
	_, err = os.Stat(filepath.Join(full, "theirs"))
	assert.NoError(t, err)
	assert.Equal(t, 1, countMounts(t, h.mounter, foreign))

	require.NoError(t, h.unpublish(ctx, "vol", h.target("never")), "a target that does not exist is already unpublished")
}

// TestTargetBelongsToTheVolumeThatMountedIt pins the record of the volume
// in the mount: before, another volume id could republish (and rewrite the
// files of) or unpublish a mounted target. Both are refused with
// FailedPrecondition and change nothing; the mounting volume id still
// republishes and unpublishes.
func TestTargetBelongsToTheVolumeThatMountedIt(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	target := h.target("vol-a")
	require.NoError(t, h.publish(ctx, publishRequest(t, "vol-a", target)))

	other := publishRequest(t, "vol-b", target)
	other.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, "another-token", time.Now().Add(time.Hour))
	err := h.publish(ctx, other)
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "another volume id")
	assert.Equal(t, testToken, readVolumeFile(t, target, "context.token"), "the files are not rewritten")
	err = h.unpublish(ctx, "vol-b", target)
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	assert.Equal(t, 1, countMounts(t, h.mounter, target), "the volume stays mounted")

	own := publishRequest(t, "vol-a", target)
	own.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, "fresh-token", time.Now().Add(time.Hour))
	require.NoError(t, h.publish(ctx, own))
	assert.Equal(t, "fresh-token", readVolumeFile(t, target, "context.token"))
	require.NoError(t, h.unpublish(ctx, "vol-a", target))
	assertNoVolume(t, h.mounter, target)
}

// TestRealMountRecordsTheVolumeAcrossARestart pins that the record of a
// target's volume survives the plugin: it is the tmpfs's mount source, made
// with the mount in one step, so a plugin killed at any point and
// restarted still refuses another volume id. A tmpfs mounted by a version
// that recorded no volume is still unpublished.
func TestRealMountRecordsTheVolumeAcrossARestart(t *testing.T) {
	h := newRealHarness(t, nil)
	ctx := context.Background()
	target := h.target("vol-a")
	require.NoError(t, h.publish(ctx, publishRequest(t, "vol-a", target)))
	mounts := mountsUnder(t, target)
	require.Len(t, mounts, 1)
	assert.True(t, strings.HasPrefix(mounts[0].Source, "connectors-csi:"), "source %q", mounts[0].Source)
	assert.NotContains(t, mounts[0].Source, "vol-a", "the source holds a digest of the volume id")

	opts := csi.Options{NodeID: "node-1", Endpoint: h.server.Socket(), Objects: h.objects, Authorizer: h.auth,
		CACertPEM: []byte(testCAPEM), Mounter: mounter.New(), KubeletRoot: h.dir}
	h.stop()
	h.start(t, opts)

	err := h.unpublish(ctx, "vol-b", target)
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	err = h.publish(ctx, publishRequest(t, "vol-b", target))
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	assert.Len(t, mountsUnder(t, target), 1)
	require.NoError(t, h.unpublish(ctx, "vol-a", target))
	assert.Empty(t, mountsUnder(t, h.dir))

	earlier := h.target("earlier")
	require.NoError(t, os.MkdirAll(earlier, 0o750))
	require.NoError(t, syscall.Mount("connectors-csi", earlier, "tmpfs", 0, "size=1m"))
	require.NoError(t, h.unpublish(ctx, "any", earlier), "a mount of an earlier version is the plugin's")
	assert.Empty(t, mountsUnder(t, h.dir))
}
