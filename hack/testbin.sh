#!/usr/bin/env bash
# Builds the kube-apiserver and etcd binaries used by the integration tests
# into a cache directory outside the repository, keyed by their versions.
# Prints the directory. Builds only what is missing.
#
#   TESTBIN_DIR   override the cache directory
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kube_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$here/testbin/kube-apiserver/go.mod")
etcd_version=$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$here/testbin/etcd/go.mod")
cache=${XDG_CACHE_HOME:-$HOME/.cache}
dir=${TESTBIN_DIR:-$cache/connectors-node/testbin/kube-$kube_version-etcd-$etcd_version}
mkdir -p "$dir"

build() { # name module-dir package
  local name=$1 mod=$2 pkg=$3
  if [ -x "$dir/$name" ]; then
    return
  fi
  echo "testbin: building $name into $dir (a cold build takes minutes)" >&2
  local start=$SECONDS
  (cd "$here/testbin/$mod" && CGO_ENABLED=0 go build -trimpath -o "$dir/$name.tmp" "$pkg")
  mv "$dir/$name.tmp" "$dir/$name"
  echo "testbin: built $name in $((SECONDS - start))s" >&2
}

build etcd etcd go.etcd.io/etcd/server/v3
build kube-apiserver kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
echo "$dir"
