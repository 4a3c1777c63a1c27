#!/usr/bin/env bash
# Runs the root integration tests again inside the pure cgroup v2 guest that
# ../shared/vm/run-in-vm.sh boots (QEMU, Debian's kernel), so the cgroup v2
# paths (unified hierarchy, eBPF device filter, cgroup.freeze) run for real.
# usage: scripts/test-cgroup2-vm.sh [TEST_NAME_FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
vm=${VM_DIR:-$top/../shared/vm}
[ -x "$vm/run-in-vm.sh" ] || { echo "no VM runner at $vm" >&2; exit 1; }
if ! command -v qemu-system-x86_64 >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 xz-utils >/dev/null
fi
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --workspace --locked
# daemon_restart (20 busy containers, kill -9 of rindd) has nothing of cgroup
# v2 in it and takes minutes under emulation: it runs on the host only.
tests=$(cargo test -p rind-tests --no-run --locked --message-format=json 2>/dev/null \
  | grep -oE '"executable":"[^"]*(runtime|shim|daemon)_[a-z_]*-[^"]*"' | sed 's/"executable":"\(.*\)"/\1/' \
  | grep -v '/daemon_restart-' | sort -u)
[ -n "$tests" ] || { echo "no test binaries found" >&2; exit 1; }
share=$(mktemp -d /tmp/rind-vm.XXXXXX)
trap 'rm -rf "$share"' EXIT
# The guest sees the host's / read-only but has its own /tmp, where a CI
# clone may live: copy the binaries into the share, which it does see, in the
# layout the tests expect (test binaries in deps/, the others beside it).
mkdir -p "$share/bin/deps"
for b in rind-runtime containerd-shim-rind-v2 rindd rind; do cp "target/x86_64-unknown-linux-gnu/debug/$b" "$share/bin/"; done
names=""
for t in $tests; do cp "$t" "$share/bin/deps/"; names="$names $(basename "$t")"; done
cat > "$share/run.sh" <<SH
#!/bin/sh
# inside the guest: every integration test binary, one after the other
stat -fc %T /sys/fs/cgroup
fail=0
for t in$names; do
  echo "== \$t"
  "$share/bin/deps/\$t" --test-threads=2 ${1:+"$1"} || fail=1
done
exit \$fail
SH
chmod +x "$share/run.sh"
"$vm/run-in-vm.sh" --mem 4G --cpus 2 --timeout 1700 "$share" -- ./run.sh
