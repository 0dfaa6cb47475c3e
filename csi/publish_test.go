package csi_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/mount-utils"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/csi"
	"github.com/connectors-node/connectors-node/grammar/connref"
	"github.com/connectors-node/connectors-node/kube"
)

func TestNodePublishVolumeCodes(t *testing.T) {
	h := newHarness(t, nil)
	h.objects.addConnector(podNamespace, "classless", "", "https://x.example.com")
	h.objects.addConnector(podNamespace, "orphan", "nope", "https://y.example.com")
	h.auth.Deny(podNamespace + "/secret-git")
	h.auth.Deny("other/git")

	setAttr := func(k, v string) func(*csipb.NodePublishVolumeRequest) {
		return func(r *csipb.NodePublishVolumeRequest) { r.VolumeContext[k] = v }
	}
	delAttr := func(k string) func(*csipb.NodePublishVolumeRequest) {
		return func(r *csipb.NodePublishVolumeRequest) { delete(r.VolumeContext, k) }
	}
	many := make([]string, connref.Max+1)
	for i := range many {
		many[i] = fmt.Sprintf("c%d", i)
	}

	tests := []struct {
		name string
		edit func(*csipb.NodePublishVolumeRequest)
		want codes.Code
		// msg is a substring the error message must contain.
		msg string
	}{
		{"valid", nil, codes.OK, ""},
		{"no volume id", func(r *csipb.NodePublishVolumeRequest) { r.VolumeId = "" }, codes.InvalidArgument, "volume_id"},
		{"no volume id checked before target path", func(r *csipb.NodePublishVolumeRequest) {
			r.VolumeId, r.TargetPath, r.VolumeCapability = "", "", nil
		}, codes.InvalidArgument, "volume_id"},
		{"no target path", func(r *csipb.NodePublishVolumeRequest) { r.TargetPath = "" }, codes.InvalidArgument, "target_path"},
		{"no target path checked before capability", func(r *csipb.NodePublishVolumeRequest) {
			r.TargetPath, r.VolumeCapability = "", nil
		}, codes.InvalidArgument, "target_path"},
		{"no capability", func(r *csipb.NodePublishVolumeRequest) { r.VolumeCapability = nil }, codes.InvalidArgument, "volume_capability"},
		{"capability checked before readonly", func(r *csipb.NodePublishVolumeRequest) {
			r.VolumeCapability, r.Readonly = nil, false
		}, codes.InvalidArgument, "volume_capability"},
		{"not readonly", func(r *csipb.NodePublishVolumeRequest) { r.Readonly = false }, codes.InvalidArgument, "read-only"},
		{"block capability", func(r *csipb.NodePublishVolumeRequest) {
			r.VolumeCapability.AccessType = &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}
		}, codes.InvalidArgument, "mount"},
		{"not ephemeral", delAttr(csi.AttrEphemeral), codes.InvalidArgument, csi.AttrEphemeral},
		{"ephemeral false", setAttr(csi.AttrEphemeral, "false"), codes.InvalidArgument, csi.AttrEphemeral},
		{"no pod namespace", delAttr(csi.AttrPodNamespace), codes.FailedPrecondition, "podInfoOnMount"},
		{"no service account", delAttr(csi.AttrServiceAccount), codes.FailedPrecondition, "podInfoOnMount"},
		{"no connectors", delAttr(csi.AttrConnectors), codes.InvalidArgument, "connectors"},
		{"empty connectors", setAttr(csi.AttrConnectors, ""), codes.InvalidArgument, "connectors"},
		{"empty item", setAttr(csi.AttrConnectors, "git,,shared/registry"), codes.InvalidArgument, "item 2 is empty"},
		{"trailing comma", setAttr(csi.AttrConnectors, "git,"), codes.InvalidArgument, "connectors"},
		{"duplicate", setAttr(csi.AttrConnectors, "git,team-a/git"), codes.InvalidArgument, "twice"},
		{"dot dot", setAttr(csi.AttrConnectors, "../git"), codes.InvalidArgument, `".."`},
		{"too many slashes", setAttr(csi.AttrConnectors, "team-a/git/x"), codes.InvalidArgument, "more than one"},
		{"invalid name", setAttr(csi.AttrConnectors, "Git_Repo"), codes.InvalidArgument, "not a valid object name"},
		{"invalid namespace", setAttr(csi.AttrConnectors, "Team_A/git"), codes.InvalidArgument, "not a valid namespace"},
		{"empty namespace", setAttr(csi.AttrConnectors, "/git"), codes.InvalidArgument, "namespace"},
		{"too many connectors", setAttr(csi.AttrConnectors, strings.Join(many, ",")), codes.InvalidArgument, "at most"},
		{"spaces are trimmed", setAttr(csi.AttrConnectors, " git , shared/registry "), codes.OK, ""},
		{"list and deprecated name", setAttr(csi.AttrConnectorName, "git"), codes.InvalidArgument, "not both"},
		{"deprecated name", func(r *csipb.NodePublishVolumeRequest) {
			delete(r.VolumeContext, csi.AttrConnectors)
			r.VolumeContext[csi.AttrConnectorName] = "git"
		}, codes.OK, ""},
		{"deprecated name and namespace", func(r *csipb.NodePublishVolumeRequest) {
			delete(r.VolumeContext, csi.AttrConnectors)
			r.VolumeContext[csi.AttrConnectorName] = "registry"
			r.VolumeContext[csi.AttrConnectorNamespace] = "shared"
		}, codes.OK, ""},
		{"deprecated namespace alone", func(r *csipb.NodePublishVolumeRequest) {
			delete(r.VolumeContext, csi.AttrConnectors)
			r.VolumeContext[csi.AttrConnectorNamespace] = "shared"
		}, codes.InvalidArgument, csi.AttrConnectorNamespace},
		{"deprecated invalid name", func(r *csipb.NodePublishVolumeRequest) {
			delete(r.VolumeContext, csi.AttrConnectors)
			r.VolumeContext[csi.AttrConnectorName] = "a/b"
		}, codes.InvalidArgument, csi.AttrConnectorName},
		{"bad configuration names", setAttr(csi.AttrConfigurationNames, "gitconfig,,x"), codes.InvalidArgument, csi.AttrConfigurationNames},
		{"bad params json", setAttr(csi.AttrConfigurationParams, `{"notes":`), codes.InvalidArgument, csi.AttrConfigurationParams},
		{"params not objects", setAttr(csi.AttrConfigurationParams, `{"notes":1}`), codes.InvalidArgument, csi.AttrConfigurationParams},
		{"params null object", setAttr(csi.AttrConfigurationParams, `{"notes":null}`), codes.InvalidArgument, csi.AttrConfigurationParams},
		{"params array", setAttr(csi.AttrConfigurationParams, `[]`), codes.InvalidArgument, csi.AttrConfigurationParams},
		{"bad expiration", setAttr(csi.AttrTokenExpiration, "ten minutes"), codes.InvalidArgument, csi.AttrTokenExpiration},
		{"negative expiration", setAttr(csi.AttrTokenExpiration, "-10m"), codes.InvalidArgument, csi.AttrTokenExpiration},
		{"expiration longer than token only warns", setAttr(csi.AttrTokenExpiration, "48h"), codes.OK, ""},
		{"unknown attribute ignored", setAttr("something.else", "x"), codes.OK, ""},
		{"no token", delAttr(csi.TokensKey), codes.FailedPrecondition, "tokenRequests"},
		{"token for another audience", func(r *csipb.NodePublishVolumeRequest) {
			r.VolumeContext[csi.TokensKey] = tokensJSON(t, "other", testToken, time.Now().Add(time.Hour))
		}, codes.FailedPrecondition, audience},
		{"malformed tokens", setAttr(csi.TokensKey, `{"connectors-proxy":`), codes.InvalidArgument, csi.TokensKey},
		{"token in secrets", func(r *csipb.NodePublishVolumeRequest) {
			r.Secrets = map[string]string{csi.TokensKey: r.VolumeContext[csi.TokensKey]}
			delete(r.VolumeContext, csi.TokensKey)
		}, codes.OK, ""},
		{"bad mount group", func(r *csipb.NodePublishVolumeRequest) {
			r.VolumeCapability.GetMount().VolumeMountGroup = "wheel"
		}, codes.InvalidArgument, "volume_mount_group"},
		{"mount group", func(r *csipb.NodePublishVolumeRequest) {
			r.VolumeCapability.GetMount().VolumeMountGroup = "2000"
		}, codes.OK, ""},
		{"denied", setAttr(csi.AttrConnectors, "git,secret-git"), codes.PermissionDenied, `connector "team-a/secret-git"`},
		{"denied in another namespace", setAttr(csi.AttrConnectors, "other/git"), codes.PermissionDenied, `connector "other/git"`},
		{"missing connector", setAttr(csi.AttrConnectors, "git,missing"), codes.NotFound, `connector "team-a/missing" not found`},
		{"missing class", setAttr(csi.AttrConnectors, "orphan"), codes.NotFound, `connector "team-a/orphan" not found: its connectorclass "nope" does not exist`},
		{"connector without class", setAttr(csi.AttrConnectors, "classless"), codes.FailedPrecondition, "connectorClassName"},
		{"unknown configuration", setAttr(csi.AttrConfigurationNames, "nope"), codes.NotFound, "nope"},
		{"unknown configuration with exclusion", setAttr(csi.AttrConfigurationNames, "nope,!ca.cert"), codes.NotFound, "nope"},
		{"class configuration", setAttr(csi.AttrConfigurationNames, "notes,gitconfig,!ca.cert"), codes.OK, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("vol-%d", i)
			req := publishRequest(t, id, h.target(id))
			if tt.edit != nil {
				tt.edit(req)
			}
			err := h.publish(context.Background(), req)
			assert.Equal(t, tt.want, status.Code(err), "error: %v", err)
			if tt.msg != "" {
				assert.Contains(t, status.Convert(err).Message(), tt.msg)
			}
			if tt.want != codes.OK && req.TargetPath != "" {
				assertNoVolume(t, h.mounter, req.TargetPath)
			}
			if tt.want == codes.OK {
				require.NoError(t, h.unpublish(context.Background(), id, req.TargetPath))
				assertNoVolume(t, h.mounter, req.TargetPath)
			}
		})
	}
}

