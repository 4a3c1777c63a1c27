#!/usr/bin/env bash
# run-in-vm.sh [OPTIONS] SHARE_DIR -- COMMAND [ARGS...]
#
# Boots a throw-away QEMU guest (Debian's kernel, pure cgroup v2 with every
# controller enabled at the root, busybox initramfs), runs COMMAND as root in
# it with cwd = SHARE_DIR (mounted read-write at the same path), streams its
# stdout/stderr and exits with its exit status. Runs build.sh first (a no-op
# when the cache is current; the first time it installs QEMU and builds).
#
# The guest root is an overlay: the host's "/" read-only (virtio-9p) + a tmpfs,
# so every host binary and library works unchanged and writes outside
# SHARE_DIR are discarded. Fresh tmpfs on /tmp, /var/tmp, /run, /dev/shm.
#
# Options:
#   -m, --mem SIZE       guest RAM (default 2G)
#   -c, --cpus N         vCPUs (default 2)
#   -t, --timeout SECS   limit for the boot(s) and the command (exit 124); default 600
#   -e, --env NAME[=VAL] set NAME in the command's environment (NAME alone: the host's value)
#       --tmpfs PATH     mount an extra tmpfs at PATH in the guest (repeatable)
#       --accel A        auto (default: kvm if it is real KVM, else tcg) | kvm | tcg
#   -v, --verbose        timings, QEMU's log and the guest console on stderr afterwards
#       --console FILE   keep the guest console log in FILE (FILE.first-boot too
#                        when the boot was retried)
# Exit status: COMMAND's, or 124 (timeout), or 125 (the VM failed to run it).
#
# A boot that never started the command (no "start" line on the status port:
# QEMU or the guest's init failed, or no start within RIND_VM_BOOT_TIMEOUT
# seconds, default 120) is retried once, which a rare boot hang under TCG
# needs. A command that started is never run a second time.
# Env: RIND_VM_CACHE (see build.sh), QEMU (binary), RIND_VM_BOOT_TIMEOUT,
#      RIND_VM_APPEND (replaces "quiet loglevel=3" on the kernel command line).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${RIND_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:?}/.cache}/rind-vm}
QEMU=${QEMU:-qemu-system-x86_64}
BOOT_TIMEOUT=${RIND_VM_BOOT_TIMEOUT:-120}
MEM=2G CPUS=2 TIMEOUT=600 ACCEL=auto VERBOSE=0 CONSOLE_KEEP=
ENVS=() TMPFS=()
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 125; }
while [ $# -gt 0 ]; do
  case "$1" in
    -m|--mem) MEM=$2; shift 2;;
    -c|--cpus) CPUS=$2; shift 2;;
    -t|--timeout) TIMEOUT=$2; shift 2;;
    -e|--env) ENVS+=("$2"); shift 2;;
    --tmpfs) TMPFS+=("$2"); shift 2;;
    --accel) ACCEL=$2; shift 2;;
    -v|--verbose) VERBOSE=1; shift;;
    --console) CONSOLE_KEEP=$2; shift 2;;
    -h|--help) usage;;
    -*) echo "run-in-vm: unknown option $1" >&2; usage;;
    *) break;;
  esac
done
if [ $# -lt 3 ] || [ "$2" != "--" ]; then usage; fi
case "$TIMEOUT$BOOT_TIMEOUT" in *[!0-9]*) echo "run-in-vm: timeouts are whole seconds" >&2; exit 125;; esac
SHARE=$(cd "$1" 2>/dev/null && pwd -P) || { echo "run-in-vm: no such directory: $1" >&2; exit 125; }
shift 2

bash "$HERE/build.sh" || { echo "run-in-vm: build.sh failed" >&2; exit 125; }
CACHE=$(cd "$CACHE" && pwd)
command -v "$QEMU" >/dev/null || { echo "run-in-vm: $QEMU not found" >&2; exit 125; }

# Accelerator. Real KVM (kvm_intel/kvm_amd): -cpu host. A /dev/kvm backed by
# kvm_pvm (PVM: software "KVM" without VT-x/SVM, as on this project's machines)
# only runs PVM-enabled guest kernels, and Debian's would never finish booting:
# use TCG there.
if [ "$ACCEL" = auto ]; then
  ACCEL=tcg
  if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then ACCEL=kvm; fi
