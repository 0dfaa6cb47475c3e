#!/usr/bin/env bash
# Builds the Kubernetes binaries the tests run into a cache directory outside
# the repository, keyed by their versions, and prints the directory. Builds
# only what is missing.
#
#   hack/testbin.sh        etcd, kube-apiserver and kubectl (the integration
#                          tests; kubectl is the client of the Kubernetes
#                          ConnectorClass's tests)
#   hack/testbin.sh node   also kubelet, kube-proxy, kube-scheduler,
#                          kube-controller-manager and CoreDNS (the real-node
#                          suite); CoreDNS's version is in its file name
#                          (coredns-<version>, linked as coredns), and
#                          Tekton Pipelines' controller, webhook and step
#                          binaries in tekton-<version>/ (linked as tekton)
#   hack/testbin.sh tekton the same as node
#
#   TESTBIN_DIR   override the cache directory
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kube_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$here/tools/testbin/kube-apiserver/go.mod")
node_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$here/tools/testbin/kube-node/go.mod")
etcd_version=$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$here/tools/testbin/etcd/go.mod")
coredns_version=$(awk '$1=="require" && $2=="github.com/coredns/coredns" {print $3}' "$here/tools/testbin/coredns/go.mod")
tekton_version=$(awk '$1=="require" && $2=="github.com/tektoncd/pipeline" {print $3}' "$here/tools/testbin/tekton/go.mod")
if [ "$kube_version" != "$node_version" ]; then
  echo "testbin: hack/tools/testbin/kube-apiserver pins $kube_version but hack/tools/testbin/kube-node pins $node_version" >&2
  exit 1
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}
dir=${TESTBIN_DIR:-$cache/connectors-node/testbin/kube-$kube_version-etcd-$etcd_version}
mkdir -p "$dir"

# One build at a time per cache directory: concurrent runs wait here instead
# of writing the same files.
exec 9>"$dir/.lock"
flock 9

# rebuild names a binary to build again although it is there.
rebuild=

build() { # name module-dir package [go build flags...]
  local name=$1 mod=$2 pkg=$3
  shift 3
  if [ -x "$dir/$name" ] && [ "$name" != "$rebuild" ]; then
    return
  fi
  echo "testbin: building $name into $dir (a cold build takes minutes)" >&2
  local start=$SECONDS
  (cd "$here/tools/testbin/$mod" && CGO_ENABLED=0 go build -trimpath "$@" -o "$dir/$name.tmp" "$pkg")
  mv "$dir/$name.tmp" "$dir/$name"
  echo "testbin: built $name in $((SECONDS - start))s" >&2
}

build etcd etcd go.etcd.io/etcd/server/v3
# Without the version stamp these report v0.0.0-master, which kubelet
# registers as the node's version, kubectl prints as its own, and Tekton's
# controller and webhook refuse as an API server's ("need at least v1.34").
stamp=(-ldflags "-X k8s.io/component-base/version.gitVersion=$kube_version")
# An API server of an earlier cache was built without the stamp; it is
# replaced in one rename, so a test starting it meanwhile runs the old one.
if [ -x "$dir/kube-apiserver" ] && ! "$dir/kube-apiserver" --version | grep -qF "$kube_version"; then
  rebuild=kube-apiserver
fi
build kube-apiserver kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "${stamp[@]}"
build kubectl kube-apiserver k8s.io/kubernetes/cmd/kubectl "${stamp[@]}"
case "${1:-}" in node | tekton) node=1 ;; *) node= ;; esac
if [ -n "$node" ]; then
  build kube-scheduler kube-node k8s.io/kubernetes/cmd/kube-scheduler "${stamp[@]}"
  build kube-controller-manager kube-node k8s.io/kubernetes/cmd/kube-controller-manager "${stamp[@]}"
  build kubelet kube-node k8s.io/kubernetes/cmd/kubelet "${stamp[@]}"
  build kube-proxy kube-node k8s.io/kubernetes/cmd/kube-proxy "${stamp[@]}"
  build "coredns-$coredns_version" coredns github.com/coredns/coredns
  ln -sfn "coredns-$coredns_version" "$dir/coredns"
  mkdir -p "$dir/tekton-$tekton_version"
  for b in controller webhook entrypoint nop workingdirinit sidecarlogresults; do
    build "tekton-$tekton_version/$b" tekton "github.com/tektoncd/pipeline/cmd/$b"
  done
  ln -sfn "tekton-$tekton_version" "$dir/tekton"
fi
echo "$dir"
