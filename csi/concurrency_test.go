package csi_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/connectors-node/connectors-node/csi"
)

// publishRetrying publishes as kubelet does: again after Aborted.
func publishRetrying(ctx context.Context, h *harness, req *csipb.NodePublishVolumeRequest) error {
	for {
		err := h.publish(ctx, req)
		if status.Code(err) != codes.Aborted {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// It also pins the serialized Mount calls: mount-utils' Mounter races on
// its lazy systemd detection when mounts run in parallel.
func TestConcurrentPublishesOfDifferentAndSameVolumes(t *testing.T) {
	h := newRealHarness(t, nil)
	ctx := context.Background()
	const distinct, same = 50, 10

	// Requests are built up front: the goroutines only call the server.
	var reqs []*csipb.NodePublishVolumeRequest
	tokenOf := func(id string) string { return "token-of-" + id }
	add := func(id string) {
		req := publishRequest(t, id, h.target(id))
		req.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, tokenOf(id), time.Now().Add(time.Hour))
		reqs = append(reqs, req)
	}
	for i := range distinct {
		add(fmt.Sprintf("vol-%d", i))
	}
	for range same {
		add("shared-vol")
	}

	errs := make(chan error, len(reqs))
	var wg sync.WaitGroup
	for _, req := range reqs {
		wg.Go(func() {
			if err := publishRetrying(ctx, h, req); err != nil {
				errs <- fmt.Errorf("publishing %s: %w", req.VolumeId, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	ids := map[string]bool{}
	for _, req := range reqs {
		ids[req.VolumeId] = true
	}
	for id := range ids {
		got, err := os.ReadFile(filepath.Join(h.target(id), "context.token"))
		if assert.NoError(t, err) {
			assert.Equal(t, tokenOf(id), string(got), "volume %s", id)
		}
	}
	assert.Len(t, mountsUnder(t, h.dir), distinct+1, "one tmpfs per volume, none stacked")

	unpublishErrs := make(chan error, len(ids))
	for id := range ids {
		wg.Go(func() {
			if err := h.unpublish(ctx, id, h.target(id)); err != nil {
				unpublishErrs <- fmt.Errorf("unpublishing %s: %w", id, err)
			}
		})
	}
	wg.Wait()
	close(unpublishErrs)
	for err := range unpublishErrs {
		t.Error(err)
	}
	assert.Empty(t, mountsUnder(t, h.dir), "no mount may leak")
}
