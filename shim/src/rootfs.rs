//! The rootfs containerd hands to Create (one overlay or bind mount),
//! mounted at <bundle>/rootfs and unmounted on Delete.

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
    fn mount_of_nothing_is_not_mounted() {
        let d = tempfile::tempdir().unwrap();
        assert!(!mount(&[], &d.path().join("rootfs")).unwrap());
    }
}
