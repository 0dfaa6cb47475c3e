// Package node is the real-node suite: kube-apiserver (test/apiserver),
// kube-scheduler, kube-controller-manager, kubelet, containerd and runc run
// a node, all in a private mount and network namespace of the test, and
// deploy/ is installed through the overlay in overlay/ with the image
// `make image` builds. The DaemonSet pod the daemonset controller starts
// serves the CSI socket kubelet calls and the proxy the workload pods use.
// The test process also serves the cluster DNS (test/servers/clusterdns)
// that kubelet names in the pods' resolv.conf, so host-form addresses
// c-<name>.<ns>.svc.cluster.local resolve.
//
// The tests build what they run: the images with internal/imagebuild and
// the Kubernetes binaries with `make testbin` (hack/testbin.sh node).
// Missing binaries skip the suite outside CI and fail it in CI.
package node
