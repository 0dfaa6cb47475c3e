#!/usr/bin/env bash
# Registry benchmark: push and pull of one large image (default 512 MiB)
# with crane, direct to docker-registry (token auth, TLS), through the
# Connectors reverse proxy (path form, config.json with the client token
# only) and through the forward proxy (https_proxy, TLS interception), in
# one run on loopback. Prints throughput and the ratio to direct, the
# proxy's resident memory growth (VmRSS of the proxy process, sampled every
# 20ms) and the token requests per scope the token service received.
#
# Needs /usr/bin/docker-registry (Debian docker-registry) and bin/crane
# (make tools). Stops by itself (BENCH_TIMEOUT, default 15m).
#
# Environment: BENCH_IMAGE_MIB (default 512), BENCH_RUNS (default 3, medians
# shown), BENCH_TIMEOUT (default 15m),
# BENCH_KEEP=1 (keep the work directory), BENCH_CPUPROFILE=FILE (the proxy
# process writes its CPU profile of the whole run there).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GO=${GO:-go}
MIB=${BENCH_IMAGE_MIB:-512}
TIMEOUT=${BENCH_TIMEOUT:-15m}

for need in /usr/bin/docker-registry "$root/bin/crane"; do
	if [[ ! -x $need ]]; then
		echo "registry.sh: $need is missing (apt-get install docker-registry; make tools)" >&2
		exit 1
	fi
done

bin=$(mktemp -d /tmp/registry-bench-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
(cd "$root" && "$GO" build -o "$bin/registry-bench" ./test/bench/registry)

keep=()
if [[ ${BENCH_KEEP:-} == 1 ]]; then
	keep=(-keep)
fi
cd "$root"
exec_timeout=$(( ${TIMEOUT%m} * 60 + 60 ))
timeout "$exec_timeout" "$bin/registry-bench" -mib "$MIB" -runs "${BENCH_RUNS:-3}" -crane "$root/bin/crane" -timeout "$TIMEOUT" "${keep[@]}"
