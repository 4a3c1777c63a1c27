//! A scratch directory per input, and the check that the code under test
//! wrote nothing outside it.
//!
//! The directory the code may write is two levels below the sandbox's own
//! temporary directory, so an escape through `..` lands in the sandbox,
//! where [`Sandbox::assert_contained`] sees it. An escape by absolute path
//! lands anywhere: scripts/fuzz.sh runs the targets with every mount
//! read-only but a private tmpfs TMPDIR (RIND_FUZZ_JAIL=1), where the check
//! then looks too.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Sandbox {
    dir: Option<tempfile::TempDir>,
    /// Where the code under test may write.
    pub work: PathBuf,
    /// The modes of the sandbox's directories above `work`, and of TMPDIR.
    modes: Vec<(PathBuf, u32)>,
    /// What TMPDIR held before (in the jail: nothing).
    tmp_before: BTreeSet<PathBuf>,
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).map(|m| m.permissions().mode()).unwrap_or(0)
}

fn jailed() -> bool {
    std::env::var_os("RIND_FUZZ_JAIL").is_some()
}

fn listing(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let tmp_before = if jailed() { listing(&std::env::temp_dir()) } else { BTreeSet::new() };
        let dir = tempfile::Builder::new().prefix("rind-fuzz-").tempdir().expect("make the sandbox");
        let work = dir.path().join("a/b/work");
        fs::create_dir_all(&work).expect("make the sandbox's work dir");
        let modes = [std::env::temp_dir(), dir.path().to_path_buf(), dir.path().join("a"), dir.path().join("a/b")]
            .into_iter()
            .map(|p| {
                let m = mode(&p);
                (p, m)
            })
            .collect();
        Sandbox { dir: Some(dir), work, modes, tmp_before }
    }

    pub fn root(&self) -> &Path {
        self.dir.as_ref().expect("the sandbox is there until dropped").path()
    }

    /// Panics if anything outside `work` was made, removed or changed mode.
    pub fn assert_contained(&self) {
        let root = self.root();
        let mut found = Vec::new();
        walk(root, &self.work, &mut found);
        let expected = [root.join("a"), root.join("a/b")];
        let outside: Vec<_> = found.iter().filter(|p| !expected.contains(p)).collect();
        assert!(outside.is_empty(), "written outside {}: {outside:?}", self.work.display());
        assert!(self.work.is_dir() && !self.work.is_symlink(), "the work dir was replaced");
        for (p, m) in &self.modes {
            assert_eq!(mode(p), *m, "mode of {} changed", p.display());
        }
        if jailed() {
            let mut now = listing(&std::env::temp_dir());
            now.remove(root);
            let new: Vec<_> = now.difference(&self.tmp_before).collect();
            assert!(new.is_empty(), "written outside the sandbox, in TMPDIR: {new:?}");
        }
    }
}

/// Every path under `dir` but those under `skip` (symlinks not followed).
fn walk(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        out.push(p.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, skip, out);
        }
    }
}

/// Makes every directory under `dir` writable, so it can be removed whatever
/// modes a layer gave them.
fn open_up(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            open_up(&e.path());
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let path = dir.path().to_path_buf();
        if dir.close().is_err() {
            open_up(&path);
            // A sandbox left behind would make the next input's TMPDIR check fail.
            if let Err(e) = fs::remove_dir_all(&path) {
                if !std::thread::panicking() {
                    panic!("remove the sandbox {}: {e}", path.display());
                }
            }
        }
    }
}

/// Every path under `dir`, relative, symlinks not followed, sorted.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, Path::new(""), &mut out);
    let mut rel: Vec<PathBuf> = out.into_iter().filter_map(|p| p.strip_prefix(dir).ok().map(Path::to_path_buf)).collect();
    rel.sort();
    rel
}

/// A tar of `(path, data)` regular files, paths written raw (the builder's
/// own checks would refuse some of the names a harness wants).
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1);
        h.set_uid(0);
        h.set_gid(0);
        let name = &mut h.as_old_mut().name;
        let n = p.len().min(name.len());
        name[..n].copy_from_slice(&p.as_bytes()[..n]);
        h.set_cksum();
        b.append(&h, *data).expect("append to an in-memory tar");
    }
    b.into_inner().expect("finish an in-memory tar")
}
