//! The container's filesystem view, built in the child's new mount namespace:
//! propagation, the rootfs bind, config mounts, /dev, pivot_root, then masked
//! and read-only paths. Each failure names the step and the object. Without a
//! mount namespace of its own the container gets the same view in the
//! runtime's namespace, entered with chroot (see [`host`]).

pub mod devices;
pub mod host;
pub mod options;
pub mod securejoin;

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{self, MntFlags, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use oci_spec::runtime::{Mount, Spec};

use crate::cgroups::CgroupPaths;
use securejoin::secure_join;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("mount {what} on {target}")]
    Mount {
        what: String,
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pivot_root to {path}")]
    Pivot {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RootfsError + 'a {
    move |source| RootfsError::Io { op, path: path.to_path_buf(), source }
}

pub(crate) fn do_mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), RootfsError> {
    mount::mount(source, target, fstype, flags, data).map_err(|e| RootfsError::Mount {
        what: match (source, fstype) {
            (Some(s), _) if flags.contains(MsFlags::MS_BIND) => s.display().to_string(),
            (_, Some(t)) => t.to_string(),
            (Some(s), None) => s.display().to_string(),
            (None, None) => format!("({flags:?})"),
        },
        target: target.to_path_buf(),
        source: e,
    })
}

/// Flags a bind remount must keep: in a user namespace the kernel refuses to
/// clear nosuid/nodev/noexec/atime flags locked by the original mount.
fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

fn mkdir_all(path: &Path) -> Result<(), RootfsError> {
    fs::DirBuilder::new().recursive(true).mode(0o755).create(path).map_err(io_err("mkdir", path))
}

/// Creates an empty file at `path` (for a file bind mount), with its parents.
pub(crate) fn touch(path: &Path) -> Result<(), RootfsError> {
    if let Some(parent) = path.parent() {
        mkdir_all(parent)?;
    }
    if path.exists() {
        return Ok(());
    }
    fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o644).open(path).map(drop).map_err(io_err("create", path))
}

pub struct Setup<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub cgroup: &'a CgroupPaths,
    pub new_cgroupns: bool,
    pub in_userns: bool,
    /// The container is in a mount namespace of its own (new or joined);
    /// otherwise in the runtime's, which it must leave as it found it.
    pub own_mount_ns: bool,
}

/// Everything before pivot_root.
pub fn prepare(s: &Setup) -> Result<(), RootfsError> {
    let linux = s.spec.linux().as_ref();
    if s.own_mount_ns {
        detach_rootfs(s)?;
    } else if s.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        // In the runtime's namespace the propagation of its mounts is left
        // alone (as crun does; runc makes the host's / rslave). A read-only
        // root still needs a mount of its own to remount: the rootfs bound on
        // itself, undone at delete like every mount made here (host.rs).
        do_mount(Some(s.rootfs), s.rootfs, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    }

    let mounts = s.spec.mounts().clone().unwrap_or_default();
    for m in &mounts {
        mount_entry(s, m)?;
    }
    let dev_bound =
        mounts.iter().any(|m| m.destination() == Path::new("/dev") && options::parse(m.options().as_deref().unwrap_or(&[])).is_bind);
    devices::create_all(s.rootfs, linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]), s.in_userns, dev_bound)?;
    if let Some(cwd) = s.spec.process().as_ref().map(|p| p.cwd()) {
        let dir = secure_join(s.rootfs, cwd).map_err(io_err("resolve cwd", cwd))?;
        mkdir_all(&dir)?;
    }
    Ok(())
}

