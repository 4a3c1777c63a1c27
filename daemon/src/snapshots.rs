//! Read-only layer snapshots, one per layer chain, shared by every image
//! that has the same layers below it. Layout, version 2:
//!
//! ```text
//! <root>/snapshots/
//!   <n>/fs                   an unpacked layer (an overlay lowerdir); n is a short number
//!   by-chain/<chain-id hex>  symlink to ../<n>, made only once the layer's uncompressed
//!                            digest matched its diff_id: the only way a snapshot is shared
//!   <chain-id hex>/fs        version 1 (never verified): kept while a container or image
//!                            names the chain, never shared with a new container
//! ```
//! The chain id is the OCI one: chain(L1) = diff_id(L1),
//! chain(Ln) = sha256(chain(Ln-1) + " " + diff_id(Ln)).
//! Short numbers keep the lowerdir option of a deep image within overlayfs's
//! one page of mount data: the shim mounts with lowerdirs relative to this
//! directory (`<n>/fs`) when the absolute ones would not fit, as containerd
//! does (`shim/src/rootfs.rs`).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::content::{Digest, Held, Lease};
use crate::images::unpack::{unpack_layer, Stats, UnpackError};

const BY_CHAIN: &str = "by-chain";

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

/// The snapshot number `name` stands for, if it is one (digits, no leading zero).
fn number(name: &str) -> Option<u64> {
    name.parse::<u64>().ok().filter(|n| n.to_string() == name && *n > 0)
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Io { op, path: path.to_path_buf(), source }
}

/// Links `link` (in by-chain/) to snapshot `n`. The garbage collector
/// removes an empty by-chain/: it is made again if it went in between.
fn link_to(n: u64, link: &Path) -> io::Result<()> {
    let target = format!("../{n}");
    for _ in 0..3 {
        if let Some(dir) = link.parent() {
            fs::create_dir_all(dir)?;
        }
        match std::os::unix::fs::symlink(&target, link) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            done => return done,
        }
    }
    std::os::unix::fs::symlink(&target, link)
}

pub struct Snapshots {
    root: PathBuf,
}

impl Snapshots {
    pub fn new(root: &Path) -> Snapshots {
        Snapshots { root: root.join("snapshots") }
    }

    fn link(&self, chain: &Digest) -> PathBuf {
        self.root.join(BY_CHAIN).join(chain.hex())
    }

    /// The verified snapshot of `chain`, through its link (it may not exist).
    pub fn dir(&self, chain: &Digest) -> PathBuf {
        self.link(chain).join("fs")
    }

    /// The number of the verified snapshot of `chain`, if it is complete.
    pub fn resolve(&self, chain: &Digest) -> Option<u64> {
        let target = fs::read_link(self.link(chain)).ok()?;
        let n = number(target.strip_prefix("..").ok()?.to_str()?)?;
        self.root.join(n.to_string()).join("fs").is_dir().then_some(n)
    }

    /// The absolute lowerdir of `chain`: the verified snapshot; a version-1
    /// one for a container made before it; else the link, for the mount to
    /// fail on with its name.
    fn lowerdir(&self, chain: &Digest) -> PathBuf {
        if let Some(n) = self.resolve(chain) {
            return self.root.join(n.to_string()).join("fs");
        }
        let legacy = self.root.join(chain.hex()).join("fs");
        if legacy.is_dir() {
            return legacy;
        }
        self.dir(chain)
    }

