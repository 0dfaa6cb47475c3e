// Package approval runs the AccessRequest controller of the approval flow
// (docs/approvals.md) in the status leader: for each request it validates
// the pod context, resolves the Connector, snapshots the matched
// AccessPolicies into status.policies, evaluates their checks (such as a
// Tekton ApprovalTask found by the pod's PipelineRun label) and, once they
// pass, syncs a Role and RoleBinding that grant the pod's ServiceAccount
// get on connectors/proxy/v1/pod/<namespace>/<pod> for that Connector only.
// The grant is removed when the pod ends or the Connector goes away, and
// the request's conditions say where it stands, as upstream names them.
//
// For each AccessPolicy it writes status (matchedConnectors, conditions,
// observedGeneration) and syncs the grant of its defaultPermission: a Role
// with connectors/proxy on the matched Connectors, bound to the
// ServiceAccounts of its bindingTemplate that may read them.
package approval
