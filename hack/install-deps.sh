#!/usr/bin/env bash
# Installs the Debian packages the tests, the demo and the benchmarks use,
# when missing. `hack/install-deps.sh bench` adds the load tools.
set -euo pipefail

packages=(git curl ca-certificates util-linux docker-registry skopeo apache2-utils)
# The real-node suite: the container runtime, the CNI plugins (bridge,
# host-local, portmap, loopback), iptables for kube-proxy and the suite's
# forwarding, and kubectl for kustomize and describe.
packages+=(containerd runc containernetworking-plugins iptables kubectl)
# The catalog's Maven story: mvn, nginx as the repository (WebDAV PUT),
# and the plugins and dependency it resolves from Debian's maven-repo.
packages+=(maven nginx libmaven-install-plugin-java libmaven-deploy-plugin-java libmaven-dependency-plugin-java junit4)
# The catalog's npm story: Node.js, npm (a package of its own in Debian,
# bundled with other builds of nodejs), and verdaccio, below.
packages+=(nodejs)
if ! command -v npm >/dev/null 2>&1; then
  packages+=(npm)
fi
# The catalog's PyPI story: pip and twine.
packages+=(python3 python3-pip twine)
# The GitHub ConnectorClass's client.
packages+=(gh)
# The shipped scrape example, dashboard and alerts, run by a real Prometheus.
packages+=(prometheus)
# The real-node suite's Tekton image build Task: buildah.
packages+=(buildah)
# The arm64 image's binary, run under emulation by build/image's test.
packages+=(qemu-user-static)

# make bench-proxy: the load generator, the proxies it compares with, and
# pgrep (procps), which finds nginx's workers.
if [ "${1:-}" = bench ]; then
  packages+=(wrk nginx haproxy caddy procps)
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
# verdaccio, the npm story's registry, from the npm registry at the version
# test/servers/npmregistry pins, into a cache outside the repository
# keyed by that version (where the tests look for it).
root="$(cd "$(dirname "$0")/.." && pwd)"
verdaccio_version="$(sed -n 's/^const Version = "\(.*\)"$/\1/p' "$root/test/servers/npmregistry/npmregistry.go")"
verdaccio_dir="${XDG_CACHE_HOME:-$HOME/.cache}/connectors-node/verdaccio-$verdaccio_version"
if [ ! -e "$verdaccio_dir/node_modules/verdaccio/bin/verdaccio" ]; then
  echo "install-deps: installing verdaccio $verdaccio_version into $verdaccio_dir" >&2
  rm -rf "$verdaccio_dir.tmp"
  mkdir -p "$verdaccio_dir.tmp"
  npm install --prefix "$verdaccio_dir.tmp" --no-audit --no-fund --omit=dev --loglevel=error "verdaccio@$verdaccio_version" >/dev/null
  rm -rf "$verdaccio_dir"
  mv "$verdaccio_dir.tmp" "$verdaccio_dir"
fi
# Yarn 4 (@yarnpkg/cli-dist), the Yarn stories' client, from the npm
# registry at the version e2e/catalog_yarn_test.go pins, into a cache
# outside the repository keyed by that version (where the tests look).
yarn_version="$(sed -n 's/^const yarnVersion = "\(.*\)"$/\1/p' "$root/e2e/catalog_yarn_test.go")"
yarn_dir="${XDG_CACHE_HOME:-$HOME/.cache}/connectors-node/yarn-$yarn_version"
if [ ! -e "$yarn_dir/node_modules/@yarnpkg/cli-dist/bin/yarn.js" ]; then
  echo "install-deps: installing Yarn $yarn_version into $yarn_dir" >&2
  rm -rf "$yarn_dir.tmp"
  mkdir -p "$yarn_dir.tmp"
  npm install --prefix "$yarn_dir.tmp" --no-audit --no-fund --omit=dev --loglevel=error "@yarnpkg/cli-dist@$yarn_version" >/dev/null
  rm -rf "$yarn_dir"
  mv "$yarn_dir.tmp" "$yarn_dir"
fi
