//! Read-only layer snapshots, one directory per layer chain, shared by every
//! image that has the same layers below it:
//!
//! ```text
//! <root>/snapshots/<chain-id hex>/fs     an unpacked layer (an overlay lowerdir)
//! ```
//! The chain id is the OCI one: chain(L1) = diff_id(L1),
//! chain(Ln) = sha256(chain(Ln-1) + " " + diff_id(Ln)).

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::content::Digest;
use crate::images::unpack::{unpack_layer, Stats, UnpackError};

pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => {
                Digest::parse(&format!("sha256:{:x}", Sha256::digest(format!("{prev} {d}").as_bytes()))).expect("sha256 hex is a digest")
            }
        };
        out.push(next);
    }
    out
}

pub struct Snapshots {
    root: PathBuf,
}

impl Snapshots {
    pub fn new(root: &Path) -> Snapshots {
        Snapshots { root: root.join("snapshots") }
    }

    pub fn dir(&self, chain: &Digest) -> PathBuf {
        self.root.join(chain.hex()).join("fs")
    }

    /// Unpacks `blob` as the snapshot for `chain`, unless it is there already.
    /// Returns None when it was already there.
    pub fn ensure(&self, chain: &Digest, blob: &Path) -> Result<Option<Stats>, UnpackError> {
        let dir = self.dir(chain);
        if dir.is_dir() {
            return Ok(None);
        }
        let parent = dir.parent().expect("fs has a parent");
        std::fs::create_dir_all(parent).map_err(|source| UnpackError::Io { op: "create", path: parent.to_path_buf(), source })?;
        unpack_layer(blob, &dir).map(Some)
    }

    /// overlayfs options for a container over `chains` (bottom first).
    pub fn overlay_options(&self, chains: &[Digest], upper: &Path, work: &Path) -> String {
        let lower: Vec<String> = chains.iter().rev().map(|c| self.dir(c).display().to_string()).collect();
        format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        let want = format!("sha256:{:x}", Sha256::digest(format!("{a} {b}").as_bytes()));
        assert_eq!(ids[1].as_str(), want);
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn overlay_options_put_the_top_layer_first() {
        let s = Snapshots::new(Path::new("/var/lib/rind"));
        let ids = chain_ids(&[Digest::of(b"a"), Digest::of(b"b")]);
        let o = s.overlay_options(&ids, Path::new("/c/upper"), Path::new("/c/work"));
        let lower = o.strip_prefix("lowerdir=").unwrap().split(',').next().unwrap();
        let dirs: Vec<&str> = lower.split(':').collect();
        assert!(dirs[0].contains(ids[1].hex()) && dirs[1].contains(ids[0].hex()), "{o}");
        assert!(o.ends_with("upperdir=/c/upper,workdir=/c/work"));
    }
}
