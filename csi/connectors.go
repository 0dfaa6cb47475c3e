package csi

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/kube"
	"github.com/connectors-node/connectors-node/kube/api/v1alpha1"
)

// resolve checks that user may get each Connector, reads it, checks its
// addresses and reads its class, in order. Access is checked before the read so that a pod learns
// nothing about Connectors it may not get. Errors are gRPC statuses.
func (n *nodeServer) resolve(ctx context.Context, user kube.User, refs []types.NamespacedName, pod kube.PodRef, sa string) ([]configgen.Connector, error) {
	out := make([]configgen.Connector, 0, len(refs))
	var waiting []kube.ApprovalStatus
	for _, ref := range refs {
		if err := n.opts.Authorizer.Authorize(ctx, user, ref.Namespace, ref.Name); err != nil {
			var fe *kube.ForbiddenError
			if n.opts.Approvals != nil && errors.As(err, &fe) && fe.Resource != v1alpha1.ConnectorResource {
				// Readable, but not usable through the proxy: approval.
				st, err := n.approval(ctx, pod, sa, ref)
				if err != nil {
					return nil, err
				}
				waiting = append(waiting, st)
				continue
			}
			if errors.Is(err, kube.ErrForbidden) {
				return nil, status.Errorf(codes.PermissionDenied, "%s may not get connector %q", user.Name, ref.String())
			}
			return nil, statusError(err, "checking access to connector %q", ref.String())
		}
		obj, err := n.opts.Objects.Connector(ctx, ref.Namespace, ref.Name)
		if errors.Is(err, kube.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "connector %q not found", ref.String())
		}
		if err != nil {
			return nil, statusError(err, "reading connector %q", ref.String())
		}
		// The CRD refuses such an address; one stored before that rule is
		// refused here, as the proxy refuses to match it.
		if err := obj.CheckAddresses(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "connector %q %v", ref.String(), err)
		}
		className := obj.Spec.ConnectorClassName
		if className == "" {
			return nil, status.Errorf(codes.FailedPrecondition, "connector %q has no spec.connectorClassName", ref.String())
		}
		class, err := n.opts.Objects.ConnectorClass(ctx, className)
		if errors.Is(err, kube.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "connector %q not found: its connectorclass %q does not exist", ref.String(), className)
		}
		if err != nil {
			return nil, statusError(err, "reading connectorclass %q", className)
		}
		out = append(out, configgen.Connector{
			Object:        obj,
			Class:         class,
			ProxyAddress:  n.proxyAddress(ctx, n.log, obj, class),
			ClassProxyURL: class.OwnProxy(n.opts.PublicURL.String()),
		})
	}
	if len(waiting) > 0 {
		return nil, n.waitForApproval(pod, waiting)
	}
	return out, nil
}
