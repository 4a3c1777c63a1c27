#!/usr/bin/env bash
# The whole test suite: unit tests and the root integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# Integration tests drive the built binaries, so build them first.
cargo build --workspace --locked
cargo test --workspace --locked
# The same root integration tests in a pure cgroup v2 guest (QEMU): this host runs cgroup v1.
bash scripts/test-cgroup2-vm.sh
