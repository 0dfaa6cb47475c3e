package csi

import (
	"context"
	"errors"
	"fmt"
	"path"
	"runtime/debug"
	"time"
	"unicode/utf8"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/go-logr/logr"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// redacted replaces a token in logged requests.
const redacted = "***stripped***"

// sanitize returns a loggable form of a CSI request or response: CSI secret
// fields stripped by protosanitizer and the token key of volume_context,
// which the CSI spec does not mark secret, replaced. The original is not
// modified.
func sanitize(msg any) string {
	if req, ok := msg.(*csi.NodePublishVolumeRequest); ok {
		clone := proto.Clone(req).(*csi.NodePublishVolumeRequest)
		for k, v := range clone.VolumeContext {
			if k == TokensKey {
				clone.VolumeContext[k] = redacted
			} else {
				clone.VolumeContext[k] = truncate(v, maxLoggedValue)
			}
		}
		clone.TargetPath = truncate(clone.TargetPath, maxLoggedValue)
		clone.VolumeId = truncate(clone.VolumeId, maxLoggedValue)
		msg = clone
	}
	return truncate(protosanitizer.StripSecrets(msg).String(), maxLoggedRequest)
}

// Bounds of what a log line or an error message carries of a request.
const (
	maxLoggedValue   = 512
	maxLoggedRequest = 16 << 10
	maxErrorMessage  = 2048
)

// truncate shortens s to at most n bytes (on a rune boundary) and says how
// long it was.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}

// boundStatus truncates the message of a status error, so an oversized
// request is not echoed back to kubelet (and into its logs) in full.
func boundStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || len(st.Message()) <= maxErrorMessage {
		return err
	}
	return status.Error(st.Code(), truncate(st.Message(), maxErrorMessage))
}

// callVerbosity is the log level of a successful call: publish and
// unpublish are worth a line, the frequent probes and queries are not.
func callVerbosity(method string) int {
	switch method {
	case "NodePublishVolume", "NodeUnpublishVolume":
		return 2
	default:
		return 5
	}
}

// interceptor logs, counts and times every call, turns a panic into
// Internal, and makes sure no error leaves without an explicit code.
func interceptor(log logr.Logger, m *metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		method := path.Base(info.FullMethod)
		log := log.WithValues("method", method)
		if v := log.V(4); v.Enabled() {
			v.Info("csi call", "request", sanitize(req))
		}
		defer func() {
			if r := recover(); r != nil {
				// The panic value is not logged: it could hold request data.
				log.Error(fmt.Errorf("panic of type %T", r), "csi call panicked", "stack", string(debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
			err = boundStatus(ensureStatus(err))
			code := status.Code(err)
			elapsed := time.Since(start)
			m.observe(method, code, elapsed)
			if err != nil {
				log.Error(errors.New(status.Convert(err).Message()), "csi call failed",
					"code", code.String(), "duration", elapsed, "request", sanitize(req))
				return
			}
			log.V(callVerbosity(method)).Info("csi call done", "code", code.String(), "duration", elapsed)
		}()
		return handler(ctx, req)
	}
}
