//! CVE-2019-5736: a container must never be able to rewrite the host's
//! runtime binary through /proc/<pid>/exe. Our container processes run this
//! binary until their execve, and a hostile image can make us exec ourselves
//! again inside the container (`#!/proc/self/exe`), where another container
//! process can open /proc/<pid>/exe and reopen it for writing once it is no
//! longer busy.
//!
//! Defence, without copying the binary: make sure we run from a read-only
//! mount. If /proc/self/exe is writable, open the binary through a read-only
//! bind mount made in a throw-away mount namespace, return to our own mount
//! namespace, and re-exec that fd. Our image is then that read-only file, so
//! any reopen of it for writing fails with EROFS, while the runtime itself
//! keeps working in the host's mount namespace (hooks, propagation). The init
//! is also non-dumpable until its execve (process/init.rs).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::statvfs::{statvfs, FsFlags};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("protect the runtime binary {path}: {step}")]
    Sys {
        path: String,
        step: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("protect the runtime binary")]
    Io(#[from] io::Error),
}

fn sealed() -> bool {
    statvfs(Path::new("/proc/self/exe")).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY))
}

/// Returns when this process runs from a read-only mount; otherwise re-execs
/// itself through one (and does not return).
pub fn ensure_read_only_exe() -> Result<(), SealError> {
    if sealed() {
        return Ok(());
    }
    let exe = std::fs::read_link("/proc/self/exe")?;
    let shown = exe.display().to_string();
    let sys = |step| {
        let path = shown.clone();
        move |source| SealError::Sys { path, step, source }
    };
    let home = File::open("/proc/self/ns/mnt")?;
    // setns resets the working directory; relative paths (`--bundle .`) need it back.
    let cwd = File::open(".")?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare mount namespace"))?;
    // Nothing done in the throw-away namespace may reach the host.
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(sys("make / rprivate"))?;
    nix::mount::mount(Some(&exe), &exe, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(sys("bind"))?;
    nix::mount::mount(None::<&str>, &exe, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
        .map_err(sys("remount read-only"))?;
    let image = File::open(&exe)?;
    nix::sched::setns(&home, CloneFlags::CLONE_NEWNS).map_err(sys("return to our mount namespace"))?;
    nix::unistd::fchdir(&cwd).map_err(sys("return to the working directory"))?;
    let args: Vec<CString> = std::env::args_os().map(|a| CString::new(a.as_bytes()).unwrap_or_default()).collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    let err = nix::unistd::execveat(&image, c"", &args, &env, nix::fcntl::AtFlags::AT_EMPTY_PATH).unwrap_err();
    Err(SealError::Sys { path: exe.display().to_string(), step: "re-exec", source: err })
}
