#!/usr/bin/env bash
# Runs the root integration suite N times in a row while a CPU hog keeps
# every core busy, and reports each failure: tests must assert behaviour,
# never speed, so a busy machine may slow them but not fail them.
#
# usage: scripts/stress-test.sh [-n RUNS] [--guest] [--no-hog] [TEST_FILTER]
#   -n RUNS    how many runs (default 5)
#   --guest    run the cgroup v2 guest stage (tests/vm) instead of the host suite
#   --no-hog   no CPU hog (to compare)
# Prints one line per run and a closing "N passed, N failed" line; the logs
# of failed runs stay in $RIND_STRESS_LOGS (default /tmp/rind-stress).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5 guest=0 hog=1 filter=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) runs=$2; shift 2;;
    --guest) guest=1; shift;;
    --no-hog) hog=0; shift;;
    -h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0;;
    -*) echo "stress-test: unknown option $1" >&2; exit 2;;
    *) filter=$1; shift;;
  esac
done
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --workspace --locked
cargo test -p rind-tests --no-run --locked 2>/dev/null
logs=${RIND_STRESS_LOGS:-/tmp/rind-stress}
mkdir -p "$logs"

hogs=()
stop_hogs() { for p in ${hogs[@]+"${hogs[@]}"}; do kill "$p" 2>/dev/null || true; done; }
trap stop_hogs EXIT
if [ "$hog" = 1 ]; then
  for _ in $(seq "$(nproc)"); do
    # A busy loop per core, at normal priority: the tests compete for every slice.
    ( while :; do :; done ) &
    hogs+=($!)
  done
  echo "stress-test: ${#hogs[@]} CPU hogs running"
fi

passed=0 failed=0
for i in $(seq "$runs"); do
  log="$logs/run-$i.log"
  start=$(date +%s)
  if [ "$guest" = 1 ]; then
    # The guest is emulated (TCG where KVM is not offered): under the hog it
    # runs several times slower, and its harness limit grows to match.
    cmd=(env RIND_VM_TIMEOUT="${RIND_VM_TIMEOUT:-6000}" bash scripts/test-cgroup2-vm.sh ${filter:+"$filter"})
  else
    cmd=(cargo test -p rind-tests --locked -- ${filter:+"$filter"})
  fi
  if "${cmd[@]}" >"$log" 2>&1; then
    passed=$((passed + 1)); echo "run $i: passed in $(( $(date +%s) - start )) s"
    rm -f "$log"
  else
    failed=$((failed + 1)); echo "run $i: FAILED in $(( $(date +%s) - start )) s (log: $log)"
    grep -E '^(test .* FAILED|---- .* stdout ----)|panicked at|timed out' "$log" | head -20 | sed 's/^/    /'
  fi
done
echo "stress: $passed passed, $failed failed"
[ "$failed" = 0 ]
