#!/usr/bin/env bash
# Runs every Go fuzz target of the module for FUZZTIME each (default 30s).
# Targets are found as `func FuzzX(` in *_test.go files. New inputs that
# fail land in the package's testdata/fuzz/FuzzX/, the seed corpus kept in
# the repository, and fail `go test` from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30s}
status=0
while IFS=: read -r file line; do
	target=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(.*/\1/' <<<"$line")
	pkg=./$(dirname "$file")
	echo "== $pkg $target ($fuzztime)"
	if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
		status=1
	fi
done < <(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(' --exclude-dir=hack --exclude-dir=.git . | sed -E 's|^\./||; s|^([^:]+):|\1:|' | sort)
exit "$status"
