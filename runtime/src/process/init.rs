//! The cloned child, from clone to execve. It runs for the init process of a
//! container (rootfs set up, then blocked until `start`) and for `exec`
//! (namespaces joined, no rootfs work). Phases, in order:
//! 1. wait for Go (the parent has written id maps and joined us to the cgroup);
//! 2. join and unshare namespaces; 3. rootfs, hostname, console, sysctls;
//! 4. user, capabilities, rlimits, cwd; 5. Ready, then wait for start;
//! 6. seccomp as late as possible; 7. execve.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Process, Spec};

use super::capabilities::{CapPlan, CapsError};
use super::channel::{Channel, ChannelError, Message};
use super::namespaces::{self, NamespaceError};
use super::seccomp::SeccompError;
use crate::cgroups::CgroupPaths;
use crate::rootfs::{self, RootfsError};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Caps(#[from] CapsError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error("{step}")]
    Sys {
        step: String,
        #[source]
        source: nix::Error,
    },
    #[error("{step}")]
    Io {
        step: String,
        #[source]
        source: io::Error,
    },
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("exec: {0:?}: permission denied")]
    NotExecutable(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Sched(#[from] super::sched::SchedError),
}

fn sys(step: impl Into<String>) -> impl FnOnce(nix::Error) -> InitError {
    let step = step.into();
    move |source| InitError::Sys { step, source }
}

/// What the child needs; built by the parent before clone.
pub struct ChildConfig<'a> {
    pub process: &'a Process,
    /// The full spec for a container's init; None for exec.
    pub spec: Option<&'a Spec>,
    pub rootfs: PathBuf,
    /// exec into a container that shares the runtime's mount namespace: its
    /// init's root (/proc/<pid>/root), to chroot into. Joining a mount
    /// namespace sets the root by itself (setns(2)).
    pub enter_root: Option<File>,
    pub cgroup: CgroupPaths,
    pub ns: namespaces::Plan,
    pub join: Vec<(LinuxNamespaceType, PathBuf, File)>,
    pub seccomp: Option<libseccomp::ScmpFilterContext>,
    pub caps: CapPlan,
    pub console: Option<UnixStream>,
    pub start: Option<UnixListener>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    /// Hooks of the container (init only) and the state they are given.
    pub hooks: Option<oci_spec::runtime::Hooks>,
    pub hook_state: Option<crate::hooks::HookState>,
    /// The seccomp agent's socket (listenerPath), connected by the parent, and its metadata.
    pub seccomp_listener: Option<(UnixStream, String)>,
}

