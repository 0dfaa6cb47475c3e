// Package apiserver starts a real kube-apiserver and etcd for tests, through
// controller-runtime's envtest, with ServiceAccount token issuing and RBAC
// authorization on.
//
// The binaries come from KUBEBUILDER_ASSETS or from the cache that
// `make testbin` fills. Without them a test is skipped, except in CI
// (CI=true), where it fails: there a missing binary is a build error.
package apiserver