/// In the container's own mount namespace: sets how the copied host mounts
/// propagate and makes the rootfs a private mount pivot_root accepts.
fn detach_rootfs(s: &Setup) -> Result<(), RootfsError> {
    let prop = s.spec.linux().as_ref().and_then(|l| l.rootfs_propagation().as_deref()).unwrap_or("");
    // How the copied host mounts propagate: by default host mounts reach the
    // container and not back (rslave). For shared, leave them in the host's
    // peer groups so bind mounts propagate both ways.
    let pre = match prop {
        "" | "slave" | "rslave" | "unbindable" | "runbindable" => Some(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        "private" | "rprivate" => Some(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
        "shared" | "rshared" => None,
        other => return Err(RootfsError::Invalid(format!("rootfsPropagation {other:?} is not a propagation mode"))),
    };
    if let Some(pre) = pre {
        do_mount(None, Path::new("/"), None, pre, None)?;
    }
    do_mount(Some(s.rootfs), s.rootfs, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    // pivot_root refuses a shared new root or parent; rootfsPropagation is applied after it.
    do_mount(None, s.rootfs, None, MsFlags::MS_PRIVATE, None)?;
    make_parent_private(s.rootfs)
}

/// pivot_root needs the parent mount of the new root not to be shared.
fn make_parent_private(rootfs: &Path) -> Result<(), RootfsError> {
    let info = fs::read_to_string("/proc/self/mountinfo").map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    let mount_point = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(PathBuf::from))
        .filter(|mp| parent.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len())
        .unwrap_or_else(|| PathBuf::from("/"));
    do_mount(None, &mount_point, None, MsFlags::MS_PRIVATE, None)
}

fn mount_entry(s: &Setup, m: &Mount) -> Result<(), RootfsError> {
    let typ = m.typ().as_deref().unwrap_or("none");
    let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
    let dest = secure_join(s.rootfs, m.destination()).map_err(io_err("resolve mount destination", m.destination()))?;
    if !dest.starts_with(s.rootfs) {
        return Err(RootfsError::Invalid(format!("mount destination {} leaves the rootfs", m.destination().display())));
    }
    // proc and sysfs over a symlink would hand the container a view the image
    // author chose (e.g. `proc -> /` puts proc over the whole rootfs): refuse, as runc does.
    if (typ == "proc" || typ == "sysfs") && dest != lexical_join(s.rootfs, m.destination()) {
        return Err(RootfsError::Invalid(format!(
            "{typ} mount destination {} is a symlink in the rootfs (to {}): refusing",
            m.destination().display(),
            dest.display()
        )));
    }
    let data = (!opts.data.is_empty()).then(|| opts.data.join(","));
    let is_bind = opts.is_bind || typ == "bind";
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(s, &dest, &opts);
    }
    if is_bind {
        let src = m
            .source()
            .as_deref()
            .ok_or_else(|| RootfsError::Invalid(format!("bind mount on {} has no source", m.destination().display())))?;
        let meta = fs::metadata(src).map_err(io_err("stat bind source", src))?;
        if meta.is_dir() {
            mkdir_all(&dest)?;
        } else {
            touch(&dest)?;
        }
        let rec = opts.flags & MsFlags::MS_REC;
        do_mount(Some(src), &dest, None, MsFlags::MS_BIND | rec, None)?;
        let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            let keep = locked_flags(&dest) - opts.cleared;
            do_mount(None, &dest, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra | keep, None)?;
        }
    } else {
        mkdir_all(&dest)?;
        let src = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
        let fstype = (typ != "none").then_some(typ);
        do_mount(Some(&src), &dest, fstype, opts.flags, data.as_deref())?;
    }
    for p in &opts.propagation {
        do_mount(None, &dest, None, *p, None)?;
    }
    Ok(())
}

/// `root` + `path` without following anything, `..` clamped at the root.
fn lexical_join(root: &Path, path: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.iter().fold(root.to_path_buf(), |p, c| p.join(c))
}

/// A cgroup mount shows the container's own cgroup: cgroup2 itself inside a
/// new cgroup namespace, otherwise bind mounts of the container's directories.
fn mount_cgroup(s: &Setup, dest: &Path, opts: &options::MountOptions) -> Result<(), RootfsError> {
    mkdir_all(dest)?;
    let ro = opts.flags & MsFlags::MS_RDONLY;
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if s.cgroup.v2 {
        if s.new_cgroupns {
            return do_mount(Some(Path::new("cgroup2")), dest, Some("cgroup2"), base | ro | opts.flags, None);
        }
        let dir = s.cgroup.dir_for("").ok_or_else(|| RootfsError::Invalid("no cgroup directory".into()))?;
        do_mount(Some(dir), dest, None, MsFlags::MS_BIND, None)?;
        return do_mount(None, dest, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | base | ro, None);
    }
    do_mount(Some(Path::new("tmpfs")), dest, Some("tmpfs"), base, Some("mode=755"))?;
    for (key, dir) in &s.cgroup.dirs {
        let name = key.strip_prefix("name=").unwrap_or(key);
        let sub = dest.join(name);
        mkdir_all(&sub)?;
        do_mount(Some(dir), &sub, None, MsFlags::MS_BIND, None)?;
        do_mount(None, &sub, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | base | ro, None)?;
    }
    if !ro.is_empty() {
        do_mount(None, dest, None, MsFlags::MS_REMOUNT | base | ro, Some("mode=755"))?;
    }
    Ok(())
}

