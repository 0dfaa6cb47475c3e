// Package csi is the Connectors CSI node plugin (driver connectors-csi).
//
// It owns the Identity and Node gRPC services, the unix-socket Server that
// serves them, and the life of each inline ephemeral volume: reading the
// volume attributes and the kubelet-projected token, checking that the pod's
// ServiceAccount may get every named Connector, rendering the files with
// configgen, and publishing them into a tmpfs of the volume's own with the
// atomic ..data symlink swap (package csi/atomicwriter). Volumes keep no
// in-memory state: a restarted plugin republishes and unpublishes what an
// earlier process mounted.
//
// Every error a CSI call returns carries an explicit gRPC code. The pod's
// token never appears in a log line or an error message.
package csi
