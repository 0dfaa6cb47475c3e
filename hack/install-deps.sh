#!/usr/bin/env bash
# Installs the Debian packages the tests, the demo and the benchmarks use,
# when missing. `hack/install-deps.sh bench` adds the load tools.
set -euo pipefail

packages=(git curl ca-certificates util-linux docker-registry skopeo apache2-utils)
# The real-node suite: the container runtime, the CNI loopback plugin, and
# kubectl for kustomize and describe.
packages+=(containerd runc containernetworking-plugins kubectl)
# The GitHub ConnectorClass's client.
packages+=(gh)
if [ "${1:-}" = bench ]; then
  packages+=(nginx wrk)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
