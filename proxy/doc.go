// Package proxy is the Connectors proxy: one HTTP listener that serves as a
// forward proxy (CONNECT and absolute-form requests) and as a reverse proxy
// (origin-form requests routed by host form or path form to a Connector).
//
// It checks the caller's ServiceAccount token and RBAC on each named
// Connector, and injects the Connector's credential only into requests whose
// target matches one of the Connector's addresses. CONNECT tunnels to a
// matched host are intercepted with leaf certificates signed by the proxy CA
// so that each inner request is checked too. Every upstream dial passes an
// SSRF guard that refuses link-local, metadata and the proxy's own addresses
// after DNS resolution and dials the checked IP.
//
// # The request pipeline
//
// Every request runs the same stages in the same order, in every mode and
// inside intercepted tunnels; pipeline.go states them in code (ServeHTTP,
// serve, exchange):
//
//	stage     what it does                                    where
//	serve     audit entry, scrubber, framing, method rules    pipeline.go, framing.go, rules.go
//	route     the Connector and target the request names      reverse.go, registry.go, forward.go, mitm.go, gateway.go
//	identify  the client's token                              access.go, rego.go (a class's authExtractor), gateway.go
//	admit     token review, pod binding, RBAC, Connectors     access.go, gateway.go (connectors/apis, openapi.go)
//	plan      credential, the Connector's CA, registry flow   plan.go, credential.go, secret.go, registry.go
//	send      token stripping, generator, rewrite, transport  send.go, striptoken.go, body.go, upstream.go, guard.go
//	scrub     response headers that echo an injected value    scrub.go
//	audit     one line and the metrics per request            record.go, audit.go, metrics.go
//
// Each mode has a resolver for route, identify and admit (resolveReverse,
// resolveForward, tunnel.resolve, and gateway.resolve for the Connectors
// API, which callers reach on a listener of its own with their own
// Kubernetes token and whose errors are metav1.Status); exchange runs it and then plan
// (planConnector) and send, which all modes share. SendAs, the status
// probes' way out, uses the same plan and registry round trip. CONNECT is
// the mode that sends nothing itself: it routes and admits the tunnel
// (connect.go) and intercepts it (mitm.go), or copies bytes blindly to an
// unmatched host when that is allowed.
//
// The stages share one value through the request's context, inflight: the
// audit entry and the scrubber, which serve sets, and the plan, which send
// sets for httputil.ReverseProxy's hooks. The framing and limit state of
// the client connection ride its connection context.
//
// The package owns the proxy handler (Proxy), the Connectors API handler
// (Proxy.Gateway) and the listeners and their graceful shutdown (Server). Address matching lives in the match
// subpackage and the registry token flow in registryauth.
package proxy
