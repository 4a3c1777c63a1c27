#!/usr/bin/env bash
# Quick start: install, build, start rindd, load a busybox image built here
# (there is no registry to pull from), run containers with rind, and show a
# container surviving a kill -9 of the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
bash scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --workspace
rel="$top/target/x86_64-unknown-linux-gnu/release"
install -m 0755 "$rel/rind-runtime" "$rel/containerd-shim-rind-v2" "$rel/rindd" "$rel/rind" /usr/local/bin/
mkdir -p /usr/local/share/man/man1 /etc/bash_completion.d
rind man /usr/local/share/man/man1
rind completion bash > /etc/bash_completion.d/rind

start_rindd() {
  nohup rindd >>/var/log/rindd.log 2>&1 &
  disown
  for _ in $(seq 100); do rind version >/dev/null 2>&1 && return; sleep 0.1; done
  echo "rindd did not start: see /var/log/rindd.log" >&2; exit 1
}
rind version >/dev/null 2>&1 || start_rindd

# A busybox image from Debian's busybox-static, as a `docker save` archive.
img=$(mktemp -d)
trap 'rm -rf "$img"' EXIT
mkdir -p "$img/rootfs/bin" "$img/rootfs/etc" "$img/rootfs/tmp" "$img/rootfs/root"
cp /bin/busybox "$img/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$img/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$img/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$img/rootfs/etc/group"
tar -C "$img/rootfs" -cf "$img/layer.tar" .
diff_id="sha256:$(sha256sum "$img/layer.tar" | cut -d' ' -f1)"
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"],"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$diff_id" > "$img/config.json"
printf '[{"Config":"config.json","RepoTags":["busybox:latest"],"Layers":["layer.tar"]}]' > "$img/manifest.json"
tar -C "$img" -cf "$img/busybox.tar" manifest.json config.json layer.tar
rind load -i "$img/busybox.tar"
rind images

echo "== a container"
rind run --rm --hostname demo busybox sh -c 'echo "hello from $(hostname): $(grep CapEff /proc/self/status)"'
echo "== a published port (the default bridge network, rind0)"
rind rm -f demo-web >/dev/null 2>&1 || true
rind run -d --name demo-web -p 8080:80 busybox httpd -f -p 80 -h /etc >/dev/null
for _ in $(seq 50); do /bin/busybox wget -qO- http://127.0.0.1:8080/hostname 2>/dev/null && break; sleep 0.1; done
rind inspect --format '{{.NetworkSettings.IPAddress}}' demo-web 2>/dev/null || true
rind rm -f demo-web >/dev/null
echo "== a container that survives kill -9 of rindd"
rind rm -f demo-ticker >/dev/null 2>&1 || true
rind run -d --name demo-ticker busybox sh -c 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done' >/dev/null
sleep 1.5
pkill -9 -f "^rindd$"
echo "rindd killed; the container goes on printing"
sleep 2
start_rindd
rind ps
rind logs --tail 4 demo-ticker
rind exec demo-ticker echo "exec after the daemon restart: ok"
rind rm -f demo-ticker >/dev/null
echo "rindd is running (log: /var/log/rindd.log); try: rind run -it busybox sh"
