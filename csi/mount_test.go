package csi_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
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
	"k8s.io/mount-utils"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/csi/mounter"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// These tests mount real tmpfs file systems and need root.

func requireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("mounts tmpfs; skipped with -short (make test-unit)")
	}
	testenv.NeedRoot(t, "mounting a tmpfs")
}

// newRealHarness is a harness with the real mounter. Every mount left under
// its directory is unmounted in cleanup, so a failing test leaks none.
func newRealHarness(t *testing.T, edit func(*csi.Options)) *harness {
	t.Helper()
	requireRoot(t)
	h := newHarness(t, func(o *csi.Options) {
		o.Mounter = mounter.New()
		if edit != nil {
			edit(o)
		}
	})
	t.Cleanup(func() {
		for _, mi := range mountsUnder(t, h.dir) {
			if err := syscall.Unmount(mi.MountPoint, syscall.MNT_DETACH); err != nil {
				t.Errorf("cleanup: unmounting %s: %v", mi.MountPoint, err)
			}
		}
	})
	return h
}

// mountsUnder lists the mounts at or below dir, from /proc/self/mountinfo.
func mountsUnder(t testing.TB, dir string) []mount.MountInfo {
	t.Helper()
	infos, err := mount.ParseMountInfo("/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("reading mountinfo: %v", err)
	}
	var out []mount.MountInfo
	for _, mi := range infos {
		if mi.MountPoint == dir || strings.HasPrefix(mi.MountPoint, dir+"/") {
			out = append(out, mi)
		}
	}
	return out
}

func assertMode(t *testing.T, path string, mode fs.FileMode, gid uint32) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, mode, fi.Mode().Perm(), "mode of %s", path)
	assert.Equal(t, gid, fi.Sys().(*syscall.Stat_t).Gid, "group of %s", path)
}

func TestRealMountPublishAndUnpublish(t *testing.T) {
	h := newRealHarness(t, nil)
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	req.VolumeContext[csi.AttrConfigurationNames] = "gitconfig"
	require.NoError(t, h.publish(ctx, req))

	mounts := mountsUnder(t, req.TargetPath)
	require.Len(t, mounts, 1, "one tmpfs at the target")
	mi := mounts[0]
	assert.Equal(t, "tmpfs", mi.FsType)
	assert.True(t, strings.HasPrefix(mi.Source, "connectors-csi:"), "the source names the plugin and the volume: %q", mi.Source)
	for _, opt := range []string{"nosuid", "nodev", "noexec"} {
		assert.Contains(t, mi.MountOptions, opt)
	}
	assert.Contains(t, mi.SuperOptions, "size=4096k")

	assert.Equal(t, testToken, readVolumeFile(t, req.TargetPath, "context.token"))
	assert.Equal(t, testCAPEM, readVolumeFile(t, req.TargetPath, "ca.crt"))
	for _, name := range []string{"context.token", "http.proxy", "https.proxy", ".env", "ca.crt", "ca.cert",
		"context.proxy.caCert", "ca-bundle.crt", "connector.status.proxyAddress", ".gitconfig"} {
		link, err := os.Readlink(filepath.Join(req.TargetPath, name))
		require.NoError(t, err, "%s must be a symlink", name)
		assert.Equal(t, "..data/"+name, link)
		assertMode(t, filepath.Join(req.TargetPath, name), 0o644, 0)
	}
	assertMode(t, req.TargetPath, 0o755, 0)
	assertMode(t, filepath.Join(req.TargetPath, "..data"), 0o755, 0)

	// Publishing again reuses the mount.
	require.NoError(t, h.publish(ctx, req))
	assert.Len(t, mountsUnder(t, req.TargetPath), 1, "mounts must not stack")

	require.NoError(t, h.unpublish(ctx, "vol", req.TargetPath))
	assert.Empty(t, mountsUnder(t, h.dir))
	_, err := os.Lstat(req.TargetPath)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestRealMountGroupOwnsFiles(t *testing.T) {
	h := newRealHarness(t, nil)
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	req.VolumeCapability.GetMount().VolumeMountGroup = "2000"
	require.NoError(t, h.publish(ctx, req))

	assertMode(t, req.TargetPath, 0o550, 2000)
	assertMode(t, filepath.Join(req.TargetPath, "..data"), 0o550, 2000)
	for _, name := range []string{"context.token", "ca.crt", ".env"} {
		assertMode(t, filepath.Join(req.TargetPath, name), 0o440, 2000)
	}
	require.NoError(t, h.unpublish(ctx, "vol", req.TargetPath))
	assert.Empty(t, mountsUnder(t, h.dir))
}

func TestRealMountRepublishSwapsTokenAtomically(t *testing.T) {
	h := newRealHarness(t, nil)
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	tokens := make(map[string]bool)
	token := func(i int) string {
		// Lengths vary so that a torn read would show.
		return fmt.Sprintf("token-%d-%s", i, strings.Repeat("x", (i*37)%500))
	}
	tokens[testToken] = true
	require.NoError(t, h.publish(ctx, req))

	path := filepath.Join(req.TargetPath, "context.token")
	failures := make(chan string, 16)
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		reads := 0
		defer func() { done <- reads }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(path)
			reads++
			switch {
			case err != nil:
				failures <- fmt.Sprintf("read error: %v", err)
				return
			case len(b) == 0:
				failures <- "read an empty token"
				return
			case !bytes.HasPrefix(b, []byte("token-")) && string(b) != testToken:
				failures <- fmt.Sprintf("read a torn token of %d bytes", len(b))
				return
			case bytes.HasPrefix(b, []byte("token-")):
				var i int
				if _, err := fmt.Sscanf(string(b), "token-%d-", &i); err != nil || string(b) != token(i) {
					failures <- fmt.Sprintf("read a torn token of %d bytes", len(b))
					return
				}
			}
		}
	}()

	const republishes = 200
	for i := range republishes {
		req.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, token(i), time.Now().Add(time.Hour))
		require.NoError(t, h.publish(ctx, req))
	}
	close(stop)
	reads := <-done
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	t.Logf("%d reads during %d republishes", reads, republishes)
	assert.Equal(t, token(republishes-1), readVolumeFile(t, req.TargetPath, "context.token"))
	assert.Len(t, mountsUnder(t, req.TargetPath), 1)

	require.NoError(t, h.unpublish(ctx, "vol", req.TargetPath))
	assert.Empty(t, mountsUnder(t, h.dir))
}