// assertNoVolume checks that target is neither mounted nor present.
func assertNoVolume(t *testing.T, m mount.Interface, target string) {
	t.Helper()
	mps, err := m.List()
	require.NoError(t, err)
	for _, mp := range mps {
		assert.NotEqual(t, target, mp.Path, "target is still mounted")
	}
	_, err = os.Lstat(target)
	assert.True(t, errors.Is(err, os.ErrNotExist), "target path still exists: %v", err)
}

func TestNodePublishVolumeLowerLayerCodes(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*harness)
		want  codes.Code
	}{
		{"access review unavailable", func(h *harness) { h.auth.SetErr(fmt.Errorf("sar: %w", kube.ErrUnavailable)) }, codes.Unavailable},
		{"access review failure", func(h *harness) { h.auth.SetErr(errors.New("boom")) }, codes.Internal},
		{"access review canceled", func(h *harness) { h.auth.SetErr(context.Canceled) }, codes.Canceled},
		{"objects unavailable", func(h *harness) { h.objects.SetErr(fmt.Errorf("read: %w", kube.ErrUnavailable)) }, codes.Unavailable},
		{"objects failure", func(h *harness) { h.objects.SetErr(errors.New("boom")) }, codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			tt.setup(h)
			req := publishRequest(t, "vol", h.target("vol"))
			err := h.publish(context.Background(), req)
			assert.Equal(t, tt.want, status.Code(err), "error: %v", err)
			assertNoVolume(t, h.mounter, req.TargetPath)
		})
	}
}

