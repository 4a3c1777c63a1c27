#!/usr/bin/env bash
# Quick start: install, build, start rindd, load a busybox image into it, and
# run a demo busybox container with rind-runtime.
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
rel="$top/target/x86_64-unknown-linux-gnu/release"
install -m 0755 "$rel/rind-runtime" "$rel/containerd-shim-rind-v2" "$rel/rindd" "$rel/rind" /usr/local/bin/

# rindd, with a busybox image built here (there is no registry to pull from).
if ! rind version >/dev/null 2>&1; then
  nohup rindd >/var/log/rindd.log 2>&1 &
  for _ in $(seq 50); do rind version >/dev/null 2>&1 && break; sleep 0.1; done
fi
img=$(mktemp -d)
tar -C "$demo/rootfs" -cf "$img/layer.tar" .
diff_id="sha256:$(sha256sum "$img/layer.tar" | cut -d' ' -f1)"
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$diff_id" > "$img/config.json"
printf '[{"Config":"config.json","RepoTags":["busybox:latest"],"Layers":["layer.tar"]}]' > "$img/manifest.json"
tar -C "$img" -cf "$img/busybox.tar" manifest.json config.json layer.tar
rind load -i "$img/busybox.tar"
rind images
rm -rf "$img"

# A container, through the OCI runtime directly (rind run comes with issue 5).
rind-runtime run --bundle "$demo" "demo-$$"
