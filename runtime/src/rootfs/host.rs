//! Mounts a container makes in the runtime's own mount namespace: a config
//! that lists no mount namespace inherits the runtime's (config-linux.md,
//! "Namespaces"), so its mounts land there. `create` notes which ones it made
//! (mount id and path, from mountinfo before and after) and `delete` undoes
//! exactly those, as runtime.md's delete "MUST delete the resources that were
//! created during the create step" (runc and crun leave them mounted).

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::MntFlags;
use serde::{Deserialize, Serialize};

use super::{io_err, RootfsError};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One mount, as /proc/self/mountinfo shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMount {
    /// The mount id (field 1), unique among the mounts that exist at a time.
    pub id: u64,
    pub path: PathBuf,
}

/// The mounts of a mountinfo text at or below `dir`, in the order listed
/// (the order they were made in).
pub fn parse_under(mountinfo: &str, dir: &Path) -> Vec<HostMount> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let id = f.next()?.parse().ok()?;
            let path = unescape(f.nth(3)?);
            path.starts_with(dir).then_some(HostMount { id, path })
        })
        .collect()
}

/// Mount points are written with space, tab, newline and backslash as `\ooo`
/// octal escapes (the kernel's show_mountinfo).
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The mounts at or below `dir` in our mount namespace.
pub fn mounts_under(dir: &Path) -> Result<Vec<HostMount>, RootfsError> {
    let text = fs::read_to_string(MOUNTINFO).map_err(io_err("read", Path::new(MOUNTINFO)))?;
    Ok(parse_under(&text, dir))
}

/// The mounts in `after` that were not in `before`: those made in between.
pub fn made_between(before: &[HostMount], after: &[HostMount]) -> Vec<HostMount> {
    after.iter().filter(|m| !before.contains(m)).cloned().collect()
}

/// Unmounts `made`, newest first, each only while that very mount (same id,
/// same path) is still there: one the container removed itself, or that
/// went with a parent detached before it, is skipped.
pub fn undo(made: &[HostMount]) -> Result<(), RootfsError> {
    for m in made.iter().rev() {
        if !mounts_under(&m.path)?.contains(m) {
            continue;
        }
        // Detach: a process of the container may still hold a file open below it.
        nix::mount::umount2(&m.path, MntFlags::MNT_DETACH).map_err(|source| RootfsError::Mount {
            what: "umount".into(),
            target: m.path.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 22 8:1 /b/rootfs /b/rootfs rw,relatime - ext4 /dev/sda1 rw
41 40 0:50 / /b/rootfs/proc rw,nosuid - proc proc rw
42 22 0:51 / /b/rootfs2 rw - tmpfs tmpfs rw
43 40 0:52 / /b/rootfs/with\\040space rw - tmpfs tmpfs rw
";

    fn m(id: u64, path: &str) -> HostMount {
        HostMount { id, path: PathBuf::from(path) }
    }

    #[test]
    fn parse_under_keeps_dir_and_below_only() {
        let got = parse_under(INFO, Path::new("/b/rootfs"));
        assert_eq!(got, vec![m(40, "/b/rootfs"), m(41, "/b/rootfs/proc"), m(43, "/b/rootfs/with space")]);
    }

    #[test]
    fn made_between_is_the_new_mounts_in_order() {
        let before = vec![m(40, "/b/rootfs")];
        let after = vec![m(40, "/b/rootfs"), m(41, "/b/rootfs/proc"), m(44, "/b/rootfs/dev")];
        assert_eq!(made_between(&before, &after), vec![m(41, "/b/rootfs/proc"), m(44, "/b/rootfs/dev")]);
        // The same id at another path is another mount (ids are reused).
        assert_eq!(made_between(&[m(41, "/b/rootfs/sys")], &[m(41, "/b/rootfs/proc")]), vec![m(41, "/b/rootfs/proc")]);
    }

    #[test]
    fn unescape_octal_and_plain() {
        assert_eq!(unescape("/a\\040b\\134c\\011"), PathBuf::from("/a b\\c\t"));
        assert_eq!(unescape("/plain\\x"), PathBuf::from("/plain\\x"));
    }

    #[test]
    fn undo_skips_mounts_that_are_gone() {
        // Nothing in our namespace has this id and path: nothing is unmounted.
        undo(&[m(u64::MAX, "/nonexistent/rind-test")]).unwrap();
    }
}
