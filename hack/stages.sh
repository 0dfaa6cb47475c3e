# Sourced by hack/test.sh and .ci/run: runs commands as named stages and
# prints each stage's time at the end, also when a stage fails.
#
#   stage NAME CMD...   runs CMD as the stage NAME and records its time
#   stage_start NAME CMD...
#                       starts CMD as the stage NAME beside the next
#                       stages, its output kept in bin/stage-NAME.log
#   stage_wait NAME     waits for the stage NAME started with stage_start,
#                       prints its output and records its time
#   trap stage_summary EXIT
#                       prints the recorded times, each line starting with
#                       $stage_prefix, and exits with the script's status;
#                       a stage still running beside is waited for first

stage_times=()
stage_started=()

stage_record() {
  local name=$1 seconds=$2 rc=$3
  stage_times+=("$(printf '%-11s %5ds%s' "$name" "$seconds" "$([ "$rc" -eq 0 ] || echo " (failed, exit $rc)")")")
}

stage() {
  local name=$1 start=$SECONDS rc=0
  shift
  echo "${stage_prefix:-stage}: stage $name: $*"
  "$@" || rc=$?
  stage_record "$name" $((SECONDS - start)) "$rc"
  return "$rc"
}

stage_start() {
  local name=$1
  shift
  mkdir -p bin
  rm -f "bin/stage-$name.result"
  echo "${stage_prefix:-stage}: stage $name (beside the next stages, output in bin/stage-$name.log): $*"
  (
    start=$SECONDS rc=0
    "$@" >"bin/stage-$name.log" 2>&1 </dev/null || rc=$?
    echo "$((SECONDS - start)) $rc" >"bin/stage-$name.result"
    exit "$rc"
  ) &
  stage_started+=("$name:$!")
}

stage_wait() {
  local name=$1 entry pid="" rest=() seconds rc
  for entry in "${stage_started[@]}"; do
    if [ "${entry%%:*}" = "$name" ]; then pid=${entry#*:}; else rest+=("$entry"); fi
  done
  [ -n "$pid" ] || return 0
  stage_started=("${rest[@]}")
  echo "${stage_prefix:-stage}: waiting for stage $name"
  wait "$pid" || true
  echo "${stage_prefix:-stage}: output of stage $name:"
  cat "bin/stage-$name.log"
  if ! read -r seconds rc <"bin/stage-$name.result"; then
    seconds=0 rc=1
  fi
  stage_record "$name" "$seconds" "$rc"
  return "$rc"
}

stage_summary() {
  local rc=$? t entry
  for entry in "${stage_started[@]}"; do
    stage_wait "${entry%%:*}" || true
  done
  echo "${stage_prefix:-stage}: stage times:"
  for t in "${stage_times[@]}"; do
    echo "${stage_prefix:-stage}:   $t"
  done
  exit "$rc"
}
