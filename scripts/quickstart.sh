#!/usr/bin/env bash
# Quick start: install, build, and run a demo busybox container with rind-runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
bash scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --workspace
demo=/var/lib/rind/demo
rm -rf "$demo"
mkdir -p "$demo/rootfs/bin" "$demo/rootfs/proc" "$demo/rootfs/dev" "$demo/rootfs/sys"
cp /bin/busybox "$demo/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$demo/rootfs/bin/$a"; done
cat > "$demo/config.json" <<'JSON'
{
  "ociVersion": "1.2.0",
  "process": {
    "user": {"uid": 0, "gid": 0},
    "args": ["sh", "-c", "echo \"hello from a rind container: host $(hostname), pid $$\"; grep -E 'Cap(Eff|Bnd)|NoNewPrivs' /proc/self/status"],
    "env": ["PATH=/bin"],
    "cwd": "/",
    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "rind-demo",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "resources": {"memory": {"limit": 67108864}, "pids": {"limit": 64}}
  }
}
JSON
install -m 0755 "$top/target/x86_64-unknown-linux-gnu/release/rind-runtime" "$top/target/x86_64-unknown-linux-gnu/release/containerd-shim-rind-v2" /usr/local/bin/
rind-runtime run --bundle "$demo" "demo-$$"