    /// Unpacks `blob` as the snapshot of `chain` unless a verified one is
    /// there already; the layer must have the digest `diff_id` and at most
    /// `max_size` bytes uncompressed. None when it was there already.
    pub fn ensure(
        &self,
        lease: &Lease<'_>,
        chain: &Digest,
        blob: &Path,
        diff_id: &Digest,
        max_size: u64,
    ) -> Result<Option<Stats>, UnpackError> {
        lease.chain(chain);
        if self.resolve(chain).is_some() {
            return Ok(None);
        }
        let link = self.link(chain);
        if fs::symlink_metadata(&link).is_ok() {
            // A link to a snapshot that is not there (whatever removed it).
            fs::remove_file(&link).map_err(io_err("remove", &link))?;
        }
        let n = self.claim(lease)?;
        let dir = self.root.join(n.to_string());
        let made = unpack_layer(blob, &dir.join("fs"), diff_id, max_size).and_then(|stats| {
            match link_to(n, &link) {
                Ok(()) => Ok(Some(stats)),
                // Another load verified the same layer first: share its snapshot.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let _ = fs::remove_dir_all(&dir);
                    Ok(None)
                }
                Err(e) => Err(io_err("link", &link)(e)),
            }
        });
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        // The chain's link (under the lease's chain) holds it from now on.
        lease.drop_snapshot(&n.to_string());
        made
    }

    /// Makes the lowest free `<n>`, under `lease` before it exists.
    fn claim(&self, lease: &Lease<'_>) -> Result<u64, UnpackError> {
        fs::create_dir_all(&self.root).map_err(io_err("create", &self.root))?;
        let used: HashSet<u64> = fs::read_dir(&self.root)
            .map_err(io_err("read", &self.root))?
            .flatten()
            .filter_map(|e| number(e.file_name().to_str()?))
            .collect();
        let mut n = 0;
        loop {
            n += 1;
            if used.contains(&n) {
                continue;
            }
            let name = n.to_string();
            lease.snapshot(&name);
            let dir = self.root.join(&name);
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(n),
                Err(e) => {
                    lease.drop_snapshot(&name);
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(io_err("create", &dir)(e));
                    }
                }
            }
        }
    }

    /// overlayfs options for a container over `chains` (bottom first).
    pub fn overlay_options(&self, chains: &[Digest], upper: &Path, work: &Path) -> String {
        let lower: Vec<String> = chains.iter().rev().map(|c| self.lowerdir(c).display().to_string()).collect();
        format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display())
    }

    /// Removes every snapshot but those of `keep` (chain id hex) and what
    /// `held` holds: links first, so no link ever leads to a half-removed
    /// snapshot. Returns how many snapshot directories went.
    pub fn sweep(&self, keep: &HashSet<String>, held: &Held) -> Result<usize, UnpackError> {
        let mut kept: HashSet<String> = held.snapshots.clone();
        let links = self.root.join(BY_CHAIN);
        for e in fs::read_dir(&links).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) || held.chains.contains(&name) {
                if let Some(n) = fs::read_link(e.path()).ok().and_then(|t| Some(t.strip_prefix("..").ok()?.to_str()?.to_string())) {
                    kept.insert(n);
                }
            } else {
                fs::remove_file(e.path()).map_err(io_err("remove", &e.path()))?;
            }
        }
        // Empty, it goes too: a refused load leaves no trace.
        let _ = fs::remove_dir(&links);
        let mut gone = 0;
        for e in fs::read_dir(&self.root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let keep_it = if name == BY_CHAIN {
                true
            } else if number(&name).is_some() {
                kept.contains(&name)
            } else {
                // Version 1, named by chain id; anything else is debris.
                keep.contains(&name) || held.chains.contains(&name)
            };
            if !keep_it {
                fs::remove_dir_all(e.path()).map_err(io_err("remove", &e.path()))?;
                gone += 1;
            }
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ContentStore;

    fn layer(file: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, file, &b"x"[..]).unwrap();
        b.into_inner().unwrap()
    }

    struct Fixture {
        t: tempfile::TempDir,
        cs: ContentStore,
        snaps: Snapshots,
    }

    fn fixture() -> Fixture {
        let t = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(&t.path().join("content")).unwrap();
        let snaps = Snapshots::new(t.path());
        fs::create_dir_all(t.path().join("snapshots")).unwrap();
        Fixture { t, cs, snaps }
    }

    impl Fixture {
        /// Writes a layer blob; returns it with its diff_id.
        fn blob(&self, data: &[u8]) -> (PathBuf, Digest) {
            let d = self.cs.write(None, data).unwrap();
            (self.cs.path(&d), d)
        }

        fn entries(&self) -> Vec<String> {
            let mut v: Vec<String> =
                fs::read_dir(self.t.path().join("snapshots")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
            v.sort();
            v
        }
    }

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
    fn numbers_are_canonical() {
        assert_eq!(number("12"), Some(12));
        for bad in ["0", "012", "-1", "by-chain", &"a".repeat(64)] {
            assert_eq!(number(bad), None, "{bad}");
        }
    }

    #[test]
    fn ensure_shares_a_verified_snapshot_under_a_short_number() {
        let f = fixture();
        let (a, da) = f.blob(&layer("a"));
        let (b, db) = f.blob(&layer("b"));
        let chains = chain_ids(&[da.clone(), db.clone()]);
        let lease = f.cs.lease();
        assert!(f.snaps.ensure(&lease, &chains[0], &a, &da, u64::MAX).unwrap().is_some());
        assert!(f.snaps.ensure(&lease, &chains[1], &b, &db, u64::MAX).unwrap().is_some());
        assert!(f.snaps.ensure(&lease, &chains[0], &a, &da, u64::MAX).unwrap().is_none(), "shared");
        assert!(f.snaps.dir(&chains[1]).join("b").is_file());
        let o = f.snaps.overlay_options(&chains, Path::new("/c/upper"), Path::new("/c/work"));
        let root = f.t.path().join("snapshots");
        assert_eq!(o, format!("lowerdir={}/2/fs:{}/1/fs,upperdir=/c/upper,workdir=/c/work", root.display(), root.display()));
    }

    #[test]
    fn a_layer_that_is_not_its_diff_id_leaves_no_snapshot() {
        let f = fixture();
        let (evil, _) = f.blob(&layer("POISONED"));
        let claimed = Digest::of(b"the real layer");
        let e = f.snaps.ensure(&f.cs.lease(), &claimed, &evil, &claimed, u64::MAX).unwrap_err();
        assert!(matches!(e, UnpackError::DiffIdMismatch { .. }), "{e}");
        assert_eq!(f.entries(), Vec::<String>::new());
        assert!(!f.snaps.dir(&claimed).exists());
        // The real layer, later, is unpacked, not taken from the refused one.
        let real = layer("real");
        let (blob, d) = f.blob(&real);
        assert!(f.snaps.ensure(&f.cs.lease(), &d, &blob, &d, u64::MAX).unwrap().is_some());
    }

    #[test]
    fn sweep_keeps_what_is_named_or_leased_and_removes_the_rest() {
        let f = fixture();
        let (a, da) = f.blob(&layer("a"));
        let (b, db) = f.blob(&layer("b"));
        let lease = f.cs.lease();
        f.snaps.ensure(&lease, &da, &a, &da, u64::MAX).unwrap();
        f.snaps.ensure(&lease, &db, &b, &db, u64::MAX).unwrap();
        let legacy = f.t.path().join("snapshots").join(Digest::of(b"old").hex()).join("fs");
        fs::create_dir_all(&legacy).unwrap();
        fs::create_dir_all(f.t.path().join("snapshots/9")).unwrap();
        // Leased: b's chain, and a snapshot being made.
        let held =
            Held { chains: HashSet::from([db.hex().to_string()]), snapshots: HashSet::from(["9".to_string()]), ..Default::default() };
        let keep = HashSet::from([da.hex().to_string(), Digest::of(b"old").hex().to_string()]);
        assert_eq!(f.snaps.sweep(&keep, &held).unwrap(), 0);
        assert!(f.snaps.dir(&da).is_dir() && f.snaps.dir(&db).is_dir() && legacy.is_dir());
        assert_eq!(f.snaps.sweep(&HashSet::new(), &Held::default()).unwrap(), 4);
        assert_eq!(f.entries(), Vec::<String>::new(), "not even an empty by-chain/");
    }

    #[test]
    fn overlay_options_fall_back_to_a_version_1_snapshot() {
        let f = fixture();
        let c = Digest::of(b"c");
        let legacy = f.t.path().join("snapshots").join(c.hex()).join("fs");
        fs::create_dir_all(&legacy).unwrap();
        let o = f.snaps.overlay_options(std::slice::from_ref(&c), Path::new("/u"), Path::new("/w"));
        assert_eq!(o, format!("lowerdir={},upperdir=/u,workdir=/w", legacy.display()));
        assert!(!f.snaps.dir(&c).exists(), "never shared with a new container");
    }
}
