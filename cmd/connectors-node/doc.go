// Command connectors-node runs on every node: the connectors-csi CSI node
// plugin, which mounts Connector configuration into pods, and the
// Connectors proxy, which checks a pod's token and RBAC and injects the
// tool's credential. The package holds flags, wiring and the operations
// endpoints (/healthz, /readyz, /metrics); the work is in csi, proxy,
// configgen and kube.
package main