// bigRender renders the real files plus one file larger than the tmpfs
// when big is true.
func bigRender(big *bool) func(configgen.Input) (map[string][]byte, error) {
	return func(in configgen.Input) (map[string][]byte, error) {
		files, err := configgen.Render(in)
		if err == nil && *big {
			files["big"] = bytes.Repeat([]byte("x"), 512<<10)
		}
		return files, err
	}
}

func TestRealMountFailedFirstPublishLeavesNoMount(t *testing.T) {
	big := true
	h := newRealHarness(t, func(o *csi.Options) {
		o.TmpfsSize = "256Ki"
		o.Render = bigRender(&big)
	})
	req := publishRequest(t, "vol", h.target("vol"))
	err := h.publish(context.Background(), req)
	assert.Equal(t, codes.Internal, status.Code(err), "error: %v", err)
	assert.Empty(t, mountsUnder(t, h.dir), "a failed first publish must unmount")
	_, err = os.Lstat(req.TargetPath)
	assert.ErrorIs(t, err, fs.ErrNotExist, "a failed first publish must remove the target path")
}

func TestRealMountFailedRepublishKeepsFiles(t *testing.T) {
	big := false
	h := newRealHarness(t, func(o *csi.Options) {
		o.TmpfsSize = "256Ki"
		o.Render = bigRender(&big)
	})
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	require.NoError(t, h.publish(ctx, req))

	big = true
	req.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, "new-token", time.Now().Add(time.Hour))
	require.NoError(t, h.publish(ctx, req))
	assert.Equal(t, testToken, readVolumeFile(t, req.TargetPath, "context.token"))
	assert.Equal(t, 1.0, republishFailures(t, h))
	_, err := os.Lstat(filepath.Join(req.TargetPath, "big"))
	assert.ErrorIs(t, err, fs.ErrNotExist)

	require.NoError(t, h.unpublish(ctx, "vol", req.TargetPath))
	assert.Empty(t, mountsUnder(t, h.dir))
}

func TestRealMountUnpublishAfterRestart(t *testing.T) {
	h := newRealHarness(t, nil)
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	require.NoError(t, h.publish(ctx, req))
	opts := csi.Options{
		NodeID:      "node-1",
		Endpoint:    h.server.Socket(),
		Objects:     h.objects,
		Authorizer:  h.auth,
		CACertPEM:   []byte(testCAPEM),
		Mounter:     mounter.New(),
		KubeletRoot: h.dir,
	}
	socket := h.server.Socket()
	h.stop()

	// A crashed process leaves its socket file behind.
	leaveStaleSocket(t, socket)
	h.start(t, opts)

	// The new process republishes and unpublishes the old mount.
	req.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, "after-restart", time.Now().Add(time.Hour))
	require.NoError(t, h.publish(ctx, req))
	assert.Equal(t, "after-restart", readVolumeFile(t, req.TargetPath, "context.token"))
	assert.Len(t, mountsUnder(t, req.TargetPath), 1)
	require.NoError(t, h.unpublish(ctx, "vol", req.TargetPath))
	assert.Empty(t, mountsUnder(t, h.dir))
}

// leaveStaleSocket creates a socket file at path that nobody listens on.
func leaveStaleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	l.SetUnlinkOnClose(false)
	require.NoError(t, l.Close())
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	require.Equal(t, fs.ModeSocket, fi.Mode().Type())
}
