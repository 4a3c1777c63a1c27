//! `run` of a busybox `true` container with rind-runtime, runc and crun, on
//! one bundle, interleaved, in one private mount namespace where an empty
//! tmpfs covers /sys/fs/cgroup/unified (crun 1.8 refuses the hybrid layout;
//! all three see the same view, so the comparison stays fair).

use std::ffi::CString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::median;

struct Peer {
    name: &'static str,
    bin: PathBuf,
    wall_ms: Vec<f64>,
    rss_kib: Vec<f64>,
}

fn private_cgroup_view() -> anyhow::Result<()> {
    // SAFETY: plain syscalls on this single-threaded process's own namespace.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            bail!("unshare mount namespace: {}", std::io::Error::last_os_error());
        }
        let root = CString::new("/").unwrap();
        if libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_SLAVE, std::ptr::null()) != 0 {
            bail!("make / rslave: {}", std::io::Error::last_os_error());
        }
        let unified = Path::new("/sys/fs/cgroup/unified");
        if unified.exists() {
            let t = CString::new("tmpfs").unwrap();
            let p = CString::new(unified.to_str().unwrap()).unwrap();
            if libc::mount(t.as_ptr(), p.as_ptr(), t.as_ptr(), 0, std::ptr::null()) != 0 {
                bail!("mount tmpfs over {}: {}", unified.display(), std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Runs one `run` and returns (wall ms, peak RSS KiB of the runtime's process tree).
fn run_once(bin: &Path, root: &Path, bundle: &Path, id: &str) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    let child = Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))?;
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: wait4 on our own child fills the rusage struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed().as_secs_f64() * 1000.0;
    if rc != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if std::process::ExitStatus::from_raw(status).code() != Some(0) {
        let mut err = String::new();
        use std::io::Read;
        let _ = child.stderr.unwrap().read_to_string(&mut err);
        bail!("{} run failed: {err}", bin.display());
    }
    Ok((wall, ru.ru_maxrss as f64))
}

/// A Docker-like profile: deny by default, allow a long list of syscalls.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "clone",
    "clone3",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "ioctl",
    "kill",
    "lchown",
    "link",
    "linkat",
    "listen",
    "lseek",
    "lstat",
    "madvise",
    "memfd_create",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mmap",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "prlimit64",
    "pselect6",
    "pwrite64",
    "pwritev",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "sched_getaffinity",
    "sched_yield",
    "select",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setresgid",
    "setresuid",
    "setsid",
    "setsockopt",
    "setuid",
    "shutdown",
    "sigaltstack",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sysinfo",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_settime",
    "timerfd_create",
    "timerfd_settime",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "vfork",
    "wait4",
    "waitid",
    "write",
    "writev",
    "arch_prctl",
    "getpgid",
];

/// `full`: the default config plus a Docker-like seccomp profile and hooks
/// (prestart, poststart, poststop running /bin/true).
fn full_profile(config: &mut serde_json::Value) {
    config["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}]
    });
    let hook = serde_json::json!([{"path": "/bin/true"}]);
    config["hooks"] = serde_json::json!({"prestart": hook, "poststart": hook, "poststop": hook});
}

pub fn bench(runs: usize, full: bool) -> anyhow::Result<()> {
    rind_tests::require_root();
    private_cgroup_view()?;
    let dir = tempfile::tempdir()?;
    let bundle = dir.path().join("bundle");
    rind_tests::make_rootfs(&bundle.join("rootfs"));
    let mut config = rind_tests::default_config(&["true"]);
    if full {
        full_profile(&mut config);
    }
    std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    let mut peers = vec![
        Peer { name: "rind-runtime", bin: rind_tests::workspace_bin("rind-runtime"), wall_ms: vec![], rss_kib: vec![] },
        Peer { name: "runc", bin: PathBuf::from("/usr/sbin/runc"), wall_ms: vec![], rss_kib: vec![] },
        Peer { name: "crun", bin: PathBuf::from("/usr/bin/crun"), wall_ms: vec![], rss_kib: vec![] },
    ];
    let root = dir.path().join("state");
    // One warm-up each, then interleaved runs.
    for i in 0..=runs {
        for p in &mut peers {
            let (wall, rss) = run_once(&p.bin, &root.join(p.name), &bundle, &format!("bench-{}-{i}", p.name))?;
            if i > 0 {
                p.wall_ms.push(wall);
                p.rss_kib.push(rss);
            }
        }
    }
    let runc_wall = median(&peers[1].wall_ms);
    let crun_wall = median(&peers[2].wall_ms);
    let crun_rss = median(&peers[2].rss_kib);
    let what = if full { "with a Docker-like seccomp profile and 3 hooks" } else { "default config" };
    println!("runtime bench: `run` of busybox true, {what}, {runs} runs each, interleaved");
    println!("{:<14} {:>12} {:>12} {:>12} {:>14} {:>12}", "runtime", "median ms", "vs runc", "vs crun", "peak RSS KiB", "vs crun");
    for p in &peers {
        let w = median(&p.wall_ms);
        let r = median(&p.rss_kib);
        println!("{:<14} {:>12.2} {:>12.2} {:>12.2} {:>14.0} {:>12.2}", p.name, w, w / runc_wall, w / crun_wall, r, r / crun_rss);
    }
    Ok(())
}
