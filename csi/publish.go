package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/csi/atomicwriter"
	"github.com/connectors-node/connectors-node/kube"
)

// NodePublishVolume renders the files of the named Connectors and publishes
// them into a tmpfs at the target path.
//
// The first publish mounts the tmpfs and, if anything fails, leaves no mount
// and no directory behind. A republish (the target is already mounted;
// kubelet calls again with a fresh token) swaps in the new files when they
// differ; if it fails, the previous files stay, the call succeeds, and the
// failure is logged and counted, because an error would make kubelet tear
// the volume down.
func (n *nodeServer) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	if err := checkPublishArguments(req); err != nil {
		return nil, err
	}
	volumeID, target := req.GetVolumeId(), req.GetTargetPath()
	if err := checkTargetPath(target, n.opts.KubeletRoot); err != nil {
		return nil, err
	}
	release, err := n.locks.lockCall(volumeID, target)
	if err != nil {
		return nil, err
	}
	defer release()

	vc := req.GetVolumeContext()
	log := n.log.WithValues("volume_id", volumeID, "target_path", target,
		"pod", truncate(vc[AttrPodNamespace], 253)+"/"+truncate(vc[AttrPodName], 253), "pod_uid", truncate(vc[AttrPodUID], 64))

	// Under the target's lock: a mount found here must be this volume's (a
	// republish, or a first publish that did not finish), and is never one
	// to stack another on.
	mounted, err := n.isMounted(target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "volume %q: %v", volumeID, err)
	}
	if mounted {
		if err := checkOwnMount(n.opts.Mounter, target, volumeID); err != nil {
			return nil, statusError(err, "volume %q: target_path %q", volumeID, target)
		}
	} else if err := checkEmptyTarget(target); err != nil {
		return nil, err
	}
	published := mounted && hasFiles(target)
	files, p, missing, err := n.render(ctx, req, log)
	if published {
		n.republish(target, files, p, err, log)
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err != nil {
		if mounted {
			n.cleanup(volumeID, target, log)
		}
		return nil, err
	}
	if err := n.publishNew(volumeID, target, files, p, mounted, log); err != nil {
		return nil, statusError(err, "publishing volume %q", volumeID)
	}
	log.V(2).Info("volume published", "files", len(files))
	if len(missing) > 0 {
		n.reportMissing(vc, missing, log)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// checkPublishArguments checks the request in CSI order: volume ID, target
// path, capability; then read-only, mount access and ephemeral.
func checkPublishArguments(req *csi.NodePublishVolumeRequest) error {
	switch {
	case req.GetVolumeId() == "":
		return status.Error(codes.InvalidArgument, "volume_id is required")
	case len(req.GetVolumeId()) > maxVolumeID:
		return status.Errorf(codes.InvalidArgument, "volume_id is %d bytes long, at most %d allowed", len(req.GetVolumeId()), maxVolumeID)
	case req.GetTargetPath() == "":
		return status.Error(codes.InvalidArgument, "target_path is required")
	case req.GetVolumeCapability() == nil:
		return status.Error(codes.InvalidArgument, "volume_capability is required")
	case !req.GetReadonly():
		return status.Error(codes.InvalidArgument, "the volume must be read-only: set readOnly: true on the pod's csi volume")
	case req.GetVolumeCapability().GetMount() == nil:
		return status.Error(codes.InvalidArgument, "volume_capability must be a mount: block access is not supported")
	case req.GetVolumeContext()[AttrEphemeral] != "true":
		return status.Errorf(codes.InvalidArgument,
			"only inline ephemeral volumes are supported (volume attribute %s is not \"true\")", AttrEphemeral)
	}
	return checkSizes(req.GetVolumeContext(), req.GetSecrets())
}

// render reads the attributes and the token, checks access to and reads
// every Connector, and renders the volume's files. It also returns the
// configuration.names that nothing provides (the volume renders without
// them when at least one is found). Errors are gRPC statuses.
func (n *nodeServer) render(ctx context.Context, req *csi.NodePublishVolumeRequest, log logr.Logger) (map[string][]byte, perms, []string, error) {
	p, err := permsFor(req.GetVolumeCapability().GetMount().GetVolumeMountGroup())
	if err != nil {
		return nil, p, nil, status.Error(codes.InvalidArgument, err.Error())
	}
	attrs, err := parseAttributes(req.GetVolumeContext())
	if err != nil {
		return nil, p, nil, err
	}
	token, err := podToken(req.GetSecrets(), req.GetVolumeContext(), n.opts.Audience)
	if err != nil {
		return nil, p, nil, err
	}
	n.checkExpiration(attrs.TokenExpiration, token, log)
	user := kube.ServiceAccountUser(attrs.PodNamespace, attrs.ServiceAccount)
	pod := kube.PodRef{Namespace: attrs.PodNamespace, Name: attrs.PodName, UID: req.GetVolumeContext()[AttrPodUID]}
	if n.opts.Approvals != nil {
		// As the proxy sees the pod's bound token: a pod-scoped grant counts.
		user = kube.PodUser(pod, attrs.ServiceAccount)
	}
	connectors, err := n.resolve(ctx, user, attrs.Connectors, pod, attrs.ServiceAccount)
	var rejected *rejectedError
	if errors.As(err, &rejected) {
		// The workload fails at once on .error.json instead of waiting.
		return rejected.files(), p, nil, nil
	}
	if err != nil {
		return nil, p, nil, err
	}
	caPEM := n.opts.CABundle()
	if len(caPEM) == 0 {
		return nil, p, nil, status.Error(codes.Unavailable, "the proxy CA certificates are not loaded yet")
	}
	in := configgen.Input{
		Connectors:     connectors,
		Token:          token.Token,
		ProxyURL:       n.opts.PublicURL,
		ClusterDomain:  n.opts.ClusterDomain,
		CACertPEM:      caPEM,
		SystemRootsPEM: n.opts.SystemRootsPEM,
		Configurations: attrs.Include,
		Exclude:        attrs.Exclude,
		Params:         attrs.Params,
	}
	files, err := n.opts.Render(in)
	if err != nil {
		return nil, p, nil, statusError(err, "rendering the volume files")
	}
	return files, p, configgen.Missing(in), nil
}

// reportMissing logs the configuration.names that were not found and
// records them as a Warning Event on the pod, as upstream does.
func (n *nodeServer) reportMissing(vc map[string]string, missing []string, log logr.Logger) {
	note := fmt.Sprintf("volume attribute %s: %s not found in the mounted connectors' classes or the built-in generators; the volume was mounted without %s",
		AttrConfigurationNames, quoteList(missing), pronoun(len(missing)))
	log.Info("configurations not found; mounted without them", "configurations", missing)
	if n.opts.Events == nil || vc[AttrPodName] == "" {
		return
	}
	pod := kube.PodRef{Namespace: vc[AttrPodNamespace], Name: vc[AttrPodName], UID: vc[AttrPodUID]}
	n.opts.Events.PodWarning(pod, ReasonConfigurationNotFound, "MountVolume", note)
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, s := range names {
		q[i] = strconv.Quote(s)
	}
	if len(q) == 1 {
		return "configuration " + q[0] + " was"
	}
	return "configurations " + strings.Join(q, ", ") + " were"
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// checkExpiration warns when token.expiration asks for more than the token
// kubelet projected lives: the CSIDriver's expirationSeconds decides. The
// token's whole lifetime (exp - iat) is compared, not what is left of it, so
// a republish late in the token's life does not warn.
func (n *nodeServer) checkExpiration(requested time.Duration, token projectedToken, log logr.Logger) {
	if requested == 0 {
		return
	}
	lifetime, ok := tokenLifetime(token.Token)
	if !ok && !token.ExpirationTimestamp.IsZero() {
		lifetime, ok = time.Until(token.ExpirationTimestamp), true
	}
	if ok && requested > lifetime {
		log.Info("token.expiration is longer than the projected token lives; the CSIDriver tokenRequests expirationSeconds decides the lifetime",
			"requested", requested.String(), "token_lifetime", lifetime.Round(time.Second).String())
	}
}

// hasFiles reports whether target holds a published version. A tmpfs
// without one is left by a first publish that did not finish (the plugin
// stopped between mount and write): it is treated as a first publish.
func hasFiles(target string) bool {
	_, err := os.Lstat(filepath.Join(target, atomicwriter.DataLink))
	return err == nil
}

// publishNew mounts volumeID's tmpfs at target (unless mounted says a
// previous, unfinished publish did) and writes files into it. On failure it
// unmounts and removes the target.
func (n *nodeServer) publishNew(volumeID, target string, files map[string][]byte, p perms, mounted bool, log logr.Logger) error {
	success := false
	defer func() {
		if !success {
			n.cleanup(volumeID, target, log)
		}
	}()
	if !mounted {
		if err := n.mountTmpfs(volumeID, target, p); err != nil {
			return err
		}
	}
	if _, err := writeFiles(target, files, p); err != nil {
		return err
	}
	success = true
	return nil
}

// cleanup unmounts and removes the target of a failed first publish.
func (n *nodeServer) cleanup(volumeID, target string, log logr.Logger) {
	if err := n.unmountAndRemove(volumeID, target); err != nil {
		log.Error(err, "cleaning up after a failed publish")
	}
}

// republish swaps in newly rendered files. A failure, of the render
// (renderErr) or of the write, keeps the current files and is only logged
// and counted.
func (n *nodeServer) republish(target string, files map[string][]byte, p perms, renderErr error, log logr.Logger) {
	err := renderErr
	changed := false
	if err == nil {
		changed, err = writeFiles(target, files, p)
	}
	if err != nil {
		n.metrics.republishFailures.Inc()
		st := status.Convert(ensureStatus(err))
		log.Error(errors.New(st.Message()), "republish failed; the volume keeps its previous files", "code", st.Code().String())
		return
	}
	log.V(3).Info("volume republished", "changed", changed)
}
