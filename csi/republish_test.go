package csi_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/mount-utils"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/kube"
)

func readVolumeFile(t *testing.T, target, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(target, name))
	require.NoError(t, err)
	return string(b)
}

func dataVersion(t *testing.T, target string) string {
	t.Helper()
	v, err := os.Readlink(filepath.Join(target, "..data"))
	require.NoError(t, err)
	return v
}

func countMounts(t *testing.T, m mount.Interface, target string) int {
	t.Helper()
	mps, err := m.List()
	require.NoError(t, err)
	n := 0
	for _, mp := range mps {
		if mp.Path == target {
			n++
		}
	}
	return n
}

func republishFailures(t testing.TB, h *harness) float64 {
	t.Helper()
	mfs, err := h.registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "connectors_csi_republish_failures_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("republish failure metric not registered")
	return 0
}

func TestRepublishSwapsNewToken(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	require.NoError(t, h.publish(ctx, req))
	assert.Equal(t, testToken, readVolumeFile(t, req.TargetPath, "context.token"))
	before := dataVersion(t, req.TargetPath)

	req.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, "new-token", time.Now().Add(time.Hour))
	require.NoError(t, h.publish(ctx, req))
	assert.Equal(t, "new-token", readVolumeFile(t, req.TargetPath, "context.token"))
	assert.NotEqual(t, before, dataVersion(t, req.TargetPath))
	assert.Equal(t, 1, countMounts(t, h.mounter, req.TargetPath), "republish must reuse the mount")

	req.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, "third-token", time.Now().Add(time.Hour))
	require.NoError(t, h.publish(ctx, req))
	entries, err := os.ReadDir(req.TargetPath)
	require.NoError(t, err)
	versions := 0
	for _, e := range entries {
		if e.IsDir() {
			versions++
		}
	}
	assert.Equal(t, 3, versions, "the current version and the two before it are kept while young")

	for _, tok := range []string{"fourth-token", "fifth-token"} {
		req.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, tok, time.Now().Add(time.Hour))
		require.NoError(t, h.publish(ctx, req))
	}
	entries, err = os.ReadDir(req.TargetPath)
	require.NoError(t, err)
	versions = 0
	for _, e := range entries {
		if e.IsDir() {
			versions++
		}
	}
	assert.Equal(t, 5, versions, "versions younger than the grace period stay for readers that resolved them")
}

func TestRepublishWithSameContentKeepsVersion(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	require.NoError(t, h.publish(ctx, req))
	before := dataVersion(t, req.TargetPath)
	require.NoError(t, h.publish(ctx, req))
	assert.Equal(t, before, dataVersion(t, req.TargetPath))
	assert.Equal(t, 1, countMounts(t, h.mounter, req.TargetPath))
}

func TestRepublishFailureKeepsFilesAndSucceeds(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(*harness)
	}{
		{"access revoked", func(h *harness) { h.auth.Deny(podNamespace + "/git") }},
		{"connector deleted", func(h *harness) {
			h.objects.DeleteConnector(podNamespace, "git")
		}},
		{"api unavailable", func(h *harness) { h.objects.SetErr(kube.ErrUnavailable) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			ctx := context.Background()
			req := publishRequest(t, "vol", h.target("vol"))
			require.NoError(t, h.publish(ctx, req))
			tt.breakIt(h)

			req.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, "new-token", time.Now().Add(time.Hour))
			require.NoError(t, h.publish(ctx, req), "a failed republish must answer OK")
			assert.Equal(t, testToken, readVolumeFile(t, req.TargetPath, "context.token"))
			assert.Equal(t, 1.0, republishFailures(t, h))
			assert.Equal(t, 1, countMounts(t, h.mounter, req.TargetPath))
		})
	}
}

func TestRepublishRenderFailureKeepsFiles(t *testing.T) {
	fail := make(chan bool, 1)
	fail <- false
	h := newHarness(t, func(o *csi.Options) {
		o.Render = func(in configgen.Input) (map[string][]byte, error) {
			if f := <-fail; f {
				fail <- f
				return nil, &configgen.TemplateError{Class: "git", Configuration: "notes", Err: errors.New("bad")}
			}
			fail <- true
			return configgen.Render(in)
		}
	})
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	require.NoError(t, h.publish(ctx, req))
	req.VolumeContext[csi.TokensKey] = tokensJSON(t, audience, "new-token", time.Now().Add(time.Hour))
	require.NoError(t, h.publish(ctx, req))
	assert.Equal(t, testToken, readVolumeFile(t, req.TargetPath, "context.token"))
	assert.Equal(t, 1.0, republishFailures(t, h))
}

// callCount is connectors_csi_calls_total for method and code.
func callCount(t *testing.T, h *harness, method, code string) float64 {
	t.Helper()
	mfs, err := h.registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "connectors_csi_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == method && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestCallsAreCountedByMethodAndCode(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	require.NoError(t, h.publish(ctx, req))
	req.VolumeContext[csi.AttrConnectors] = "missing"
	req.VolumeId, req.TargetPath = "vol2", h.target("vol2")
	require.Error(t, h.publish(ctx, req))
	assert.Equal(t, 1.0, callCount(t, h, "NodePublishVolume", "OK"))
	assert.Equal(t, 1.0, callCount(t, h, "NodePublishVolume", "NotFound"))
}

// A plugin that stopped between mounting and writing leaves a tmpfs without
// files; the retried publish must fail visibly (and clean up) instead of
// passing off an empty volume as a republish.
func TestUnfinishedFirstPublishIsNotARepublish(t *testing.T) {
	for _, tt := range []struct {
		name       string
		connectors string
		wantErr    bool
	}{
		{"render fails", "missing", true},
		{"render works", "git", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			ctx := context.Background()
			req := publishRequest(t, "vol", h.target("vol"))
			req.VolumeContext[csi.AttrConnectors] = tt.connectors
			require.NoError(t, os.MkdirAll(req.TargetPath, 0o750))
			require.NoError(t, h.mounter.Mount("connectors-csi", req.TargetPath, "tmpfs", nil))

			err := h.publish(ctx, req)
			if tt.wantErr {
				require.Error(t, err)
				assertNoVolume(t, h.mounter, req.TargetPath)
				assert.Equal(t, 0.0, republishFailures(t, h))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, testToken, readVolumeFile(t, req.TargetPath, "context.token"))
			assert.Equal(t, 1, countMounts(t, h.mounter, req.TargetPath))
		})
	}
}
