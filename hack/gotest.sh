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
  echo "=== output of the failing packages (noise removed; full log in $log) ==="
  # go test -v prints each package's output in one piece, ending in its
  # "ok" or "FAIL" line: keep the pieces that end in FAIL (a build failure
  # ends in "FAIL <pkg> [build failed]" too), and the last 200 lines of
  # anything else, in case the run stopped before a package ended.
  awk '
    /^=== (RUN|PAUSE|CONT|NAME)/ || /^[ \t]*--- PASS/ { next }
    { buf[n++] = $0 }
    /^(ok  |\?   )/ { n = 0; next }
    /^FAIL\t/ { for (i = 0; i < n; i++) print buf[i]; n = 0; next }
    END { s = n > 200 ? n - 200 : 0; for (i = s; i < n; i++) print buf[i] }
  ' "$log" | tail -n 1500
fi
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