/// The child's entry point: never returns.
pub fn run(cfg: &ChildConfig, chan: &Channel) -> ! {
    let err = match child_main(cfg, chan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = chan.send(&Message::Error(rind_common::error::chain(&err)));
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong to
    // the parent whose memory this child copied.
    unsafe { libc::_exit(127) }
}

enum Never {}

fn child_main(cfg: &ChildConfig, chan: &Channel) -> Result<Never, InitError> {
    // Until execve, nothing in the container may ptrace us or open our
    // /proc/<pid>/exe (the runtime binary); execve resets this.
    nix::sys::prctl::set_dumpable(false).map_err(sys("set non-dumpable"))?;
    let host_pid = chan.wait_go()?;
    for (t, path, file) in &cfg.join {
        namespaces::join(*t, path, file)?;
    }
    namespaces::unshare(cfg.ns.unshare_flags)?;
    if cfg.ns.new_user {
        // Become root of the new user namespace now that the maps exist.
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).map_err(sys("setresgid in user namespace"))?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).map_err(sys("setresuid in user namespace"))?;
    }
    let terminal = cfg.process.terminal() == Some(true);
    if cfg.spec.is_some() || terminal {
        nix::unistd::setsid().map_err(sys("setsid"))?;
    }
    if let Some(root) = &cfg.enter_root {
        nix::unistd::fchdir(root).map_err(sys("enter the container's root"))?;
        nix::unistd::chroot(".").map_err(sys("chroot to the container's root"))?;
    }
    if let Some(spec) = cfg.spec {
        // A namespace type not listed is the runtime's (config-linux.md,
        // "Namespaces"): without a mount namespace the rootfs is set up in
        // ours and entered with chroot.
        let own_mount_ns = cfg.ns.contains(LinuxNamespaceType::Mount);
        let setup = rootfs::Setup {
            spec,
            rootfs: &cfg.rootfs,
            cgroup: &cfg.cgroup,
            new_cgroupns: cfg.ns.creates(LinuxNamespaceType::Cgroup),
            in_userns: cfg.ns.contains(LinuxNamespaceType::User),
            own_mount_ns,
        };
        rootfs::prepare(&setup)?;
        run_create_hooks(cfg, chan)?;
        rootfs::pivot(&cfg.rootfs, rootfs::root_switch(own_mount_ns, cfg.no_pivot))?;
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h).map_err(sys(format!("set hostname {h:?}")))?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            set_domainname(d)?;
        }
    }
    if terminal {
        let sock =
            cfg.console.as_ref().ok_or_else(|| InitError::Invalid("process.terminal is set but no --console-socket was given".into()))?;
        setup_console(sock, cfg.process, cfg.spec.is_some())?;
    }
    if let Some(spec) = cfg.spec {
        write_sysctls(spec)?;
        rootfs::finalize(spec)?;
    }
    set_rlimits(cfg.process)?;
    let personality = cfg.spec.and_then(|s| s.linux().as_ref()).and_then(|l| l.personality().as_ref());
    super::sched::apply(cfg.process, personality)?;
    cfg.caps.apply_before_user()?;
    switch_user(cfg.process)?;
    let cwd = cfg.process.cwd();
    nix::unistd::chdir(cwd).map_err(sys(format!("chdir to cwd {}", cwd.display())))?;
    let args = cfg.process.args().clone().unwrap_or_default();
    let env = cfg.process.env().clone().unwrap_or_default();
    let path = resolve_exec(&args, &env)?;
    let argv = cstrings(&args)?;
    let envp = cstrings(&env)?;
    mark_cloexec_from(3 + cfg.preserve_fds as i32)?;
    reset_signals()?;

    // Created: wait for `start`, unless this is an exec.
    let start_conn = match &cfg.start {
        Some(listener) => {
            chan.send(&Message::Ready)?;
            Some(accept_start(listener)?)
        }
        None => None,
    };
    let result = run_start_hooks(cfg).and_then(|()| finish_and_exec(cfg, host_pid, &path, &argv, &envp));
    if let (Some(mut conn), Err(e)) = (start_conn, &result) {
        let _ = conn.write_all(rind_common::error::chain(e).as_bytes());
    }
    result
}

/// The last steps, kept short: after the seccomp filter is loaded, only
/// capset, prctl and execve run, so a filter that blocks what setup needs
/// (getcwd, mount, …) cannot break it.
fn finish_and_exec(cfg: &ChildConfig, host_pid: i32, path: &CString, argv: &[CString], envp: &[CString]) -> Result<Never, InitError> {
    let nnp = cfg.process.no_new_privileges() == Some(true);
    if let (Some(filter), false) = (&cfg.seccomp, nnp) {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: keep it
        // effective until the filter is in.
        let permitted = caps::read(None, caps::CapSet::Permitted).unwrap_or_default();
        let _ = caps::set(None, caps::CapSet::Effective, &permitted);
        load_filter(cfg, filter, host_pid)?;
    }
    cfg.caps.apply_after_user()?;
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(sys("set no_new_privs"))?;
        if let Some(filter) = &cfg.seccomp {
            load_filter(cfg, filter, host_pid)?;
        }
    }
    let err = nix::unistd::execve(path, argv, envp).unwrap_err();
    Err(InitError::Sys { step: format!("exec {:?}", path), source: err })
}

/// Before pivot_root: the parent runs prestart and createRuntime hooks in the
/// runtime namespaces, then we run createContainer hooks in ours.
fn run_create_hooks(cfg: &ChildConfig, chan: &Channel) -> Result<(), InitError> {
    let (Some(hooks), Some(state)) = (&cfg.hooks, &cfg.hook_state) else { return Ok(()) };
    let parent_side =
        hooks.prestart().as_ref().is_some_and(|h| !h.is_empty()) || hooks.create_runtime().as_ref().is_some_and(|h| !h.is_empty());
    if parent_side {
        chan.send(&Message::RunHooks)?;
        chan.expect(Message::HooksDone, "HooksDone")?;
    }
    if let Some(h) = hooks.create_container() {
        crate::hooks::run_all("createContainer", h, &state.with(crate::hooks::status_for("createContainer"), std::process::id() as i32))?;
    }
    Ok(())
}

