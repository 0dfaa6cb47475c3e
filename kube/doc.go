// Package kube is the node service's view of the Kubernetes API: cached
// reads of Connectors, ConnectorClasses and Secrets, token and access review
// with caches, and API resilience. The proxy CA is in kube/ca.
package kube
