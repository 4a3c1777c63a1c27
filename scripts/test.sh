#!/usr/bin/env bash
# The whole test suite: formatting and lints, unit tests, the root
# integration tests on this host, and those that touch cgroups again in a
# pure cgroup v2 guest (tests/vm). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
stage() { printf '\n==== %s (%s)\n' "$1" "$(date +%T)"; }
stage "cargo fmt --check"
cargo fmt --all -- --check
stage "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# Integration tests drive the built binaries, so build them first.
stage "build"
cargo build --workspace --locked
stage "unit and host integration tests"
cargo test --workspace --locked
# The host runs cgroup v1: the cgroup tests run again under cgroup v2.
stage "cgroup v2 guest"
bash scripts/test-cgroup2-vm.sh