/// After `start` released us, before the exec: startContainer hooks.
fn run_start_hooks(cfg: &ChildConfig) -> Result<(), InitError> {
    let (Some(hooks), Some(state)) = (&cfg.hooks, &cfg.hook_state) else { return Ok(()) };
    if let Some(h) = hooks.start_container() {
        crate::hooks::run_all("startContainer", h, &state.with(crate::hooks::status_for("startContainer"), std::process::id() as i32))?;
    }
    Ok(())
}

/// Loads the filter; with notify rules, hands the notify fd to the agent at
/// listenerPath with the container process state, as the spec describes.
fn load_filter(cfg: &ChildConfig, filter: &libseccomp::ScmpFilterContext, host_pid: i32) -> Result<(), InitError> {
    filter.load().map_err(|source| SeccompError::Lib { what: "load filter".into(), source })?;
    let Some((sock, metadata)) = &cfg.seccomp_listener else { return Ok(()) };
    let fd = filter.get_notify_fd().map_err(|source| SeccompError::Lib { what: "get notify fd".into(), source })?;
    let state = cfg.hook_state.as_ref().map(|s| s.with(crate::state::Status::Created, host_pid));
    let msg = serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": host_pid,
        "metadata": metadata,
        "state": state,
    });
    send_fd(sock, fd, msg.to_string().as_bytes())?;
    // SAFETY: the fd is ours; the agent holds its own copy now.
    unsafe { libc::close(fd) };
    Ok(())
}

fn accept_start(listener: &UnixListener) -> Result<UnixStream, InitError> {
    loop {
        match listener.accept() {
            Ok((conn, _)) => return Ok(conn),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(InitError::Io { step: "wait for start".into(), source }),
        }
    }
}

fn set_domainname(d: &str) -> Result<(), InitError> {
    // SAFETY: the pointer and length describe `d`, alive for the call.
    let rc = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
    if rc != 0 {
        return Err(InitError::Io { step: format!("set domainname {d:?}"), source: io::Error::last_os_error() });
    }
    Ok(())
}

fn write_sysctls(spec: &Spec) -> Result<(), InitError> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (k, v) in sysctl {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v).map_err(|source| InitError::Io { step: format!("sysctl {k}={v}"), source })?;
    }
    Ok(())
}

fn setup_console(sock: &UnixStream, process: &Process, is_init: bool) -> Result<(), InitError> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(sys("open /dev/ptmx"))?;
    nix::pty::unlockpt(&master).map_err(sys("unlock pty"))?;
    let slave_path = nix::pty::ptsname_r(&master).map_err(sys("pty name"))?;
    if let Some(size) = process.console_size() {
        let ws = nix::pty::Winsize { ws_row: size.height() as u16, ws_col: size.width() as u16, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads a Winsize from the pointer, which is valid.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if rc != 0 {
            return Err(InitError::Io { step: "set console size".into(), source: io::Error::last_os_error() });
        }
    }
    let slave: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&slave_path)
        .map_err(|source| InitError::Io { step: format!("open {slave_path}"), source })?
        .into();
    if is_init {
        let console = Path::new("/dev/console");
        rootfs::touch(console)?;
        rootfs::do_mount(Some(Path::new(&slave_path)), console, None, nix::mount::MsFlags::MS_BIND, None)?;
    }
    send_fd(sock, master.as_raw_fd(), b"/dev/ptmx")?;
    drop(master);
    for fd in 0..3 {
        // SAFETY: dup2 onto the stdio numbers; nothing else owns them in this child.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(InitError::Io { step: "dup pty to stdio".into(), source: io::Error::last_os_error() });
        }
    }
    // SAFETY: TIOCSCTTY on fd 0, which we just made the pty slave.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(InitError::Io { step: "set controlling terminal".into(), source: io::Error::last_os_error() });
    }
    Ok(())
}

fn send_fd(sock: &UnixStream, fd: i32, name: &[u8]) -> Result<(), InitError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [io::IoSlice::new(name)];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).map_err(sys("send pty master to console socket"))?;
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

