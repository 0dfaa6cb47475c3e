// Package status fills the status of Connectors and ConnectorClasses from
// the node service itself, so that no separate controller is needed.
//
// One DaemonSet pod writes: a Reconciler campaigns for a Lease in the
// service namespace (client-go leaderelection) and only while it holds the
// lease does it reconcile; losing the lease cancels the reconcile context,
// which stops every write at once. A node that does not lead watches the
// Lease instead of polling it and enters the election only when the Lease
// is absent, released or expired by its own clock, so at rest the leader's
// renewals are the only Lease requests. The leader reconciles from the node's
// informer cache through a rate-limited work queue and writes status with
// merge patches that carry the cached resourceVersion, so a conflict is
// retried from fresh data rather than overwriting it. Unchanged status is
// never written.
//
// For each Connector it sets status.proxy.httpAddress per the class's
// resolver (host form c-<name>.<ns>.svc.<domain> by default, path form by
// the connectors.cpaas.io/proxy-resolver annotation, under the class's own
// proxy when spec.proxy names one), owns a Service c-<name> that leads the
// host-form name to the proxy (a name clash is a condition, never an
// overwrite), and sets the conditions upstream names: ConnectorClassReady,
// SecretReady, LivenessReady, AuthReady, ProxyServiceReady and Ready, and
// status.api.path, its path on the Connectors API. For
// each ConnectorClass it sets status.api.address from spec.api, and
// ProxyReady, APIReady and Ready.
//
// The class's livenessProbe and authProbes run in a separate bounded pool
// with a rate limit, a per-Connector interval with jitter, backoff on
// failure and a timeout per probe. They go out through the proxy's SendAs:
// the same credential injection, CA pool and SSRF guard as proxied
// requests, and never to an address that is not the Connector's. Probes of
// kind api go through SendToAPI instead: below the class's resolved API
// address only, with the Connector in upstream's X-Plugin headers. A probe's
// response.cel is compiled once per class generation and evaluated with a
// cost and time bound against the status code, headers and body.
package status
