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
	# Go's fuzzer sometimes ends a short run with "context deadline
	# exceeded" while stopping its workers, with no failing input: that
	# run is tried again once. A real finding always writes its input.
	for try in 1 2; do
		if out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
			printf '%s\n' "$out"
			break
		fi
		printf '%s\n' "$out"
		if [ "$try" = 1 ] && ! grep -q 'Failing input written' <<<"$out" && grep -q 'context deadline exceeded' <<<"$out"; then
			echo "fuzz: $target stopped on the fuzzer's own deadline with no failing input; running it again"
			continue
		fi
		status=1
		break
	done
done < <(grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+\(' --exclude-dir=hack --exclude-dir=.git . | sed -E 's|^\./||; s|^([^:]+):|\1:|' | sort)
exit "$status"
