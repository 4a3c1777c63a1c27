//! /dev inside the container: the default devices every container gets, the
//! configured ones, and the standard symlinks.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;

use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::securejoin::secure_join;
use super::{do_mount, io_err, touch, RootfsError};

/// (path, major, minor): character devices with mode 0666, owned by root.
pub const DEFAULT_DEVICES: &[(&str, u64, u64)] =
    &[("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)];

const SYMLINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
];

struct Node<'a> {
    path: &'a Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

pub fn create_all(rootfs: &Path, configured: &[LinuxDevice], in_userns: bool, dev_bound: bool) -> Result<(), RootfsError> {
    if dev_bound {
        // /dev is the host's (privileged containers): nothing to create.
        return Ok(());
    }
    for (path, major, minor) in DEFAULT_DEVICES {
        if configured.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        let n = Node { path: Path::new(path), kind: SFlag::S_IFCHR, major: *major, minor: *minor, mode: 0o666, uid: 0, gid: 0 };
        create(rootfs, &n, in_userns)?;
    }
    for d in configured {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(RootfsError::Invalid(format!("device {}: type \"a\" is only valid in cgroup rules", d.path().display())))
            }
        };
        let n = Node {
            path: d.path(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        create(rootfs, &n, in_userns)?;
    }
    for (target, link) in SYMLINKS {
        let at = secure_join(rootfs, Path::new(link)).map_err(io_err("resolve", Path::new(link)))?;
        if *link == "/dev/ptmx" {
            // Replace a device node left in the image with the link to this devpts.
            let _ = fs::remove_file(&at);
        }
        match symlink(target, &at) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(RootfsError::Io { op: "symlink", path: at, source: e }),
            _ => {}
        }
    }
    Ok(())
}

fn create(rootfs: &Path, n: &Node, in_userns: bool) -> Result<(), RootfsError> {
    let dest = secure_join(rootfs, n.path).map_err(io_err("resolve device", n.path))?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io_err("mkdir", parent))?;
    }
    if in_userns {
        // mknod is refused in a user namespace: bind the host's node instead.
        touch(&dest)?;
        return do_mount(Some(n.path), &dest, None, MsFlags::MS_BIND, None);
    }
    let _ = fs::remove_file(&dest);
    mknod(&dest, n.kind, Mode::from_bits_truncate(n.mode & 0o7777), makedev(n.major, n.minor)).map_err(|e| RootfsError::Io {
        op: "mknod",
        path: dest.clone(),
        source: e.into(),
    })?;
    // mknod applies the umask; set the mode and owner exactly.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &dest,
        Mode::from_bits_truncate(n.mode & 0o7777),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| RootfsError::Io { op: "chmod", path: dest.clone(), source: e.into() })?;
    nix::unistd::chown(&dest, Some(n.uid.into()), Some(n.gid.into())).map_err(|e| RootfsError::Io {
        op: "chown",
        path: dest.clone(),
        source: e.into(),
    })
}
