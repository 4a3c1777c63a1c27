//! Content-addressed blobs: `<root>/blobs/sha256/<hex>`, verified on write.
//! A blob is streamed to `<root>/ingest/` while hashed and renamed into
//! place only when its digest matches, so a reader never sees a partial blob.
//! Leases keep what a load has written, and the snapshots it is making, from
//! the garbage collector until the image that references them is recorded.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("invalid digest {0:?}: want sha256:<64 hex digits>")]
    InvalidDigest(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: String, actual: String },
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("{what} {digest} is larger than {limit} bytes")]
    TooLarge { what: &'static str, digest: String, limit: u64 },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A validated "sha256:<hex>" digest; the hex is safe as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, ContentError> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| ContentError::InvalidDigest(s.into()))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ContentError::InvalidDigest(s.into()));
        }
        Ok(Digest(s.to_string()))
    }

    pub fn of(data: &[u8]) -> Digest {
        Digest(format!("sha256:{:x}", Sha256::digest(data)))
    }

    /// The digest of what `hash` was fed.
    pub fn of_hash(hash: Sha256) -> Digest {
        Digest(format!("sha256:{:x}", hash.finalize()))
    }

    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct ContentStore {
    root: PathBuf,
    leases: Arc<Mutex<LeaseTable>>,
}

/// What the leases hold, by name: blob and chain id hex digits, snapshot
/// directory names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Held {
    pub blobs: HashSet<String>,
    pub chains: HashSet<String>,
    pub snapshots: HashSet<String>,
}

impl Held {
    fn extend(&mut self, other: &Held) {
        self.blobs.extend(other.blobs.iter().cloned());
        self.chains.extend(other.chains.iter().cloned());
        self.snapshots.extend(other.snapshots.iter().cloned());
    }
}

#[derive(Debug, Default)]
struct LeaseTable {
    next: u64,
    held: HashMap<u64, Held>,
    /// Garbage collections between their mark and the end of their sweep.
    collecting: usize,
    /// What leases released meanwhile held: their image rows may have been
    /// written after a collection read the rows, so it keeps that too.
    released: Held,
}

/// One load's hold on what it writes, as containerd's leases: between a
/// blob's commit and the image row that references it nothing else does, and
/// the garbage collector would take it. Released on drop.
/// The lifetime ties an ordinary lease to its store; an owned one
/// ([`ContentStore::lease_owned`]) is `'static`, for a pull's tasks.
pub struct Lease<'a> {
    table: Arc<Mutex<LeaseTable>>,
    id: u64,
    _store: std::marker::PhantomData<&'a ContentStore>,
}

// Every change to the table is one insert or remove: a panic elsewhere while
// it was held leaves it consistent, so a poisoned lock is taken as it is.
fn lock(table: &Mutex<LeaseTable>) -> MutexGuard<'_, LeaseTable> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Lease<'_> {
    fn with(&self, f: impl FnOnce(&mut Held)) {
        f(lock(&self.table).held.entry(self.id).or_default())
    }

    pub fn blob(&self, d: &Digest) {
        self.with(|h| {
            h.blobs.insert(d.hex().to_string());
        })
    }

    pub fn chain(&self, chain: &Digest) {
        self.with(|h| {
            h.chains.insert(chain.hex().to_string());
        })
    }

    /// A snapshot directory being made (not yet under a chain id).
    pub fn snapshot(&self, name: &str) {
        self.with(|h| {
            h.snapshots.insert(name.to_string());
        })
    }

    pub fn drop_snapshot(&self, name: &str) {
        self.with(|h| {
            h.snapshots.remove(name);
        })
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut t = lock(&self.table);
        if let Some(h) = t.held.remove(&self.id) {
            if t.collecting > 0 {
                t.released.extend(&h);
            }
        }
    }
}

/// A garbage collection, from before it reads the rows that say what is in
/// use until it has swept: every lease alive at any moment of it is honoured.
/// No lock is held while the rows are read, so the caller may hold the
/// metadata store's lock or take it.
pub struct Collecting<'a> {
    table: &'a Mutex<LeaseTable>,
}

