package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/connectors-node/connectors-node/proxy/upstream"
)

// statusClientGone is recorded (never sent) when the client went away.
const statusClientGone = 499

// statusError is a failure with the status and body the client gets. msg
// is safe to show; err is only logged.
type statusError struct {
	status int
	msg    string
	err    error
	// header is set on the response (for 401/407 challenges).
	header http.Header
}

func (e *statusError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *statusError) Unwrap() error { return e.err }

func statusErrorf(status int, format string, args ...any) *statusError {
	return &statusError{status: status, msg: fmt.Sprintf(format, args...)}
}

// fail writes err to the client: a statusError as it is, anything else as
// a 500. The body never carries err's wrapped details.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *statusError
	if !errors.As(err, &se) {
		se = &statusError{status: http.StatusInternalServerError, msg: "internal error", err: err}
	}
	e := entryFrom(r.Context())
	if e != nil {
		e.err = se.err
	}
	if se.err != nil && se.status >= 500 {
		p.log.Error(se.err, "request failed", "status", se.status, "mode", e.modeOr(""), "host", r.Host)
	}
	h := w.Header()
	for k, v := range se.header {
		h[k] = v
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if e.modeOr("") == modeAPI {
		writeStatus(w, se)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(se.status)
	_, _ = fmt.Fprintf(w, "connectors proxy: %s\n", se.msg)
}

// writeStatus writes se as the Kubernetes metav1.Status that upstream's
// Connectors API clients expect.
func writeStatus(w http.ResponseWriter, se *statusError) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  se.msg,
		Reason:   statusReason(se.status),
		Code:     int32(se.status), //nolint:gosec // an HTTP status code
	}
	body, err := json.Marshal(st)
	if err != nil {
		body = []byte(`{"kind":"Status","apiVersion":"v1","status":"Failure"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(se.status)
	_, _ = w.Write(append(body, '\n'))
}

// statusReason is the metav1.StatusReason of an HTTP status.
func statusReason(code int) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusUnauthorized:
		return metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusMethodNotAllowed:
		return metav1.StatusReasonMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return metav1.StatusReasonRequestEntityTooLarge
	case http.StatusTooManyRequests:
		return metav1.StatusReasonTooManyRequests
	case http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	case http.StatusGatewayTimeout:
		return metav1.StatusReasonTimeout
	case http.StatusInternalServerError:
		return metav1.StatusReasonInternalError
	default:
		return metav1.StatusReasonUnknown
	}
}

// upstreamError is the ReverseProxy error handler: it classifies a failed
// round trip into one status.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	e := entryFrom(r.Context())
	if e != nil && e.body != nil && e.body.readErr() != nil {
		p.fail(w, r, &statusError{status: http.StatusBadRequest, msg: "malformed request body", err: e.body.readErr()})
		return
	}
	if r.Context().Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
		if e != nil {
			e.status = statusClientGone
			e.err = err
		}
		return
	}
	var se *statusError
	if errors.As(err, &se) {
		p.fail(w, r, se)
		return
	}
	if certNotTrusted(err) {
		p.untrusted(planFrom(r.Context()))
	}
	p.fail(w, r, classifyUpstream(err))
}

// certNotTrusted reports whether err is the upstream's certificate failing
// verification.
func certNotTrusted(err error) bool {
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &invalid) || errors.As(err, &verify)
}

func classifyUpstream(err error) *statusError {
	var refused *RefusedError
	var nerr net.Error
	var unsupported *upstream.UnsupportedError
	switch {
	case errors.As(err, &refused):
		return &statusError{status: http.StatusForbidden, msg: refused.Error(), err: err}
	case certNotTrusted(err):
		return &statusError{status: http.StatusBadGateway, msg: "upstream TLS certificate not trusted", err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return &statusError{status: http.StatusGatewayTimeout, msg: "upstream timed out", err: err}
	case errors.As(err, &unsupported):
		// A response head the upstream fast path does not read, to a
		// request it may not send twice.
		return &statusError{status: http.StatusBadGateway, msg: "upstream response refused: " + unsupported.Reason, err: err}
	default:
		return &statusError{status: http.StatusBadGateway, msg: "upstream unreachable", err: err}
	}
}

// apiUnavailable answers a request the Kubernetes API could not serve: 503,
// for the client to retry.
func apiUnavailable(err error) *statusError {
	return &statusError{status: http.StatusServiceUnavailable, msg: "kubernetes API unavailable, try again", err: err}
}
