//! Resolve a path inside a root directory the way the container will see it:
//! symlinks are followed relative to the root and `..` stops at the root, so a
//! hostile rootfs (`proc -> /`, `etc -> ../../..`) cannot point a mount at the host.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

const MAX_SYMLINKS: usize = 255;

pub fn secure_join(root: &Path, unsafe_path: &Path) -> io::Result<PathBuf> {
    // Components still to walk, last first.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, unsafe_path);
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.iter().fold(root.to_path_buf(), |p, c| p.join(c)).join(&c);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other(format!("too many symlinks resolving {}", unsafe_path.display())));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                push_components(&mut pending, &target);
            }
            Ok(_) => resolved.push(c),
            // What does not exist yet is taken literally; the caller creates it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => resolved.push(c),
            Err(e) => return Err(e),
        }
    }
    Ok(resolved.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

fn push_components(pending: &mut Vec<OsString>, p: &Path) {
    let comps: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    pending.extend(comps.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn secure_join_plain_and_dotdot() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        assert_eq!(secure_join(r, Path::new("/a/b")).unwrap(), r.join("a/b"));
        assert_eq!(secure_join(r, Path::new("/../../etc")).unwrap(), r.join("etc"));
    }

    #[test]
    fn secure_join_hostile_symlinks_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        symlink("/", r.join("proc")).unwrap();
        symlink("../../../../etc", r.join("up")).unwrap();
        fs::create_dir(r.join("d")).unwrap();
        symlink("../d", r.join("d/self")).unwrap();
        assert_eq!(secure_join(r, Path::new("/proc")).unwrap(), r.to_path_buf());
        assert_eq!(secure_join(r, Path::new("/proc/sys")).unwrap(), r.join("sys"));
        assert_eq!(secure_join(r, Path::new("/up/passwd")).unwrap(), r.join("etc/passwd"));
        assert_eq!(secure_join(r, Path::new("/d/self/self/x")).unwrap(), r.join("d/x"));
    }

    #[test]
    fn secure_join_symlink_loop_fails() {
        let t = tempfile::tempdir().unwrap();
        symlink("b", t.path().join("a")).unwrap();
        symlink("a", t.path().join("b")).unwrap();
        assert!(secure_join(t.path(), Path::new("/a")).is_err());
    }
}
