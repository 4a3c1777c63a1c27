#!/usr/bin/env bash
# Builds the cgroup v2 test guest into the cache dir, after installing from
# Debian whatever it and run-in-vm.sh need. A no-op when the cache is current;
# run-in-vm.sh runs it before every boot.
#
# Cache dir: $RIND_VM_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/rind-vm. Not in
# the source tree (a clone stays clean and several clones share one kernel) and
# not under /tmp (which CI may clean between runs).
#   vmlinux            Debian's kernel as an uncompressed ELF, booted through its
#                      PVH entry: saves the in-guest xz decompression, ~3 s under TCG
#   initramfs.cpio.gz  static busybox + guest/init + guest/stage2 + the modules below
#   debs/              the linux-image .deb (~70 MB, not installed), so a rebuild
#                      after a change of the guest scripts needs no network
#   kpkg               the kernel package, resolved once and then kept
#   stamp              kernel package + hash of this script, the guest scripts and
#                      busybox: the build is redone when it differs
# Env: RIND_VM_CACHE; RIND_VM_KERNEL_PKG (e.g. linux-image-6.1.0-57-amd64; default:
# the one linux-image-amd64 depends on).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${RIND_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:?}/.cache}/rind-vm}
# Load order matters: there is no modprobe/depmod in the guest.
MODS="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console 9pnet 9pnet_virtio netfs fscache 9p overlay fuse"

die() { echo "build.sh: $*" >&2; exit 1; }

# The guest's PID 1 and stage2 run busybox before any host library is reachable.
static_busybox() {
  local b
  for b in "$(command -v busybox || true)" /bin/busybox /usr/bin/busybox; do
    if [ -z "$b" ] || [ ! -x "$b" ]; then continue; fi
    # ldd fails on a static binary ("not a dynamic executable"); file(1) may be absent.
    if ! ldd "$b" >/dev/null 2>&1; then echo "$b"; return 0; fi
  done
  return 1
}

WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

# --- Debian packages: only touch apt when something is missing.
pkgs=()
command -v "${QEMU:-qemu-system-x86_64}" >/dev/null || pkgs+=(qemu-system-x86)
static_busybox >/dev/null || pkgs+=(busybox-static)
command -v xz >/dev/null || pkgs+=(xz-utils)
command -v zstd >/dev/null || pkgs+=(zstd)   # kernel modules may be .ko.zst
if [ ${#pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages; as root: apt-get install --no-install-recommends ${pkgs[*]}"
  echo "build.sh: installing ${pkgs[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" \
    >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; die "apt-get install ${pkgs[*]} failed"; }
fi
BB=$(static_busybox) || die "no static busybox after installing busybox-static"

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
# Two first runs at once (parallel test jobs) would download and write the
# same files: serialise builds. flock is util-linux, essential in Debian.
exec 8>"$CACHE/.lock"
flock 8

resolve_kernel() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
}
KPKG=${RIND_VM_KERNEL_PKG:-$(cat "$CACHE/kpkg" 2>/dev/null || true)}
if [ -z "$KPKG" ]; then
  KPKG=$(resolve_kernel)
  if [ -z "$KPKG" ]; then   # no package lists yet (fresh container)
    apt-get update -qq || true
    KPKG=$(resolve_kernel)
  fi
  [ -n "$KPKG" ] || die "cannot resolve linux-image-amd64 (apt-get update?)"
fi
KVER=${KPKG#linux-image-}

STAMP="$KPKG $(cat "$HERE/build.sh" "$HERE/guest/init" "$HERE/guest/stage2" "$BB" | sha256sum | cut -d' ' -f1)"
if [ -f "$CACHE/vmlinux" ] && [ -f "$CACHE/initramfs.cpio.gz" ] \
   && [ "$(cat "$CACHE/stamp" 2>/dev/null)" = "$STAMP" ]; then
  exit 0
fi

# --- The kernel package: downloaded once, kept in debs/ (only the current one).
shopt -s nullglob
debs=("$CACHE/debs/${KPKG}"_*.deb)
if [ ${#debs[@]} -eq 0 ]; then
  download() {
    rm -rf "$CACHE/debs"; mkdir -p "$CACHE/debs/partial"
    # partial/ then mv: an interrupted download never looks like a kept .deb.
    (cd "$CACHE/debs/partial" && apt-get download "$KPKG") >"$WORK/apt.log" 2>&1 || return 1
    mv "$CACHE/debs/partial/"*.deb "$CACHE/debs/" && rmdir "$CACHE/debs/partial"
  }
  echo "build.sh: downloading $KPKG" >&2
  if ! download; then
    # Stale package lists: Debian drops an old kernel ABI from the mirror when
    # a new one arrives. Refresh them, and re-resolve unless it was pinned.
    apt-get update -qq || true
    if [ -z "${RIND_VM_KERNEL_PKG:-}" ]; then KPKG=$(resolve_kernel); KVER=${KPKG#linux-image-}; fi
    STAMP="$KPKG ${STAMP#* }"
    download || { cat "$WORK/apt.log" >&2; die "apt-get download $KPKG failed"; }
  fi
  debs=("$CACHE/debs/${KPKG}"_*.deb)
fi
dpkg-deb -x "${debs[0]}" "$WORK/k"

# --- initramfs
R="$WORK/root"; mkdir -p "$R"/{bin,dev,proc,sys,mnt,newroot,modules}
cp "$BB" "$R/bin/busybox"; ln -s busybox "$R/bin/sh"
for m in $MODS; do
  f=$(find "$WORK/k/lib/modules/$KVER" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) -print -quit)
  [ -n "$f" ] || die "module $m not found in $KPKG"
  case "$f" in
    *.xz) xz -dc "$f" > "$R/modules/$m.ko";;
    *.zst) zstd -dqc "$f" > "$R/modules/$m.ko";;
    *) cp "$f" "$R/modules/$m.ko";;
  esac
done
echo "$MODS" > "$R/modules/order"
install -m 755 "$HERE/guest/init" "$R/init"
install -m 644 "$HERE/guest/stage2" "$R/stage2"
CPIO=(cpio --quiet); command -v cpio >/dev/null || CPIO=("$BB" cpio)
(cd "$R" && find . | "${CPIO[@]}" -o -H newc | gzip -1) > "$CACHE/initramfs.cpio.gz.tmp"

# --- Uncompressed ELF vmlinux: the bzImage payload is one xz stream (CONFIG_KERNEL_XZ).
VMLINUZ="$WORK/k/boot/vmlinuz-$KVER"
off=$(LC_ALL=C grep -m1 -obUaP '\xfd7zXZ\x00' "$VMLINUZ" | cut -d: -f1)
[ -n "$off" ] || die "no xz payload in $VMLINUZ"
# Via a file, not a pipe: xz stops at the end of its stream and tail would
# die of SIGPIPE on the bytes after it (fatal under pipefail).
tail -c +$((off + 1)) "$VMLINUZ" > "$WORK/payload.xz"
xz -dc --single-stream "$WORK/payload.xz" > "$CACHE/vmlinux.tmp"
[ "$(head -c 4 "$CACHE/vmlinux.tmp")" = "$(printf '\177ELF')" ] || die "extracted vmlinux is not ELF"

# Each file replaced atomically, the stamp last: an interrupted build is redone.
mv "$CACHE/vmlinux.tmp" "$CACHE/vmlinux"
mv "$CACHE/initramfs.cpio.gz.tmp" "$CACHE/initramfs.cpio.gz"
echo "$KPKG" > "$CACHE/kpkg"
echo "$STAMP" > "$CACHE/stamp"
echo "build.sh: built $CACHE (kernel $KVER)" >&2
