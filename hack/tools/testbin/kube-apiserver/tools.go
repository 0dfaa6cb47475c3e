//go:build tools

// Package tools pins the kube-apiserver used by the integration tests and
// the kubectl the Kubernetes ConnectorClass's tests run through the proxy.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
