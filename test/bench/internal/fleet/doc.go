// Package fleet runs real connectors-node binaries against one real API
// server for the memory and scale benchmarks: it installs the deploy/ RBAC
// and example classes, creates Connectors with their Secrets and the RBAC
// that lets pods use them, starts node processes with the deploy/
// ServiceAccount's token, publishes volumes through the kubelet stand-in
// (real tmpfs mounts), reads the nodes' and the API server's Prometheus
// metrics, and samples resident memory from /proc.
package fleet
