#!/usr/bin/env bash
# Installs what building and testing rind needs on Debian 12, as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  ca-certificates curl build-essential pkg-config libseccomp-dev protobuf-compiler \
  busybox-static runc crun containerd docker.io podman catatonit iproute2 util-linux procps \
  containernetworking-plugins iptables \
  docker-registry skopeo >/dev/null
if ! command -v cargo >/dev/null 2>&1; then
  # A fresh machine: Debian 12's own Rust is too old for our dependencies.
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
fi
# The test suite checks formatting and lints too.
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
for c in rustfmt clippy; do
  cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$c"
done
