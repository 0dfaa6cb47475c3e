# Sourced by hack/test.sh and .ci/run: runs commands as named stages and
# prints each stage's time at the end, also when a stage fails.
#
#   stage NAME CMD...   runs CMD as the stage NAME and records its time
#   trap 'stage_summary PREFIX' EXIT
#                       prints the recorded times, each line starting with
#                       PREFIX, and exits with the script's status

stage_times=()

stage() {
  local name=$1 start=$SECONDS rc=0
  shift
  echo "${stage_prefix:-stage}: stage $name: $*"
  "$@" || rc=$?
  stage_times+=("$(printf '%-11s %5ds%s' "$name" $((SECONDS - start)) "$([ "$rc" -eq 0 ] || echo " (failed, exit $rc)")")")
  return "$rc"
}

stage_summary() {
  local rc=$? t
  echo "${stage_prefix:-stage}: stage times:"
  for t in "${stage_times[@]}"; do
    echo "${stage_prefix:-stage}:   $t"
  done
  exit "$rc"
}
