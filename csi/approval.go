package csi

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/kube"
)

// ErrorFile is the only file of a volume whose AccessRequest was rejected:
// a google.rpc.Status in JSON, as upstream writes it.
const ErrorFile = ".error.json"

// approval creates or reuses the pod's AccessRequest for ref and returns
// its state when it is pending. A rejected request is a *rejectedError; a
// request that can never be granted is PermissionDenied.
func (n *nodeServer) approval(ctx context.Context, pod kube.PodRef, sa string, ref types.NamespacedName) (kube.ApprovalStatus, error) {
	if pod.Name == "" || pod.UID == "" {
		return kube.ApprovalStatus{}, status.Errorf(codes.FailedPrecondition,
			"connector %q needs approval, which needs the pod's name and uid: set podInfoOnMount: true on the CSIDriver", ref.String())
	}
	st, err := n.opts.Approvals.Request(ctx, pod, sa, ref)
	if err != nil {
		return st, statusError(err, "requesting access to connector %q", ref.String())
	}
	switch st.State {
	case kube.ApprovalRejected:
		msg := fmt.Sprintf("access to connector %q was rejected (AccessRequest %s): %s", ref.String(), st.Request, st.Message)
		if n.opts.Events != nil {
			n.opts.Events.PodWarning(pod, ReasonAccessRejected, "MountVolume", msg+"; the volume holds only "+ErrorFile)
		}
		return st, &rejectedError{msg: msg}
	case kube.ApprovalDenied:
		return st, status.Errorf(codes.PermissionDenied, "system:serviceaccount:%s:%s may not use connector %q through the proxy (AccessRequest %s): %s",
			pod.Namespace, sa, ref.String(), st.Request, st.Message)
	case kube.ApprovalGranted:
		// Granted, but the access review above did not see it yet (RBAC
		// propagation, or a cached denial): retry shortly.
		st.Message = "the permission is granted and takes effect in a few seconds"
	}
	return st, nil
}

// waitForApproval is the retryable answer while AccessRequests are
// pending; kubelet retries the publish. The pod gets a Warning Event
// naming them.
func (n *nodeServer) waitForApproval(pod kube.PodRef, waiting []kube.ApprovalStatus) error {
	parts := make([]string, len(waiting))
	for i, st := range waiting {
		parts[i] = fmt.Sprintf("AccessRequest %s: %s", st.Request, st.Message)
	}
	msg := "waiting for approval to use the connectors through the proxy: " + strings.Join(parts, "; ")
	if n.opts.Events != nil {
		n.opts.Events.PodWarning(pod, ReasonWaitingForApproval, "MountVolume", msg)
	}
	return status.Error(codes.Unavailable, msg)
}

// rejectedError is a rejected AccessRequest: the volume is published with
// only ErrorFile.
type rejectedError struct{ msg string }

func (e *rejectedError) Error() string { return e.msg }

// files is the volume of a rejected request.
func (e *rejectedError) files() map[string][]byte {
	b, err := protojson.Marshal(status.New(codes.PermissionDenied, e.msg).Proto())
	if err != nil {
		b = []byte(`{"code":7}`)
	}
	return map[string][]byte{ErrorFile: append(b, '\n')}
}
