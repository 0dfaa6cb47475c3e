package csi

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/connectors-node/connectors-node/configgen"
	"github.com/connectors-node/connectors-node/csi/atomicwriter"
	"github.com/connectors-node/connectors-node/kube"
)

// codeOf maps an error of a lower layer to the gRPC code a CSI call answers
// with. Anything unclassified is Internal, never Unknown.
func codeOf(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	// Before the deadline: an API call that timed out wraps both, and the
	// documented answer for an API that does not answer is Unavailable.
	case errors.Is(err, kube.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	// What is at the target is not this volume's: the call may succeed once
	// it is gone, so it is the node's state, not the request, that is wrong.
	case errors.Is(err, errForeignMount), errors.Is(err, errOtherVolume),
		errors.Is(err, errTargetNotEmpty), errors.Is(err, errNotDirectory):
		return codes.FailedPrecondition
	case errors.Is(err, kube.ErrForbidden):
		return codes.PermissionDenied
	case errors.Is(err, kube.ErrNotFound), errors.Is(err, configgen.ErrUnknownConfiguration):
		return codes.NotFound
	case errors.Is(err, configgen.ErrInvalid), errors.Is(err, atomicwriter.ErrInvalidName):
		return codes.InvalidArgument
	case errors.Is(err, configgen.ErrTemplate):
		return codes.FailedPrecondition
	default:
		return codes.Internal
	}
}

// statusError returns err unchanged when it already is a gRPC status, and
// otherwise a status with the code codeOf picks and the message
// "<context>: <err>".
func statusError(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codeOf(err), "%s: %v", fmt.Sprintf(format, args...), err)
}

// ensureStatus makes sure an error leaving the server has an explicit code:
// a plain error becomes Internal instead of Unknown.
func ensureStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}
