#!/usr/bin/env bash
# Lists the Go packages of one test stage of `make test`, one a line:
#
#   hack/packages.sh unit          every package no other stage holds: its
#                                  tests need no API server
#   hack/packages.sh integration   the packages outside e2e/ whose tests
#                                  start the test API server: they import
#                                  test/apiserver, are it, or call
#                                  testing.Short()
#   hack/packages.sh e2e           e2e/ without e2e/node
#   hack/packages.sh e2e-node      e2e/node
#   hack/packages.sh check         fails unless every package of ./... is in
#                                  exactly one stage and no stage is empty
set -euo pipefail
cd "$(dirname "$0")/.."

stages=(unit integration e2e e2e-node)

# classify prints "stage package" for every package of the module.
classify() {
  local mod
  mod=$(go list -m)
  go list -f '{{.ImportPath}} {{.Dir}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}{{"\n"}}{{range .TestGoFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}{{range .XTestGoFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}' ./... |
    awk -v mod="$mod" '
      function flush() {
        if (pkg == "") return
        if (pkg == mod "/e2e/node" || index(pkg, mod "/e2e/node/") == 1) stage = "e2e-node"
        else if (pkg == mod "/e2e" || index(pkg, mod "/e2e/") == 1) stage = "e2e"
        else if (api || short) stage = "integration"
        else stage = "unit"
        print stage, pkg
      }
      # A test file of the current package: does it call testing.Short()?
      /^\// && NF == 1 {
        while ((getline line < $1) > 0) if (line ~ /testing\.Short\(\)/) short = 1
        close($1)
        next
      }
      NF >= 2 {
        flush()
        pkg = $1; api = (pkg == mod "/test/apiserver"); short = 0
        for (i = 3; i <= NF; i++) if ($i == mod "/test/apiserver") api = 1
      }
      END { flush() }
    '
}

case "${1:-}" in
unit | integration | e2e | e2e-node)
  classify | awk -v s="$1" '$1 == s { print $2 }'
  ;;
check)
  all=$(go list ./... | sort)
  listed=""
  for s in "${stages[@]}"; do
    pkgs=$("$0" "$s")
    if [ -z "$pkgs" ]; then
      echo "packages: the test stage $s holds no package" >&2
      exit 1
    fi
    listed+="$pkgs"$'\n'
  done
  listed=$(printf '%s' "$listed" | sed '/^$/d' | sort)
  if dup=$(printf '%s\n' "$listed" | uniq -d) && [ -n "$dup" ]; then
    echo "packages: in more than one test stage:" >&2
    echo "$dup" >&2
    exit 1
  fi
  if [ "$all" != "$listed" ]; then
    echo "packages: the test stages do not hold exactly ./... (< only in ./..., > only in a stage):" >&2
    diff <(echo "$all") <(echo "$listed") >&2 || true
    exit 1
  fi
  echo "packages: the stages ${stages[*]} hold each of the $(echo "$all" | wc -l) packages once"
  ;;
*)
  echo "usage: $0 unit|integration|e2e|e2e-node|check" >&2
  exit 2
  ;;
esac
