//! CVE-2019-5736: a container must never be able to rewrite the host's
//! runtime binary through /proc/<pid>/exe. Our container processes run this
//! binary until their execve, and a hostile image can make us exec ourselves
//! again inside the container (`#!/proc/self/exe`), where another container
//! process can open /proc/<pid>/exe and reopen it for writing once it is no
//! longer busy.
//!
//! Defence, without copying the binary: before touching a container, make
//! sure we run from a read-only mount. If /proc/self/exe is writable, enter a
//! private mount namespace, bind the binary read-only over itself and re-exec
//! through it. Any reopen of that file for writing then fails with EROFS.
//! The init is also made non-dumpable until its execve (see process/init.rs),
//! so container processes cannot even open its /proc/<pid>/exe meanwhile.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::MsFlags;
use nix::sys::statvfs::{statvfs, FsFlags};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("protect the runtime binary {path}: {step}: {source}")]
    Sys {
        path: String,
        step: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("protect the runtime binary: {0}")]
    Io(#[from] io::Error),
}

const SEALED_ENV: &str = "_RIND_RUNTIME_SEALED";

/// Returns when this process runs from a read-only mount; otherwise re-execs
/// itself through one (and does not return).
pub fn ensure_read_only_exe() -> Result<(), SealError> {
    if std::env::var_os(SEALED_ENV).is_some() {
        // SAFETY: single-threaded at this point of main; nothing reads env concurrently.
        unsafe { std::env::remove_var(SEALED_ENV) };
        return Ok(());
    }
    let self_exe = Path::new("/proc/self/exe");
    if statvfs(self_exe).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY)) {
        return Ok(());
    }
    let exe = std::fs::read_link(self_exe)?;
    let shown = exe.display().to_string();
    let sys = |step| {
        let path = shown.clone();
        move |source| SealError::Sys { path, step, source }
    };
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(sys("unshare mount namespace"))?;
    // Our later mounts must not reach the host, but host mounts must still reach us.
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>).map_err(sys("make / rslave"))?;
    nix::mount::mount(Some(&exe), &exe, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(sys("bind"))?;
    nix::mount::mount(None::<&str>, &exe, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
        .map_err(sys("remount read-only"))?;
    let path = CString::new(exe.as_os_str().as_bytes()).map_err(|_| io::Error::other("binary path has a NUL byte"))?;
    let args: Vec<CString> = std::env::args_os().map(|a| CString::new(a.as_bytes()).unwrap_or_default()).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    env.push(CString::new(format!("{SEALED_ENV}=1")).expect("no NUL"));
    let err = nix::unistd::execve(&path, &args, &env).unwrap_err();
    Err(SealError::Sys { path: exe.display().to_string(), step: "re-exec", source: err })
}
