// Package v1alpha1 holds the connectors.alauda.io/v1alpha1 API types that the
// node service reads, Connector and ConnectorClass, and ResourceInterface,
// which it only installs. The types stay
// wire-compatible with the upstream API; the CRDs in deploy/base/crds are
// generated from them.
//
// +kubebuilder:object:generate=true
// +groupName=connectors.alauda.io
package v1alpha1
