#!/usr/bin/env bash
# Runs the integration tests that touch cgroups again inside a pure cgroup v2
# guest (tests/vm: QEMU, Debian's kernel), so the cgroup v2 paths (unified
# hierarchy, eBPF device filter, cgroup.freeze, memory/cpu/pids files, OOM
# events) run for real: this host runs cgroup v1.
# usage: scripts/test-cgroup2-vm.sh [--all] [TEST_NAME_FILTER]
#   --all   every integration test binary, not only the cgroup selection below
# RIND_VM_TIMEOUT: seconds for the guest's boot and run (default 1700; the
# guest is emulated, so a busy host needs more: stress-test.sh gives it 6000).
set -euo pipefail
cd "$(dirname "$0")/.."
all=0
[ "${1:-}" = --all ] && { all=1; shift; }
filter=${1:-}
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --workspace --locked

# The tests that touch cgroups, by test binary: runtime limits, devices,
# pause/update/events/OOM; the shim's stats, OOM and pause; rindd's resource
# flags, stats and cleanup; Docker and podman with rind-runtime vs runc.
selection() {
  cat <<'EOF'
runtime_isolation cgroup_namespace_hides_the_host_path cgroup_limits_are_applied_and_removed pids_limit_is_enforced default_and_configured_devices device_rules_apply_in_order
runtime_manage pause_and_resume_freeze_the_container ps_lists_the_container_processes update_changes_resources_of_a_running_container events_stats_reports_usage events_stream_reports_oom_kills
runtime_lifecycle kill_all_signals_every_process
shim_task_api events_in_order_with_oom
shim_containerd ctr_runs_containers_through_the_rind_shim
daemon_containers each_run_flag_is_visible_inside rm_f_of_everything_leaves_nothing events_stats_kill_restart_follow_prune_info run_exec_logs_stop_rm_round_trip
runtime_engines docker_cgroup_cases_match_runc docker_lifecycle_and_terminals_match_runc podman_cgroup_cases_match_runc podman_lifecycle_and_terminals_match_runc
EOF
}

built=$(cargo test -p rind-tests --no-run --locked --message-format=json 2>/dev/null \
  | grep -oE '"executable":"[^"]*/(runtime|shim|daemon)_[a-z_]*-[^"]*"' | sed 's/"executable":"\(.*\)"/\1/' | sort -u)
[ -n "$built" ] || { echo "test-cgroup2-vm: no test binaries found" >&2; exit 1; }
share=$(mktemp -d /tmp/rind-vm.XXXXXX)
trap 'rm -rf "$share"' EXIT
# The guest sees the host's / read-only but has its own /tmp, where a CI clone
# may live: copy the binaries into the share, which it does see, in the layout
# the tests expect (test binaries in deps/, the others beside them).
mkdir -p "$share/bin/deps"
for b in rind-runtime containerd-shim-rind-v2 rindd rind; do cp "target/x86_64-unknown-linux-gnu/debug/$b" "$share/bin/"; done
plan=""
if [ "$all" = 1 ]; then
  for t in $built; do
    name=$(basename "$t"); name=${name%-*}
    # daemon_restart has nothing of cgroup v2 and takes minutes under emulation.
    [ "$name" = daemon_restart ] && continue
    plan="$plan$name${filter:+ $filter}"$'\n'
  done
else
  while read -r bin tests; do
    [ -n "$filter" ] && { tests=$(printf '%s\n' $tests | grep -e "$filter" | tr '\n' ' ' || true); [ -n "$tests" ] || continue; }
    plan="$plan$bin --exact $tests"$'\n'
  done < <(selection)
fi
[ -n "$plan" ] || { echo "test-cgroup2-vm: no test matches '$filter'" >&2; exit 1; }
while read -r bin _; do
  [ -n "$bin" ] || continue
  exe=$(printf '%s\n' $built | grep "/${bin}-" | head -1)
  [ -n "$exe" ] || { echo "test-cgroup2-vm: no test binary $bin" >&2; exit 1; }
  cp "$exe" "$share/bin/deps/$bin"
done <<<"$plan"
printf '%s' "$plan" > "$share/plan"
cat > "$share/run.sh" <<'SH'
#!/bin/sh
# Inside the guest: each planned test binary with its tests, one after the other.
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || { echo "not a pure cgroup v2 guest" >&2; exit 1; }
fail=0
while read -r bin args; do
  [ -n "$bin" ] || continue
  echo "== $bin"
  # shellcheck disable=SC2086 # the test names are words
  "./bin/deps/$bin" --test-threads=2 $args || fail=1
done < plan
exit $fail
SH
chmod +x "$share/run.sh"
# /var/lib/containers on a tmpfs: podman's blob info cache (a bbolt file it
# mmaps) must not be the host's, read through 9p.
bash tests/vm/run-in-vm.sh --mem 4G --cpus 2 --timeout "${RIND_VM_TIMEOUT:-1700}" --tmpfs /var/lib/containers "$share" -- ./run.sh
