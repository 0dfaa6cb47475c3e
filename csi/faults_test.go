package csi_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr/funcr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/kube"
)

// TestAPIDeadlineIsUnavailable pins the code of a publish while the API
// hangs: the review times out with an error wrapping both ErrUnavailable and
// the deadline, and the documented answer is Unavailable, not
// DeadlineExceeded.
func TestAPIDeadlineIsUnavailable(t *testing.T) {
	h := newHarness(t, nil)
	h.auth.SetErr(fmt.Errorf("access review: %w: %w", kube.ErrUnavailable, context.DeadlineExceeded))
	err := h.publish(context.Background(), publishRequest(t, "vol", h.target("vol")))
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

// TestConcurrentPublishesToOneTargetNeverStack pins the target lock: before
// it, publishes with different volume ids to one target_path stacked 6-8
// tmpfs mounts there, and the unpublish failed and left mounts behind. The
// first volume id mounts; the others are refused.
func TestConcurrentPublishesToOneTargetNeverStack(t *testing.T) {
	h := newRealHarness(t, nil)
	ctx := context.Background()
	target := h.target("shared")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var mounted []string
	for i := range 16 {
		wg.Go(func() {
			id := fmt.Sprintf("vol-%d", i)
			err := publishRetrying(ctx, h, publishRequest(t, id, target))
			if err == nil {
				mu.Lock()
				mounted = append(mounted, id)
				mu.Unlock()
				return
			}
			assert.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
		})
	}
	wg.Wait()
	require.Len(t, mounted, 1, "one volume id owns the target")
	assert.Len(t, mountsUnder(t, target), 1, "one tmpfs at the target, never stacked")
	require.NoError(t, h.unpublish(ctx, mounted[0], target))
	assert.Empty(t, mountsUnder(t, h.dir))
	_, err := os.Lstat(target)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestTargetPathIsChecked pins the target_path rules: before them a relative
// path was mounted under the working directory, ".." escaped the kubelet
// root, symlinks were followed and a non-empty directory was mounted over.
// Each is refused with InvalidArgument or FailedPrecondition, mounting
// nothing and leaving the files in place.
func TestTargetPathIsChecked(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	outside := t.TempDir()
	link := filepath.Join(h.dir, "pods", "link")
	require.NoError(t, os.MkdirAll(filepath.Dir(link), 0o750))
	require.NoError(t, os.Symlink(outside, link))
	full := filepath.Join(h.dir, "pods", "full", "mount")
	require.NoError(t, os.MkdirAll(full, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(full, "keep"), []byte("x"), 0o600))
	file := filepath.Join(h.dir, "pods", "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))

	for name, tc := range map[string]struct {
		target string
		want   codes.Code
	}{
		"relative":         {"pods/vol/mount", codes.InvalidArgument},
		"dot-dot":          {h.dir + "/pods/../../escape/mount", codes.InvalidArgument},
		"trailing slash":   {h.target("vol") + "/", codes.InvalidArgument},
		"outside the root": {filepath.Join(outside, "mount"), codes.InvalidArgument},
		"the root itself":  {h.dir, codes.InvalidArgument},
		"root prefix":      {h.dir + "-other/mount", codes.InvalidArgument},
		"NUL":              {h.target("vol") + "\x00x", codes.InvalidArgument},
		"too long":         {h.dir + "/" + strings.Repeat("a/", 3000) + "mount", codes.InvalidArgument},
		"symlink parent":   {filepath.Join(link, "mount"), codes.FailedPrecondition},
		"symlink target":   {link, codes.FailedPrecondition},
		"under a file":     {filepath.Join(file, "mount"), codes.FailedPrecondition},
		"a file":           {file, codes.FailedPrecondition},
		"not empty":        {full, codes.FailedPrecondition},
	} {
		t.Run(name, func(t *testing.T) {
			err := h.publish(ctx, publishRequest(t, "vol", tc.target))
			require.Equal(t, tc.want, status.Code(err), "%v", err)
			if tc.want == codes.InvalidArgument || tc.target == full || tc.target == link {
				err = h.unpublish(ctx, "vol", tc.target)
				require.Contains(t, []codes.Code{codes.InvalidArgument, codes.FailedPrecondition, codes.OK}, status.Code(err), "%v", err)
			}
		})
	}
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing written through the symlink")
	_, err = os.Stat(filepath.Join(full, "keep"))
	assert.NoError(t, err, "the non-empty target keeps its files")
	_, err = os.Lstat(link)
	assert.NoError(t, err, "the symlink is not removed")
	mps, err := h.mounter.List()
	require.NoError(t, err)
	assert.Empty(t, mps, "nothing mounted")
}

// TestUnpublishUnmountsOnlyItsOwnMounts pins that unpublish leaves a tmpfs
// the plugin did not mount (its source does not name the driver), and its
// directory, and says so with FailedPrecondition.
func TestUnpublishUnmountsOnlyItsOwnMounts(t *testing.T) {
	h := newRealHarness(t, nil)
	ctx := context.Background()
	target := h.target("foreign")
	require.NoError(t, os.MkdirAll(target, 0o750))
	require.NoError(t, syscall.Mount("someone-else", target, "tmpfs", 0, "size=1m"))
	require.NoError(t, os.WriteFile(filepath.Join(target, "theirs"), []byte("x"), 0o600))

	err := h.unpublish(ctx, "vol", target)
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "someone-else")
	assert.Len(t, mountsUnder(t, target), 1, "the foreign tmpfs stays")
	_, err = os.Stat(filepath.Join(target, "theirs"))
	assert.NoError(t, err)

	err = h.publish(ctx, publishRequest(t, "vol", target))
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "no publish into a foreign mount: %v", err)
	assert.Len(t, mountsUnder(t, target), 1)

	// An unmounted target holding files the plugin did not write stays too.
	require.NoError(t, syscall.Unmount(target, 0))
	require.NoError(t, os.WriteFile(filepath.Join(target, "left"), []byte("x"), 0o600))
	err = h.unpublish(ctx, "vol", target)
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	_, err = os.Stat(filepath.Join(target, "left"))
	assert.NoError(t, err)
}

// TestOversizedInputIsBounded pins the bounds: before them a 3 MiB attribute
// made a 6 MiB log line and a 6 MiB gRPC error on every kubelet retry, and
// pod fields were not validated.
func TestOversizedInputIsBounded(t *testing.T) {
	var logged strings.Builder
	var mu sync.Mutex
	h := newHarness(t, func(o *csi.Options) {
		o.Log = funcr.New(func(prefix, args string) {
			mu.Lock()
			defer mu.Unlock()
			logged.WriteString(prefix + args + "\n")
		}, funcr.Options{Verbosity: 10})
	})
	ctx := context.Background()
	huge := strings.Repeat("x", 3<<20)
	for name, edit := range map[string]func(*csipb.NodePublishVolumeRequest){
		"huge attribute":         func(r *csipb.NodePublishVolumeRequest) { r.VolumeContext[csi.AttrConnectors] = huge },
		"huge unknown attribute": func(r *csipb.NodePublishVolumeRequest) { r.VolumeContext["other"] = huge },
		"huge key":               func(r *csipb.NodePublishVolumeRequest) { r.VolumeContext[huge] = "x" },
		"huge params":            func(r *csipb.NodePublishVolumeRequest) { r.VolumeContext[csi.AttrConfigurationParams] = huge },
		"huge volume id":         func(r *csipb.NodePublishVolumeRequest) { r.VolumeId = huge },
		"huge target":            func(r *csipb.NodePublishVolumeRequest) { r.TargetPath = huge },
		"bad pod namespace":      func(r *csipb.NodePublishVolumeRequest) { r.VolumeContext[csi.AttrPodNamespace] = "Team_A/../x" },
		"bad service account":    func(r *csipb.NodePublishVolumeRequest) { r.VolumeContext[csi.AttrServiceAccount] = "a:b" },
		"long pod namespace": func(r *csipb.NodePublishVolumeRequest) {
			r.VolumeContext[csi.AttrPodNamespace] = strings.Repeat("a", 64)
		},
		"too many attributes":     func(r *csipb.NodePublishVolumeRequest) { manyAttributes(r.VolumeContext, 100) },
		"huge secret":             func(r *csipb.NodePublishVolumeRequest) { r.Secrets = map[string]string{csi.TokensKey: huge} },
		"huge volume_context tok": func(r *csipb.NodePublishVolumeRequest) { r.VolumeContext[csi.TokensKey] = huge },
	} {
		t.Run(name, func(t *testing.T) {
			req := publishRequest(t, "vol", h.target("vol"))
			edit(req)
			err := h.publish(ctx, req)
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%.300v", err)
			assert.Less(t, len(status.Convert(err).Message()), 4096, "the error is bounded")
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for _, line := range strings.Split(logged.String(), "\n") {
		assert.Less(t, len(line), 64<<10, "log line of %d bytes", len(line))
	}
}

func manyAttributes(m map[string]string, n int) {
	for i := range n {
		m[fmt.Sprintf("extra-%d", i)] = "x"
	}
}

// TestNewInstanceTakesOverTheSocketAndTheOldOneLeavesIt pins the socket
// ownership rules of a rolling upgrade with a surge (two instances on one
// node for a while): the new instance takes the path over at once, the old
// one keeps its open connections, and on exit the old one leaves the path
// alone since it is no longer its own. Before, the second refused to
// start, and an instance removed the path on exit whoever's it was (Stop's
// os.Remove, and the listener's unlink on close).
func TestNewInstanceTakesOverTheSocketAndTheOldOneLeavesIt(t *testing.T) {
	h := newHarness(t, nil)
	opts := validOptions(t)
	opts.Endpoint = h.server.Socket()
	oldConn := dialSocket(t, opts.Endpoint)
	_, err := csipb.NewIdentityClient(oldConn).Probe(context.Background(), &csipb.ProbeRequest{})
	require.NoError(t, err)

	second, err := csi.NewServer(opts)
	require.NoError(t, err)
	require.NoError(t, second.Start())
	defer second.Stop(context.Background())

	// The old instance still answers its open connection.
	_, err = csipb.NewIdentityClient(oldConn).Probe(context.Background(), &csipb.ProbeRequest{})
	require.NoError(t, err)

	// The old instance stops: the path stays, and new clients reach the
	// new instance on it.
	h.stop()
	fi, err := os.Lstat(opts.Endpoint)
	require.NoError(t, err, "the old instance removed the socket the new one serves on")
	assert.Equal(t, os.ModeSocket, fi.Mode().Type())
	_, err = csipb.NewIdentityClient(dialSocket(t, opts.Endpoint)).Probe(context.Background(), &csipb.ProbeRequest{})
	require.NoError(t, err, "the new instance does not answer on the socket")

	// The new instance owns the path, so it removes it when it stops.
	second.Stop(context.Background())
	_, err = os.Lstat(opts.Endpoint)
	assert.ErrorIs(t, err, os.ErrNotExist, "Stop leaves its own socket behind")
	// No temporary socket is left beside it.
	entries, err := os.ReadDir(filepath.Dir(opts.Endpoint))
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), ".tmp", "temporary socket left behind")
	}
}

func dialSocket(t *testing.T, path string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