fi
case "$ACCEL" in
  kvm) ACCEL_ARGS=(-accel kvm -cpu host); KAPPEND=;;
  # TCG: the kernel's TSC-sync check fails and it would fall back to a slow
  # clocksource, though the guest TSC is the host's (constant, synchronised).
  tcg) ACCEL_ARGS=(-accel "tcg,thread=multi,tb-size=256" -cpu max); KAPPEND=tsc=reliable;;
  *) echo "run-in-vm: bad --accel $ACCEL" >&2; exit 125;;
esac

# Control dir: the guest reads cmd and env from it through its view of the
# host's "/"; QEMU writes the console, status and stdout/stderr ports into it.
CTL=$(mktemp -d "${TMPDIR:-/tmp}/vmctl.XXXXXX") || exit 125
case "$CTL" in *[[:space:]]*) echo "run-in-vm: TMPDIR must not contain spaces (kernel command line)" >&2; exit 125;; esac
QPID='' WPID=''
unblock_readers() {
  # A reader still blocked in open() on a FIFO (QEMU never opened it) would
  # never exit: open it read-write and close it, which gives the reader EOF.
  local f
  for f in out err; do
    if [ -p "$CTL/$f" ]; then exec 9<>"$CTL/$f"; exec 9>&-; fi
  done
}
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  if [ -n "$QPID" ]; then kill "$QPID" 2>/dev/null || true; fi   # timeout(1) passes it on to QEMU
  if [ -n "$WPID" ]; then kill "$WPID" 2>/dev/null || true; fi
  unblock_readers
  rm -rf "$CTL"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Command script (bash, run in the guest from SHARE_DIR).
{
  echo "cd $(printf '%q' "$SHARE") || exit 125"
  for e in ${ENVS[@]+"${ENVS[@]}"}; do
    case "$e" in
      *=*) echo "export $(printf '%q' "${e%%=*}")=$(printf '%q' "${e#*=}")";;
      *) if [ -n "${!e+x}" ]; then echo "export $(printf '%q' "$e")=$(printf '%q' "${!e}")"; fi;;
    esac
  done
  printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$CTL/cmd"
{
  echo "VM_SHARE=$(printf '%q' "$SHARE")"
  echo "VM_TMPFS=$(printf '%q' "${TMPFS[*]+${TMPFS[*]}}")"
} > "$CTL/env"

# passthrough: guest uids/gids/modes land on the share's files as they are
# (needs root); as a normal user QEMU cannot chown, so "none" (files are the user's).
SECMODEL=passthrough; [ "$(id -u)" = 0 ] || SECMODEL=none
# multidevs=remap: the host's / spans several filesystems; without it inode
# numbers from different ones could collide in the guest.
FS_ARGS=(-fsdev "local,id=fsroot,path=/,security_model=none,readonly=on,multidevs=remap"
         -device "virtio-9p-pci,fsdev=fsroot,mount_tag=hostroot"
         -fsdev "local,id=fsshare,path=${SHARE//,/,,},security_model=$SECMODEL,multidevs=remap"
         -device "virtio-9p-pci,fsdev=fsshare,mount_tag=share")
CMDLINE="console=ttyS0 ${RIND_VM_APPEND:-quiet loglevel=3} panic=-1 mitigations=off cryptomgr.notests $KAPPEND systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all apparmor=0 vm.ctl=$CTL"