impl Collecting<'_> {
    /// Holds the leases still while it lives (no lease is taken or grows):
    /// what it sweeps is what none held. It borrows the collection, which
    /// takes the same lock when it ends.
    pub fn sweep(&self) -> Sweep<'_> {
        Sweep(lock(self.table))
    }
}

impl Drop for Collecting<'_> {
    fn drop(&mut self) {
        let mut t = lock(self.table);
        t.collecting -= 1;
        if t.collecting == 0 {
            t.released = Held::default();
        }
    }
}

pub struct Sweep<'a>(MutexGuard<'a, LeaseTable>);

impl Sweep<'_> {
    /// Everything every lease holds, and what leases released since the
    /// collection began.
    pub fn held(&self) -> Held {
        let mut all = self.0.released.clone();
        for h in self.0.held.values() {
            all.extend(h);
        }
        all
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContentError + 'a {
    move |source| ContentError::Io { op, path: path.to_path_buf(), source }
}

impl ContentStore {
    pub fn open(root: &Path) -> Result<ContentStore, ContentError> {
        for d in [root.join("blobs/sha256"), root.join("ingest")] {
            fs::create_dir_all(&d).map_err(io_err("create", &d))?;
        }
        Ok(ContentStore { root: root.to_path_buf(), leases: Arc::default() })
    }