func TestNodePublishVolumeRenderCodes(t *testing.T) {
	tests := []struct {
		name   string
		render func(configgen.Input) (map[string][]byte, error)
		want   codes.Code
	}{
		{"template error", func(configgen.Input) (map[string][]byte, error) {
			return nil, &configgen.TemplateError{Class: "git", Configuration: "notes", Err: errors.New("bad")}
		}, codes.FailedPrecondition},
		{"invalid input", func(configgen.Input) (map[string][]byte, error) {
			return nil, &configgen.InvalidError{Field: "configuration.params", Reason: "unknown param"}
		}, codes.InvalidArgument},
		{"unknown configuration", func(configgen.Input) (map[string][]byte, error) {
			return nil, &configgen.UnknownConfigurationError{Names: []string{"x"}}
		}, codes.NotFound},
		{"unclassified error", func(configgen.Input) (map[string][]byte, error) {
			return nil, errors.New("boom")
		}, codes.Internal},
		{"file name with slash", func(configgen.Input) (map[string][]byte, error) {
			return map[string][]byte{"a/b": nil}, nil
		}, codes.InvalidArgument},
		{"file name with dot dot", func(configgen.Input) (map[string][]byte, error) {
			return map[string][]byte{"..data": nil}, nil
		}, codes.InvalidArgument},
		{"file name with leading dash", func(configgen.Input) (map[string][]byte, error) {
			return map[string][]byte{"-rf": nil}, nil
		}, codes.InvalidArgument},
		{"file name with NUL", func(configgen.Input) (map[string][]byte, error) {
			return map[string][]byte{"a\x00": nil}, nil
		}, codes.InvalidArgument},
		{"panic", func(configgen.Input) (map[string][]byte, error) {
			panic("renderer bug")
		}, codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(o *csi.Options) { o.Render = tt.render })
			req := publishRequest(t, "vol", h.target("vol"))
			err := h.publish(context.Background(), req)
			assert.Equal(t, tt.want, status.Code(err), "error: %v", err)
			assertNoVolume(t, h.mounter, req.TargetPath)
		})
	}
}