/// How the container's root is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSwitch {
    /// pivot_root(2), then the old root is detached: in a mount namespace of
    /// the container's own.
    PivotRoot,
    /// `--no-pivot` (for a root on ramfs, which pivot_root refuses): the
    /// rootfs moved over / and chroot.
    MoveAndChroot,
    /// In the runtime's mount namespace: chroot alone, as runc and crun do.
    /// pivot_root there would change the root of every process of the
    /// namespace (pivot_root(2)), and a move would cover the host's /.
    Chroot,
}

pub fn root_switch(own_mount_ns: bool, no_pivot: bool) -> RootSwitch {
    match (own_mount_ns, no_pivot) {
        (false, _) => RootSwitch::Chroot,
        (true, true) => RootSwitch::MoveAndChroot,
        (true, false) => RootSwitch::PivotRoot,
    }
}

/// Makes `rootfs` the root, as `how` says.
pub fn pivot(rootfs: &Path, how: RootSwitch) -> Result<(), RootfsError> {
    let perr = |source| RootfsError::Pivot { path: rootfs.to_path_buf(), source };
    match how {
        RootSwitch::PivotRoot => {}
        RootSwitch::MoveAndChroot => {
            nix::unistd::chdir(rootfs).map_err(perr)?;
            do_mount(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)?;
            nix::unistd::chroot(".").map_err(perr)?;
            return nix::unistd::chdir("/").map_err(perr);
        }
        RootSwitch::Chroot => {
            nix::unistd::chroot(rootfs).map_err(perr)?;
            return nix::unistd::chdir("/").map_err(perr);
        }
    }
    let old = fs::File::open("/").map_err(io_err("open", Path::new("/")))?;
    let new = fs::File::open(rootfs).map_err(io_err("open", rootfs))?;
    nix::unistd::fchdir(&new).map_err(perr)?;
    // pivot_root(".", ".") stacks the old root under the new one; see pivot_root(2).
    nix::unistd::pivot_root(".", ".").map_err(perr)?;
    nix::unistd::fchdir(&old).map_err(perr)?;
    // Keep the unmount from propagating to the host.
    do_mount(None, Path::new("."), None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)?;
    mount::umount2(".", MntFlags::MNT_DETACH).map_err(|source| RootfsError::Mount {
        what: "umount old root".into(),
        target: PathBuf::from("/"),
        source,
    })?;
    let _ = old.as_raw_fd();
    nix::unistd::chdir("/").map_err(perr)
}

/// After pivot_root: root propagation, sysctls are written by the caller
/// first, then read-only paths, masked paths and a read-only root.
pub fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    if let Some(prop) = linux.and_then(|l| l.rootfs_propagation().as_deref()).filter(|p| !p.is_empty()) {
        let flag = options::propagation(prop)
            .ok_or_else(|| RootfsError::Invalid(format!("rootfsPropagation {prop:?} is not a propagation mode")))?;
        do_mount(None, Path::new("/"), None, flag, None)?;
    }
    for p in linux.and_then(|l| l.readonly_paths().clone()).unwrap_or_default() {
        readonly_path(Path::new(&p))?;
    }
    for p in linux.and_then(|l| l.masked_paths().clone()).unwrap_or_default() {
        mask_path(Path::new(&p))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let keep = locked_flags(Path::new("/"));
        do_mount(None, Path::new("/"), None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep, None)?;
    }
    Ok(())
}

fn readonly_path(p: &Path) -> Result<(), RootfsError> {
    if !p.exists() {
        return Ok(());
    }
    do_mount(Some(p), p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    let keep = locked_flags(p);
    do_mount(None, p, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | keep, None)
}

fn mask_path(p: &Path) -> Result<(), RootfsError> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RootfsError::Io { op: "stat masked path", path: p.to_path_buf(), source: e }),
        Ok(m) if m.is_dir() => do_mount(Some(Path::new("tmpfs")), p, Some("tmpfs"), MsFlags::MS_RDONLY, None),
        Ok(_) => do_mount(Some(Path::new("/dev/null")), p, None, MsFlags::MS_BIND, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_switch_never_pivots_the_runtimes_namespace() {
        assert_eq!(root_switch(true, false), RootSwitch::PivotRoot);
        assert_eq!(root_switch(true, true), RootSwitch::MoveAndChroot);
        assert_eq!(root_switch(false, false), RootSwitch::Chroot);
        assert_eq!(root_switch(false, true), RootSwitch::Chroot);
    }
}
