package csi

import (
	"context"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// nodeServer answers the CSI Node service. It keeps no per-volume state
// besides the try-locks of calls in flight.
type nodeServer struct {
	csi.UnimplementedNodeServer
	opts       Options
	tmpfsBytes int64
	log        logr.Logger
	metrics    *metrics
	locks      *volumeLocks
	// mountMu serializes Mounter.Mount calls.
	mountMu sync.Mutex
}

var _ csi.NodeServer = (*nodeServer)(nil)

// NodeGetInfo returns the node ID. The plugin sets no volume limit and no
// topology.
func (n *nodeServer) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: n.opts.NodeID}, nil
}

// NodeGetCapabilities advertises VOLUME_MOUNT_GROUP, so kubelet passes the
// pod's fsGroup and the files are made readable by it.
func (n *nodeServer) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{Capabilities: []*csi.NodeServiceCapability{{
		Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{
			Type: csi.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP,
		}},
	}}}, nil
}

// NodeUnpublishVolume unmounts the volume's tmpfs and removes the target
// directory. A target that is already gone is success. What the plugin did
// not make for this volume (a file, another mount, another volume's tmpfs)
// is refused with FailedPrecondition and left in place. The mount table
// records the volume (volumeSource), so it works after a plugin restart.
func (n *nodeServer) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if len(req.GetVolumeId()) > maxVolumeID {
		return nil, status.Errorf(codes.InvalidArgument, "volume_id is %d bytes long, at most %d allowed", len(req.GetVolumeId()), maxVolumeID)
	}
	if req.GetTargetPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "target_path is required")
	}
	if err := checkTargetPath(req.GetTargetPath(), n.opts.KubeletRoot); err != nil {
		return nil, err
	}
	release, err := n.locks.lockCall(req.GetVolumeId(), req.GetTargetPath())
	if err != nil {
		return nil, err
	}
	defer release()
	if err := n.unpublish(req.GetVolumeId(), req.GetTargetPath()); err != nil {
		return nil, statusError(err, "unpublishing volume %q", req.GetVolumeId())
	}
	n.log.V(2).Info("volume unpublished", "volume_id", req.GetVolumeId(), "target_path", req.GetTargetPath())
	return &csi.NodeUnpublishVolumeResponse{}, nil
}
