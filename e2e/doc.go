// Package e2e holds the end-to-end suite: the whole product as a user meets
// it. One shared harness (TestMain) builds bin/connectors-node, starts a real
// kube-apiserver with deploy/'s namespace and RBAC and the example
// ConnectorClasses, and runs the binary as a subprocess with the
// connectors-node ServiceAccount's own kubeconfig. Each story then plays
// kubelet over the CSI socket (test/servers/kubelet) and runs the real clients (git,
// curl) against real servers through the proxy.
//
// Every story checks the real outcome (clone content, HTTP bodies, gRPC
// codes) and that the tool's real credential is in no mounted file, no line
// of the connectors-node log and none of the output the test captured.
//
// The suite needs root (volumes are tmpfs mounts), the kube-apiserver and
// etcd test binaries (`make testbin`), git and curl. Without them the tests
// skip, except in CI (CI=true), where they fail.
package e2e
