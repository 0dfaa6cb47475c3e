// Package kube is the node service's view of the Kubernetes API: cached
// reads of Connectors, ConnectorClasses and Secrets, token and access review
// with caches, and the proxy CA kept in a Secret, with its certificates
// published (without the key) in a ConfigMap and followed across rotations.
package kube