fn set_rlimits(p: &Process) -> Result<(), InitError> {
    for r in p.rlimits().iter().flatten() {
        let lim = libc::rlimit { rlim_cur: r.soft(), rlim_max: r.hard() };
        // SAFETY: setrlimit reads the struct we pass; it is valid for the call.
        if unsafe { libc::setrlimit(rlimit_resource(r.typ()), &lim) } != 0 {
            return Err(InitError::Io {
                step: format!("set rlimit {:?} to {}/{}", r.typ(), r.soft(), r.hard()),
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

fn switch_user(p: &Process) -> Result<(), InitError> {
    let u = p.user();
    // Keep the permitted set across the uid change; capabilities are set right after.
    caps::securebits::set_keepcaps(true).map_err(|source| CapsError::Set { set: "keepcaps", source })?;
    let groups: Vec<Gid> = u.additional_gids().iter().flatten().map(|g| Gid::from_raw(*g)).collect();
    let setgroups_denied = std::fs::read_to_string("/proc/self/setgroups").map(|s| s.trim() == "deny").unwrap_or(false);
    if !setgroups_denied {
        nix::unistd::setgroups(&groups).map_err(sys("setgroups"))?;
    }
    let (gid, uid) = (Gid::from_raw(u.gid()), Uid::from_raw(u.uid()));
    nix::unistd::setresgid(gid, gid, gid).map_err(sys(format!("setgid {}", u.gid())))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(sys(format!("setuid {}", u.uid())))?;
    caps::securebits::set_keepcaps(false).map_err(|source| CapsError::Set { set: "keepcaps", source })?;
    if let Some(mask) = u.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds args[0] as execve will need it: a path with '/' as given, otherwise
/// searched in the process's PATH.
fn resolve_exec(args: &[String], env: &[String]) -> Result<CString, InitError> {
    let name = args.first().ok_or_else(|| InitError::Invalid("process.args must not be empty".into()))?;
    let check = |p: &Path| -> Option<Result<(), InitError>> {
        let meta = std::fs::metadata(p).ok()?;
        if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
            return Some(Err(InitError::NotExecutable(name.clone())));
        }
        Some(Ok(()))
    };
    let found = if name.contains('/') {
        match check(Path::new(name)) {
            Some(r) => r.map(|_| PathBuf::from(name)),
            None => Err(InitError::NotFound(name.clone())),
        }
    } else {
        let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
        let mut result = Err(InitError::NotFound(name.clone()));
        for dir in path.split(':').filter(|d| !d.is_empty()) {
            let cand = Path::new(dir).join(name);
            match check(&cand) {
                Some(Ok(())) => {
                    result = Ok(cand);
                    break;
                }
                Some(Err(e)) => result = Err(e),
                None => {}
            }
        }
        result
    }?;
    CString::new(found.into_os_string().into_encoded_bytes()).map_err(|_| InitError::Invalid(format!("{name:?} contains a NUL byte")))
}

fn cstrings(v: &[String]) -> Result<Vec<CString>, InitError> {
    v.iter().map(|s| CString::new(s.as_bytes()).map_err(|_| InitError::Invalid(format!("{s:?} contains a NUL byte")))).collect()
}

/// Every fd from `first` on closes at execve: nothing of the runtime's leaks.
fn mark_cloexec_from(first: i32) -> Result<(), InitError> {
    // SAFETY: close_range only changes fd flags; CLOSE_RANGE_CLOEXEC closes nothing.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk /proc/self/fd.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|source| InitError::Io { step: "list fds".into(), source })?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: setting FD_CLOEXEC on an fd number; a closed one just fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// The container starts with default dispositions and an empty mask: Rust
/// ignores SIGPIPE, and ignored signals would survive execve.
fn reset_signals() -> Result<(), InitError> {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code.
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    }
    signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).map_err(sys("reset signal mask"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_exec_searches_path() {
        let p = resolve_exec(&["sh".into()], &["PATH=/nonexistent:/bin".into()]).unwrap();
        assert_eq!(p.to_str().unwrap(), "/bin/sh");
    }

    #[test]
    fn resolve_exec_reports_missing_and_not_executable() {
        let e = resolve_exec(&["no-such-binary-xyz".into()], &[]).unwrap_err();
        assert!(e.to_string().contains("executable file not found"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let e = resolve_exec(&[plain.to_string_lossy().into()], &[]).unwrap_err();
        assert!(matches!(e, InitError::NotExecutable(_)), "{e}");
        let e = resolve_exec(&[dir.path().to_string_lossy().into()], &[]).unwrap_err();
        assert!(matches!(e, InitError::NotExecutable(_)), "{e}");
        assert!(resolve_exec(&[], &[]).is_err());
    }
}
