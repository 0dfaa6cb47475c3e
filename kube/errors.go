package kube

import "errors"

// Sentinel errors. Callers match them with errors.Is and map them to gRPC
// codes or HTTP statuses.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnauthenticated: the token is not valid for the proxy audience.
	ErrUnauthenticated = errors.New("token is not valid for this proxy")
	// ErrForbidden: RBAC does not allow the access.
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: the API server could not answer and nothing was cached
	// (HTTP 503, gRPC Unavailable).
	ErrUnavailable = errors.New("kubernetes API unavailable")
)
