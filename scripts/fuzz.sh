#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time, one process at a
# time, and reports per target whether it found a crash (exit 1 if any did).
# Not part of CI (.ci/run): it needs nightly Rust and cargo-fuzz
# (`cargo install cargo-fuzz --locked`) and takes minutes.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Seeds are fuzz/seeds/<target>/ (checked in, made by fuzz/make_seeds.py),
# with tokens for the mutator in fuzz/dicts/<target>.dict;
# what the fuzzer learns goes to fuzz/corpus/<target>/ and what crashes to
# fuzz/artifacts/<target>/ (both ignored by git). A crash is reproduced with
# `cargo +nightly fuzz run <target> <artifact>`; fix it with a unit test in
# the crate that owns the code, not a checked-in artifact.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fuzz=$root/fuzz
secs=${1:-60}
shift || true
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: needs a nightly toolchain and cargo-fuzz: rustup toolchain install nightly; cargo install cargo-fuzz --locked" >&2
    exit 2
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

triple=x86_64-unknown-linux-gnu
# One target is built alone; else all of them (cargo fuzz builds one or all).
one=()
[[ ${#targets[@]} -eq 1 ]] && one=("${targets[0]}")
cargo +nightly fuzz build --target "$triple" --target-dir "$fuzz/target" "${one[@]}"
bin=$fuzz/target/$triple/release
# As `cargo fuzz run` sets it: the bundled SQLite's amalgamation trips
# ASan's one-definition-rule check with two statics of one name.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}

# A layer that escapes its directory must not change this machine: as root,
# each target runs in a mount namespace of its own where every mount is
# read-only but a fresh tmpfs TMPDIR and the target's corpus and artifacts
# dirs. The harness then also checks that TMPDIR holds nothing but its own
# sandbox (RIND_FUZZ_JAIL).
jail() {
    local corpus=$1 artifacts=$2
    shift 2
    if [[ $(id -u) -ne 0 ]] || ! command -v unshare >/dev/null; then
        echo "fuzz: not root: running without the read-only mount namespace" >&2
        "$@"
        return
    fi
    unshare --mount --propagation private -- bash -c '
        set -euo pipefail
        corpus=$1 artifacts=$2
        shift 2
        mapfile -t points < <(cut -d" " -f5 /proc/self/mountinfo)
        for p in "${points[@]}"; do
            # mountinfo writes spaces and the like as \ooo.
            p=$(printf "%b" "${p//\\/\\0}")
            mount -o remount,bind,ro "$p" 2>/dev/null || true
        done
        mount -t tmpfs -o size=1g,mode=1777 rind-fuzz /tmp
        for d in "$corpus" "$artifacts"; do
            mount --bind "$d" "$d"
            mount -o remount,bind,rw "$d"
        done
        export TMPDIR=/tmp RIND_FUZZ_JAIL=1
        exec "$@"
    ' jail "$corpus" "$artifacts" "$@"
}

failed=()
report=()
for t in "${targets[@]}"; do
    corpus=$fuzz/corpus/$t
    artifacts=$fuzz/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    log=$artifacts/fuzz.log
    before=$(find "$artifacts" -type f ! -name fuzz.log | sort)
    echo "fuzz: $t for ${secs}s (log: ${log#"$root"/})"
    dict=()
    [[ -f $fuzz/dicts/$t.dict ]] && dict=(-dict="$fuzz/dicts/$t.dict")
    status=0
    # One process (no -jobs/-workers): the machine is shared. A run of one
    # input over 30 s is reported as a hang.
    jail "$corpus" "$artifacts" "$bin/$t" "$corpus" "$fuzz/seeds/$t" \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${dict[@]}" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    new=$(comm -13 <(echo "$before") <(find "$artifacts" -type f ! -name fuzz.log | sort) | sed "s|^$root/||")
    if [[ $status -ne 0 || -n $new ]]; then
        failed+=("$t")
        report+=("$(printf '%-16s %10s runs  CRASH (exit %s) %s' "$t" "${runs:-?}" "$status" "$(echo $new)")")
    else
        report+=("$(printf '%-16s %10s runs  ok' "$t" "${runs:-?}")")
    fi
done

echo
printf '%s\n' "${report[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: crashes in: ${failed[*]} (logs and inputs in fuzz/artifacts/)" >&2
    exit 1
fi
