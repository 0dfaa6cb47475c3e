#!/usr/bin/env bash
# make test: every test of the module, in named stages, each timed; the
# stage times are printed at the end, also when a stage fails. A failed
# stage stops the run. The real-node suite spends most of its time waiting
# on its cluster, so after verify it runs beside unit, integration and e2e
# (its output is printed when it ends, and kept in bin/stage-e2e-node.log);
# E2E_NODE_BESIDE=false runs it after them instead.
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
if [ "${E2E_NODE_BESIDE:-true}" = true ]; then
  stage_start e2e-node make --no-print-directory test-e2e-node
fi
stage unit make --no-print-directory test-unit
stage integration make --no-print-directory test-integration
stage e2e make --no-print-directory test-e2e
if [ "${E2E_NODE_BESIDE:-true}" = true ]; then
  stage_wait e2e-node
else
  stage e2e-node make --no-print-directory test-e2e-node
fi
if [ "${CI:-}" = true ]; then
  stage fuzz make --no-print-directory fuzz FUZZTIME=3s
fi
