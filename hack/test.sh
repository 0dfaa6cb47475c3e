#!/usr/bin/env bash
# make test: every test of the module, in named stages, each timed; the
# stage times are printed at the end, also when a stage fails. A failed
# stage stops the run.
#   verify     make verify: go vet, golangci-lint, the generated-code check
#              and the check that the test stages hold every package once
#   unit       make test-unit: the packages whose tests need no API server
#   integration make test-integration: the other packages outside e2e/
#   e2e        make test-e2e: the end-to-end suite, e2e/
#   e2e-node   make test-e2e-node: the real-node suite, e2e/node
#   fuzz       with CI=true only: every fuzz target for 3s (make fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
stage_prefix=test
# shellcheck source=hack/stages.sh
. hack/stages.sh
trap stage_summary EXIT

stage verify make --no-print-directory verify
stage unit make --no-print-directory test-unit
stage integration make --no-print-directory test-integration
stage e2e make --no-print-directory test-e2e
stage e2e-node make --no-print-directory test-e2e-node
if [ "${CI:-}" = true ]; then
  stage fuzz make --no-print-directory fuzz FUZZTIME=3s
fi
