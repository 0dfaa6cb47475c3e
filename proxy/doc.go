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
// The package owns the proxy handler (Proxy) and the listener and its
// graceful shutdown (Server). Address matching lives in the match
// subpackage and the registry token flow in registryauth.
package proxy
