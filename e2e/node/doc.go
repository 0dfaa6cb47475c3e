// Package node is the real-node suite: a cluster of two real nodes with a
// pod network. kube-apiserver (test/apiserver), kube-scheduler and
// kube-controller-manager (which allocates the nodes' pod CIDRs) run in a
// private mount and network namespace of the test; each node is a mount
// and network namespace of its own, linked to the test's by a bridge, with
// its containerd, runc, kubelet, kube-proxy (iptables mode) and a bridge
// CNI network on its pod CIDR. CoreDNS runs as a Deployment behind the
// kube-dns Service; it maps the names of the tests' servers to the test's
// address. deploy/ is installed through the overlay in overlay/, which
// changes only the images and the token life, with the images `make image`
// builds: the DaemonSet pods run on the pod network, and workload pods
// reach their node's proxy through the Service connectors-proxy at the
// shipped public URL, with every token bound to its pod's address.
//
// The tests build what they run: the images with internal/imagebuild and
// the Kubernetes binaries, CoreDNS and Tekton Pipelines with `make testbin`
// (hack/testbin.sh node). Missing binaries skip the suite outside CI and
// fail it in CI. The TestTekton stories install Tekton from its release
// manifests on first use (tekton_harness_test.go) and run the Tasks of
// examples/tekton as real TaskRuns.
package node
