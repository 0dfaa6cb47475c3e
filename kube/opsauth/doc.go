// Package opsauth guards HTTP endpoints of the node's ops port, such as
// /metrics and /debug/pprof/, with the API server's own authentication and
// authorization, as the API server guards its own /metrics: the request's
// bearer token must pass a TokenReview, and its user must be allowed the
// request's path by a SubjectAccessReview on that non-resource URL. Both
// answers are cached by kube.Reviewer.
package opsauth
