#!/usr/bin/env bash
# Runs `go test -v` with the given arguments and prints one line per
# top-level test (PASS, FAIL or SKIP) and per package, so a log shows which
# tests ran. On failure it also prints the failing tests' output. The whole
# verbose log is kept in bin/test.log.
set -uo pipefail
log=${TEST_LOG:-bin/test.log}
mkdir -p "$(dirname "$log")"
go test -v "$@" >"$log" 2>&1
status=$?
grep -aE '^(--- (PASS|FAIL|SKIP)|ok  |FAIL|panic:|\?   )' "$log"
passed=$(grep -ac '^--- PASS' "$log")
skipped=$(grep -ac '^--- SKIP' "$log")
failed=$(grep -ac '^--- FAIL' "$log")
if [ "$status" -ne 0 ]; then
  echo
  echo "=== output of the failing run (noise removed; full log in $log) ==="
  grep -avE '^(=== (RUN|PAUSE|CONT|NAME)|\s*--- PASS)' "$log" | tail -n 400
fi
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
