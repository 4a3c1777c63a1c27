//! The rootfs containerd hands to Create (one overlay or bind mount),
//! mounted at <bundle>/rootfs and unmounted on Delete. An overlay whose
//! options would not fit mount(2)'s one page is mounted with its lowerdirs
//! relative to their common parent, from there, as containerd does.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("create {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mount rootfs on {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("mount rootfs on {path} from {dir}, the lowerdirs relative to it")]
    MountAt {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// mount(2) copies at most one page of options (copy_mount_options): 4096
/// bytes here, and this is the least of the pages Linux uses.
const PAGE_SIZE: usize = 4096;

/// containerd's margin (`mount_linux.go`): it compacts the lowerdirs from a
/// page less 512 bytes.
const COMPACT_FROM: usize = PAGE_SIZE - 512;

/// The overlay options with the lowerdirs relative to their longest common
/// parent directory, and that directory: None when there is no such parent
/// below `/` or no lowerdir option.
pub fn compact_lowerdirs(data: &str) -> Option<(PathBuf, String)> {
    let opts: Vec<&str> = data.split(',').collect();
    let at = opts.iter().position(|o| o.starts_with("lowerdir="))?;
    let dirs: Vec<&Path> = opts[at]["lowerdir=".len()..].split(':').map(Path::new).collect();
    let first: Vec<_> = dirs.first()?.parent()?.components().collect();
    // The longest prefix of the first one's parent that is a parent of all.
    let common_len = dirs.iter().fold(first.len(), |len, d| {
        let parent: Vec<_> = d.parent().map(|p| p.components().collect()).unwrap_or_default();
        first.iter().zip(&parent).take(len).take_while(|(a, b)| a == b).count()
    });
    let common: PathBuf = first[..common_len].iter().collect();
    if !common.is_absolute() || common.parent().is_none() {
        return None;
    }
    let relative: Vec<String> =
        dirs.iter().map(|d| d.strip_prefix(&common).map(|r| r.display().to_string())).collect::<Result<_, _>>().ok()?;
    let mut out: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
    out[at] = format!("lowerdir={}", relative.join(":"));
    Some((common, out.join(",")))
}

/// Mounts with `dir` as the working directory: the thread unshares its
/// filesystem attributes first (unshare(2), CLONE_FS), so the chdir moves
/// no other thread of the shim.
fn mount_from(dir: &Path, source: &str, target: &Path, fstype: Option<&str>, flags: MsFlags, data: &str) -> nix::Result<()> {
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?;
            nix::unistd::chdir(dir)?;
            nix::mount::mount(Some(source), target, fstype, flags, Some(data))
        });
        t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// One mount as containerd describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    pub kind: String,
    pub source: String,
    /// Unused for the rootfs (it goes on <bundle>/rootfs); kept for TaskCreate.
    pub target: String,
    pub options: Vec<String>,
}

/// What mount(2) takes for `m`: flags, and the options it does not know as data.
pub fn plan(m: &Mount) -> (Option<&str>, MsFlags, Option<String>) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in &m.options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => {}
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data.push(other),
        }
    }
    let fstype = (!m.kind.is_empty() && m.kind != "bind").then_some(m.kind.as_str());
    (fstype, flags, (!data.is_empty()).then(|| data.join(",")))
}

/// Mounts the first of `mounts` on `target`; false when there is none (the
/// bundle brings its own rootfs).
pub fn mount(mounts: &[Mount], target: &Path) -> Result<bool, RootfsError> {
    let Some(m) = mounts.first() else { return Ok(false) };
    std::fs::create_dir_all(target).map_err(|source| RootfsError::Create { path: target.to_path_buf(), source })?;
    let (fstype, flags, data) = plan(m);
    let long = data.as_deref().filter(|d| fstype == Some("overlay") && d.len() >= COMPACT_FROM);
    if let Some((dir, short)) = long.and_then(compact_lowerdirs) {
        // Relative to `dir` from now on: the target must not be.
        let target = std::path::absolute(target).map_err(|source| RootfsError::Create { path: target.to_path_buf(), source })?;
        mount_from(&dir, &m.source, &target, fstype, flags, &short).map_err(|source| RootfsError::MountAt {
            path: target.to_path_buf(),
            dir,
            source,
        })?;
        return Ok(true);
    }
    nix::mount::mount(Some(m.source.as_str()), target, fstype, flags, data.as_deref())
        .map_err(|source| RootfsError::Mount { path: target.to_path_buf(), source })?;
    Ok(true)
}

/// Lazily, so a process still holding a file in it does not keep it.
pub fn unmount(target: &Path) {
    let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_splits_flags_from_overlay_data() {
        let m = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            target: String::new(),
            options: vec!["ro".into(), "lowerdir=/a:/b".into(), "nodev".into(), "index=off".into()],
        };
        assert_eq!(plan(&m), (Some("overlay"), MsFlags::MS_RDONLY | MsFlags::MS_NODEV, Some("lowerdir=/a:/b,index=off".into())));
    }

    #[test]
    fn plan_of_a_bind_mount_has_no_fstype() {
        let m = Mount { kind: "bind".into(), source: "/x".into(), target: String::new(), options: vec!["rbind".into(), "rw".into()] };
        assert_eq!(plan(&m), (None, MsFlags::MS_BIND | MsFlags::MS_REC, None));
    }

    #[test]
    fn compact_lowerdirs_makes_them_relative_to_their_common_parent() {
        let data = "lowerdir=/var/lib/rind/snapshots/12/fs:/var/lib/rind/snapshots/3/fs,upperdir=/c/upper,workdir=/c/work,index=off";
        let (dir, short) = compact_lowerdirs(data).unwrap();
        assert_eq!(dir, PathBuf::from("/var/lib/rind/snapshots"));
        assert_eq!(short, "lowerdir=12/fs:3/fs,upperdir=/c/upper,workdir=/c/work,index=off");
        // One lowerdir: its parent.
        assert_eq!(compact_lowerdirs("lowerdir=/a/b/fs").unwrap(), (PathBuf::from("/a/b"), "lowerdir=fs".into()));
        // Nothing in common below `/`, or nothing to compact.
        assert_eq!(compact_lowerdirs("lowerdir=/a/fs:/b/fs,upperdir=/u"), None);
        assert_eq!(compact_lowerdirs("upperdir=/u,workdir=/w"), None);
        assert_eq!(compact_lowerdirs("lowerdir=rel/fs:rel/gs"), None);
    }

    #[test]
    fn two_hundred_deep_lowerdirs_fit_a_page_once_compacted() {
        let lower: Vec<String> = (1..=200).rev().map(|n| format!("/run/rindd0123456789/lib/snapshots/{n}/fs")).collect();
        let data = format!(
            "lowerdir={},upperdir=/run/rindd0123456789/lib/containers/{id}/upper,workdir=/run/rindd0123456789/lib/containers/{id}/work",
            lower.join(":"),
            id = "f".repeat(64)
        );
        assert!(data.len() > PAGE_SIZE);
        let (_, short) = compact_lowerdirs(&data).unwrap();
        assert!(short.len() < PAGE_SIZE, "{} bytes", short.len());
    }

    #[test]
    fn mount_of_nothing_is_not_mounted() {
        let d = tempfile::tempdir().unwrap();
        assert!(!mount(&[], &d.path().join("rootfs")).unwrap());
    }
}
