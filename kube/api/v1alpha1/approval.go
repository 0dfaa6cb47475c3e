package v1alpha1

// Resources and names of the approval flow (docs/approvals.md).
const (
	AccessPolicyResource  = "accesspolicies"
	AccessRequestResource = "accessrequests"

	// PodProxySubresourcePrefix starts the pod-scoped proxy permission
	// connectors/proxy/v1/pod/<namespace>/<name>, as upstream names it.
	PodProxySubresourcePrefix = ProxySubresource + "/v1/pod/"

	// Labels the CSI plugin puts on the AccessRequests it creates, as
	// upstream does, to find the requests of a pod.
	ContextObjectKindLabel      = "connectors.cpaas.io/contextObjectKind"
	ContextObjectNameLabel      = "connectors.cpaas.io/contextObjectName"
	ContextObjectNamespaceLabel = "connectors.cpaas.io/contextObjectNamespace"
	ConnectorLabel              = "connectors.cpaas.io/connector"

	// AccessRequestLabel names, on a generated Role and RoleBinding, the
	// AccessRequest they grant.
	AccessRequestLabel = "connectors.alauda.io/accessRequest"
	// AccessPolicyLabel names, on the Role and RoleBinding of a policy's
	// defaultPermission, the AccessPolicy they grant.
	AccessPolicyLabel = "connectors.alauda.io/accessPolicy"
)

// AccessRequest condition types, as upstream names them.
const (
	ConditionReady                = "Ready"
	ConditionContextObjectValid   = "ContextObjectValid"
	ConditionConnectorResolved    = "ConnectorResolved"
	ConditionAccessPolicyMatched  = "AccessPolicyMatched"
	ConditionAccessCheckReady     = "AccessCheckReady"
	ConditionAccessPermissionSync = "AccessPermissionSync"
)

// AccessPolicy condition types, as upstream names them; Ready sums them up.
const (
	ConditionConnectorsMatched = "ConnectorsMatched"
	ConditionPermissionSynced  = "PermissionSynced"
)

// Condition reasons of the approval flow.
const (
	ReasonActive            = "Active"
	ReasonCompleted         = "Completed"
	ReasonNotFound          = "NotFound"
	ReasonInvalid           = "Invalid"
	ReasonResolved          = "Resolved"
	ReasonMatched           = "Matched"
	ReasonNoMatched         = "NoMatched"
	ReasonPassed            = "Passed"
	ReasonRejected          = "Rejected"
	ReasonPending           = "Pending"
	ReasonFailed            = "Failed"
	ReasonSynced            = "Synced"
	ReasonSyncFailed        = "SyncFailed"
	ReasonPermissionCleanUp = "PermissionCleanUp"
	// ReasonNoPermissionRequired: a policy has nothing to grant (no
	// defaultPermission, no matched Connector or no subject left).
	ReasonNoPermissionRequired = "NoPermissionRequired"
)

// PodProxySubresource is the pod-scoped proxy permission of the pod
// namespace/name: the subresource of connectors an approval grants.
func PodProxySubresource(namespace, name string) string {
	return PodProxySubresourcePrefix + namespace + "/" + name
}

// FindCondition returns the condition of type t, or nil.
func FindCondition(conds []Condition, t string) *Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}
