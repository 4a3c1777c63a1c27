//! Content-addressed blobs: `<root>/blobs/sha256/<hex>`, verified on write.
//! A blob is streamed to `<root>/ingest/` while hashed and renamed into
//! place only when its digest matches, so a reader never sees a partial blob.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("invalid digest {0:?}: want sha256:<64 hex digits>")]
    InvalidDigest(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: String, actual: String },
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("{op} {path}: {source}")]
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
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContentError + 'a {
    move |source| ContentError::Io { op, path: path.to_path_buf(), source }
}

impl ContentStore {
    pub fn open(root: &Path) -> Result<ContentStore, ContentError> {
        for d in [root.join("blobs/sha256"), root.join("ingest")] {
            fs::create_dir_all(&d).map_err(io_err("create", &d))?;
        }
        Ok(ContentStore { root: root.to_path_buf() })
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Streams `data` in; with `expected`, refuses a blob that does not match it.
    pub fn write(&self, expected: Option<&Digest>, mut data: impl Read) -> Result<Digest, ContentError> {
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
            fs::rename(&tmp, &dest).map_err(io_err("commit blob", &dest))?;
            Ok(actual)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
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
        let e = cs.write(Some(&wrong), &b"hello!"[..]).unwrap_err();
        assert!(matches!(e, ContentError::Mismatch { .. }), "{e}");
        assert!(!cs.has(&wrong));
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0, "ingest left a temp file");
        cs.delete(&d).unwrap();
        assert!(matches!(cs.read(&d), Err(ContentError::NotFound(_))));
    }
}
