//! A container's network namespace, made and pinned by rindd (a bind mount
//! of the namespace onto a file under the state dir), so it outlives the
//! container's processes, a restart of the container and of rindd; the
//! runtime joins it by path. Loopback is brought up here: every namespace
//! rindd makes has `lo` up, as docker's do.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} for {path}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// Makes a network namespace pinned at `pin` (nothing is done if one is
/// pinned there already). The new namespace is made on a thread of its own
/// that ends after, so no other thread of rindd ever changes namespace.
pub fn create(pin: &Path) -> Result<(), NetnsError> {
    if is_pinned(pin) {
        return Ok(());
    }
    if let Some(dir) = pin.parent() {
        std::fs::create_dir_all(dir).map_err(|source| NetnsError::Io { op: "create", path: dir.to_path_buf(), source })?;
    }
    std::fs::File::create(pin).map_err(|source| NetnsError::Io { op: "create", path: pin.to_path_buf(), source })?;
    let owned = pin.to_path_buf();
    let made = std::thread::spawn(move || -> Result<(), NetnsError> {
        let sys = |op: &'static str| {
            let path = owned.clone();
            move |source| NetnsError::Sys { op, path, source }
        };
        unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare(CLONE_NEWNET)"))?;
        let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        mount(Some(own.as_str()), &owned, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(sys("bind mount"))?;
        loopback_up().map_err(sys("bring lo up"))
    })
    .join()
    .unwrap_or_else(|_| Err(NetnsError::Io { op: "pin", path: pin.to_path_buf(), source: std::io::Error::other("thread panicked") }));
    if made.is_err() {
        let _ = remove(pin);
    }
    made
}

/// Whether a namespace is mounted on `pin`.
pub fn is_pinned(pin: &Path) -> bool {
    // A pinned file is an nsfs mount: its device differs from its directory's.
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(pin), pin.parent().map(std::fs::metadata)) {
        (Ok(f), Some(Ok(d))) => f.dev() != d.dev(),
        _ => false,
    }
}

/// Unpins and removes the file; the namespace goes with its last user.
/// Absent is not an error.
pub fn remove(pin: &Path) -> Result<(), NetnsError> {
    if is_pinned(pin) {
        match umount2(pin, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(source) => return Err(NetnsError::Sys { op: "unmount", path: pin.to_path_buf(), source }),
        }
    }
    match std::fs::remove_file(pin) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetnsError::Io { op: "remove", path: pin.to_path_buf(), source: e }),
        _ => Ok(()),
    }
}

/// `ip link set lo up` in the calling thread's namespace.
fn loopback_up() -> nix::Result<()> {
    // SAFETY: a plain socket(2) call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo\0".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: fd is an open socket and req a valid ifreq naming "lo".
    let mut r = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) };
    if r == 0 {
        // SAFETY: SIOCGIFFLAGS filled ifru_flags, the union member read here.
        unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
        // SAFETY: as above, with the flags to set.
        r = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) };
    }
    let err = (r != 0).then(nix::Error::last);
    // SAFETY: fd is ours and open.
    unsafe { libc::close(fd) };
    err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unpinned_file_is_not_pinned_and_removing_nothing_is_fine() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        assert!(!is_pinned(&p));
        std::fs::write(&p, "").unwrap();
        assert!(!is_pinned(&p));
        remove(&p).unwrap();
        assert!(!p.exists());
        remove(&p).unwrap();
    }
}