    pub fn lease(&self) -> Lease<'_> {
        self.lease_owned()
    }

    /// A lease that does not borrow the store: it may move into tasks.
    pub fn lease_owned(&self) -> Lease<'static> {
        let mut t = lock(&self.leases);
        t.next += 1;
        let id = t.next;
        t.held.insert(id, Held::default());
        Lease { table: self.leases.clone(), id, _store: std::marker::PhantomData }
    }

    /// Begins a garbage collection: before it reads the rows.
    pub fn collecting(&self) -> Collecting<'_> {
        lock(&self.leases).collecting += 1;
        Collecting { table: &self.leases }
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Streams `data` in; with `expected`, refuses a blob that does not match
    /// it. Not under a lease: a garbage collection may take it at once unless
    /// a row references it.
    pub fn write(&self, expected: Option<&Digest>, data: impl Read) -> Result<Digest, ContentError> {
        self.write_blob(None, expected, data)
    }

    /// [`write`](Self::write), the blob under `lease` before it is in place.
    pub fn write_leased(&self, lease: &Lease<'_>, expected: Option<&Digest>, data: impl Read) -> Result<Digest, ContentError> {
        self.write_blob(Some(lease), expected, data)
    }

    fn write_blob(&self, lease: Option<&Lease<'_>>, expected: Option<&Digest>, mut data: impl Read) -> Result<Digest, ContentError> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = self.root.join("ingest").join(format!("{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        let result = (|| {
            let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = data.read(&mut buf).map_err(io_err("read blob for", &tmp))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                f.write_all(&buf[..n]).map_err(io_err("write", &tmp))?;
            }
            f.sync_all().map_err(io_err("sync", &tmp))?;
            let actual = Digest(format!("sha256:{:x}", h.finalize()));
            if let Some(e) = expected {
                if *e != actual {
                    return Err(ContentError::Mismatch { expected: e.to_string(), actual: actual.to_string() });
                }
            }
            let dest = self.path(&actual);
            if let Some(lease) = lease {
                lease.blob(&actual);
            }
            fs::rename(&tmp, &dest).map_err(io_err("commit blob", &dest))?;
            Ok(actual)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Where partial blobs are written before their digest is checked.
    pub fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Moves `file`, whose content the caller verified to be `d`, into the
    /// store under `lease`.
    pub fn commit_file(&self, lease: &Lease<'_>, file: &Path, d: &Digest) -> Result<(), ContentError> {
        lease.blob(d);
        let dest = self.path(d);
        fs::rename(file, &dest).map_err(io_err("commit blob", &dest))
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, ContentError> {
        let p = self.path(d);
        fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound(d.to_string())
            } else {
                io_err("read", &p)(e)
            }
        })
    }

    /// The blob, if it is at most `limit` bytes (`what` names it in the error).
    pub fn read_max(&self, d: &Digest, what: &'static str, limit: u64) -> Result<Vec<u8>, ContentError> {
        let p = self.path(d);
        let f = File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound(d.to_string())
            } else {
                io_err("open", &p)(e)
            }
        })?;
        let mut data = Vec::new();
        f.take(limit.saturating_add(1)).read_to_end(&mut data).map_err(io_err("read", &p))?;
        if data.len() as u64 > limit {
            return Err(ContentError::TooLarge { what, digest: d.to_string(), limit });
        }
        Ok(data)
    }

    /// Every blob held.
    pub fn list(&self) -> Vec<Digest> {
        let dir = self.root.join("blobs/sha256");
        fs::read_dir(&dir)
            .map(|r| r.flatten().filter_map(|e| Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())).ok()).collect())
            .unwrap_or_default()
    }

    pub fn delete(&self, d: &Digest) -> Result<(), ContentError> {
        let p = self.path(d);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("delete", &p)(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parse_rejects_paths_and_bad_hex() {
        let d = Digest::of(b"x");
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        for bad in ["sha256:../../etc/passwd", "md5:abc", "sha256:ABCDEF", &format!("sha256:{}", "g".repeat(64))] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn write_verifies_and_leaves_nothing_on_mismatch() {
        let t = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(t.path()).unwrap();
        let d = cs.write(Some(&Digest::of(b"hello")), &b"hello"[..]).unwrap();
        assert_eq!(cs.read(&d).unwrap(), b"hello");
        let wrong = Digest::of(b"other");
        let e = cs.write_leased(&cs.lease(), Some(&wrong), &b"hello!"[..]).unwrap_err();
        assert!(matches!(e, ContentError::Mismatch { .. }), "{e}");
        assert!(!cs.has(&wrong));
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0, "ingest left a temp file");
        cs.delete(&d).unwrap();
        assert!(matches!(cs.read(&d), Err(ContentError::NotFound(_))));
    }

    fn held_now(cs: &ContentStore) -> Held {
        cs.collecting().sweep().held()
    }

    #[test]
    fn leases_hold_what_they_wrote_until_dropped() {
        let t = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(t.path()).unwrap();
        let (a, b) = (cs.lease(), cs.lease());
        let d = cs.write_leased(&a, None, &b"layer"[..]).unwrap();
        a.chain(&Digest::of(b"chain"));
        b.snapshot("7");
        let held = held_now(&cs);
        assert!(held.blobs.contains(d.hex()) && held.chains.contains(Digest::of(b"chain").hex()));
        assert_eq!(held.snapshots, HashSet::from(["7".to_string()]));
        drop(a);
        b.drop_snapshot("7");
        assert_eq!(held_now(&cs), Held::default());
    }

    #[test]
    fn a_lease_released_during_a_collection_still_counts_for_it() {
        // The load's image row may be written after the collection read the
        // rows: what its lease held must survive that collection's sweep.
        let t = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(t.path()).unwrap();
        let gc = cs.collecting();
        let lease = cs.lease();
        let d = cs.write_leased(&lease, None, &b"layer"[..]).unwrap();
        drop(lease);
        assert!(gc.sweep().held().blobs.contains(d.hex()));
        drop(gc);
        assert_eq!(held_now(&cs), Held::default(), "forgotten once no collection runs");
    }

    #[test]
    fn read_max_refuses_a_blob_over_the_limit() {
        let t = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(t.path()).unwrap();
        let d = cs.write(None, &[b'x'; 100][..]).unwrap();
        assert_eq!(cs.read_max(&d, "image config", 100).unwrap().len(), 100);
        let e = cs.read_max(&d, "image config", 99).unwrap_err();
        assert_eq!(e.to_string(), format!("image config {d} is larger than 99 bytes"));
        assert!(matches!(cs.read_max(&Digest::of(b"none"), "manifest", 1), Err(ContentError::NotFound(_))));
    }
}
