#!/usr/bin/env bash
# Fails when the deepcopy code or the CRDs in deploy/base/crds differ from what
# controller-gen makes of kube/api now: it generates both into a temporary
# directory and compares. `make generate` brings them up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for dir in kube/api/*/; do
	dir=${dir%/}
	[ -f "$dir/zz_generated.deepcopy.go" ] || continue
	controller-gen object paths="./$dir/..." output:object:dir="$tmp/$dir"
	if ! diff -u "$dir/zz_generated.deepcopy.go" "$tmp/$dir/zz_generated.deepcopy.go"; then
		echo "$dir/zz_generated.deepcopy.go is out of date: run make generate" >&2
		status=1
	fi
done
controller-gen crd:crdVersions=v1 paths=./kube/api/... output:crd:artifacts:config="$tmp/crds"
if ! diff -ru deploy/base/crds "$tmp/crds"; then
	echo "deploy/base/crds is out of date: run make generate" >&2
	status=1
fi
if ! diff -ru deploy/base/crds charts/connectors-node/crds; then
	echo "charts/connectors-node/crds differ from deploy/base/crds: run make generate" >&2
	status=1
fi
exit "$status"
