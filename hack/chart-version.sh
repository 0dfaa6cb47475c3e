#!/usr/bin/env bash
# Prints the chart version for the project's version, as semver: a tag
# vX.Y.Z gives X.Y.Z; N commits after it, X.Y.Z-N.g<sha>; no tag,
# 0.0.0-g<sha>; uncommitted changes add .dirty. The describe output may be
# given as the argument (default: git describe --tags --always --dirty).
set -euo pipefail
d="${1:-$(git describe --tags --always --dirty 2>/dev/null || echo unknown)}"
dirty=""
if [[ "$d" == *-dirty ]]; then
  d="${d%-dirty}"
  dirty=".dirty"
fi
if [[ "$d" =~ ^v?([0-9]+\.[0-9]+\.[0-9]+)$ ]]; then
  v="${BASH_REMATCH[1]}"
  [ -n "$dirty" ] && v="$v-dirty"
  echo "$v"
elif [[ "$d" =~ ^v?([0-9]+\.[0-9]+\.[0-9]+)-([0-9]+)-g([0-9a-f]+)$ ]]; then
  echo "${BASH_REMATCH[1]}-${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}$dirty"
elif [[ "$d" =~ ^[0-9a-f]+$ ]]; then
  echo "0.0.0-g$d$dirty"
else
  echo "chart-version: cannot make a semver of $d" >&2
  exit 1
fi