# boot SECS WATCHDOG: one boot, killed after SECS (QRC=124) or after WATCHDOG
# seconds without a "start" line (0: no watchdog). Sets QRC, QEMU's status.
boot() {
  local secs=$1 watchdog=$2 p_out p_err
  rm -f "$CTL/out" "$CTL/err" "$CTL/status" "$CTL/console" "$CTL/qemu.log" "$CTL/stuck"
  : > "$CTL/status"
  # stdout/stderr: virtio-serial ports -> FIFOs -> our stdout/stderr (streamed).
  mkfifo "$CTL/out" "$CTL/err"
  cat "$CTL/out" & p_out=$!
  cat "$CTL/err" >&2 & p_err=$!
  timeout -s TERM "$secs" "$QEMU" "${ACCEL_ARGS[@]}" -M q35 -m "$MEM" -smp "$CPUS" \
    -nographic -nodefaults -no-user-config -no-reboot \
    -serial "file:$CTL/console" \
    -kernel "$CACHE/vmlinux" -initrd "$CACHE/initramfs.cpio.gz" -append "$CMDLINE" \
    "${FS_ARGS[@]}" \
    -device virtio-serial-pci,max_ports=4 \
    -chardev "file,id=cout,path=$CTL/out" -device virtserialport,chardev=cout,name=stdout \
    -chardev "file,id=cerr,path=$CTL/err" -device virtserialport,chardev=cerr,name=stderr \
    -chardev "file,id=cst,path=$CTL/status" -device virtserialport,chardev=cst,name=status \
    </dev/null >"$CTL/qemu.log" 2>&1 &
  QPID=$!
  if [ "$watchdog" -gt 0 ]; then
    # Its own sleep is killed with it, and its fds are not ours: a stray sleep
    # must not hold a caller's pipe open.
    ( trap 'kill $! 2>/dev/null; exit 0' TERM
      sleep "$watchdog" & wait $!
      grep -q '^start ' "$CTL/status" || { : > "$CTL/stuck"; kill "$QPID" 2>/dev/null; }
    ) </dev/null >/dev/null 2>&1 &
    WPID=$!
  fi
  QRC=0; wait "$QPID" || QRC=$?
  QPID=
  if [ -n "$WPID" ]; then kill "$WPID" 2>/dev/null || true; wait "$WPID" 2>/dev/null || true; WPID=; fi
  unblock_readers
  wait "$p_out" "$p_err" 2>/dev/null || true
}

diagnostics() {
  {
    echo "---- run-in-vm: accel=$ACCEL qemu rc=$QRC status: $(tr '\n' ' ' < "$CTL/status" 2>/dev/null)"
    cat "$CTL/qemu.log" 2>/dev/null
    echo "---- guest console (last 50 lines):"; tail -n 50 "$CTL/console" 2>/dev/null
  } >&2 || true
}

T0=$SECONDS
boot "$TIMEOUT" "$BOOT_TIMEOUT"
if ! grep -q '^start ' "$CTL/status" && [ "$QRC" != 124 ]; then
  left=$((TIMEOUT - (SECONDS - T0)))
  if [ "$left" -gt 0 ]; then
    why="qemu exit status $QRC"
    [ ! -e "$CTL/stuck" ] || why="no start within ${BOOT_TIMEOUT}s"
    echo "run-in-vm: the guest never started the command ($why); booting it again, once" >&2
    if [ "$VERBOSE" = 1 ]; then diagnostics; fi
    if [ -n "$CONSOLE_KEEP" ]; then cp "$CTL/console" "$CONSOLE_KEEP.first-boot" 2>/dev/null || true; fi
    boot "$left" 0
  else
    QRC=124
  fi
fi

RC=$(sed -n 's/^rc //p' "$CTL/status" 2>/dev/null | tail -1)
if [ -n "$CONSOLE_KEEP" ]; then cp "$CTL/console" "$CONSOLE_KEEP" 2>/dev/null || true; fi
if [ "$VERBOSE" = 1 ]; then
  # Guest uptimes: kernel start -> command start -> command end.
  start=$(sed -n 's/^start //p' "$CTL/status"); end=$(sed -n 's/^end //p' "$CTL/status")
  echo "---- run-in-vm: boot ${start:-?}s, command $(awk -v a="${start:-0}" -v b="${end:-0}" 'BEGIN{printf "%.2f", b-a}')s (guest clock), $((SECONDS - T0))s in all" >&2
fi
if [ "$VERBOSE" = 1 ] || [ -z "$RC" ]; then diagnostics; fi
if [ -z "$RC" ]; then
  if [ "$QRC" = 124 ]; then echo "run-in-vm: timed out after ${TIMEOUT}s" >&2; exit 124; fi
  echo "run-in-vm: the VM did not report an exit status" >&2
  exit 125
fi
exit "$RC"