// failingMounter fails every mount.
type failingMounter struct{ *mount.FakeMounter }

func (failingMounter) Mount(string, string, string, []string) error {
	return errors.New("mount: permission denied")
}

func TestFailedFirstPublishRemovesTargetPath(t *testing.T) {
	h := newHarness(t, func(o *csi.Options) { o.Mounter = failingMounter{newFakeMounter()} })
	req := publishRequest(t, "vol", h.target("vol"))
	err := h.publish(context.Background(), req)
	assert.Equal(t, codes.Internal, status.Code(err), "error: %v", err)
	assertNoVolume(t, h.mounter, req.TargetPath)
}

func TestNodeUnpublishVolumeCodes(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name       string
		id, target string
		want       codes.Code
	}{
		{"no volume id", "", h.target("x"), codes.InvalidArgument},
		{"no target path", "x", "", codes.InvalidArgument},
		{"never published", "x", h.target("x"), codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.unpublish(context.Background(), tt.id, tt.target)
			assert.Equal(t, tt.want, status.Code(err), "error: %v", err)
		})
	}
}

func TestNodeUnpublishVolumeIsIdempotent(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	require.NoError(t, h.publish(ctx, req))
	for range 3 {
		require.NoError(t, h.unpublish(ctx, "vol", req.TargetPath))
	}
	assertNoVolume(t, h.mounter, req.TargetPath)
}

func TestPublishWhileAnotherCallRunsIsAborted(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	h := newHarness(t, func(o *csi.Options) {
		o.Render = func(in configgen.Input) (map[string][]byte, error) {
			entered <- struct{}{}
			<-release
			return configgen.Render(in)
		}
	})
	ctx := context.Background()
	req := publishRequest(t, "vol", h.target("vol"))
	first := make(chan error, 1)
	go func() { first <- h.publish(ctx, req) }()
	<-entered

	err := h.publish(ctx, req)
	assert.Equal(t, codes.Aborted, status.Code(err), "second publish: %v", err)
	err = h.unpublish(ctx, "vol", req.TargetPath)
	assert.Equal(t, codes.Aborted, status.Code(err), "unpublish during publish: %v", err)

	close(release)
	require.NoError(t, <-first)
	require.NoError(t, h.unpublish(ctx, "vol", req.TargetPath))
}
