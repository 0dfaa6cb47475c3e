// Package approval runs the AccessRequest controller of the approval flow
// (docs/approvals.md) in the status leader: for each request it validates
// the pod context, resolves the Connector, snapshots the matched
// AccessPolicies into status.policies, evaluates their checks (such as a
// Tekton ApprovalTask found by the pod's PipelineRun label) and, once they
// pass, syncs a Role and RoleBinding that grant the pod's ServiceAccount
// get on connectors/proxy/v1/pod/<namespace>/<pod> for that Connector only.
// The grant is removed when the pod ends or the Connector goes away, and
// the request's conditions say where it stands, as upstream names them.
package approval
