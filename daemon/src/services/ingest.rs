//! What a load cut short (rindd killed mid-load) leaves behind, removed at
//! start, before serving: partial blobs (`<root>/content/ingest/`),
//! half-unpacked layers (`.*.unpacking-<pid>` in a snapshot dir), archives
//! spooled by an older rindd (`<root>/ingest/`), and the blobs and snapshots
//! no image or container uses. (A load that fails while rindd runs is
//! cleaned by the garbage collection that follows every load.)

use std::path::Path;

use crate::content::ContentStore;
use crate::services::images::{self, Collected, ImageError};
use crate::store::Store;

/// Where an older rindd spooled the archives it received.
pub fn spool_dir(root: &Path) -> std::path::PathBuf {
    root.join("ingest")
}

/// What a cleaning removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Spooled archives, blob temp files and half-unpacked layers.
    pub partial: usize,
    pub collected: Collected,
}

/// At start, before serving: no load runs, so everything in the ingest
/// areas is a leftover of a rindd that died mid-load.
pub fn clean_at_start(root: &Path, content: &ContentStore, store: &Store) -> Result<Cleaned, ImageError> {
    let mut partial = 0;
    for dir in [spool_dir(root), root.join("content").join("ingest")] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            remove(&e.path())?;
            partial += 1;
        }
    }
    for snap in std::fs::read_dir(root.join("snapshots")).into_iter().flatten().flatten() {
        for e in std::fs::read_dir(snap.path()).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().contains(".unpacking-") {
                remove(&e.path())?;
                partial += 1;
            }
        }
    }
    let collected = images::collect_garbage(root, content, store)?;
    Ok(Cleaned { partial, collected })
}

fn remove(p: &Path) -> Result<(), ImageError> {
    let r = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ImageError::Io { op: "remove", path: p.to_path_buf(), source: e }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Digest;
    use crate::store::ImageRow;

    fn fixture() -> (tempfile::TempDir, ContentStore, Store) {
        let t = tempfile::tempdir().unwrap();
        let content = ContentStore::open(&t.path().join("content")).unwrap();
        let store = Store::open(&t.path().join("meta.db")).unwrap();
        (t, content, store)
    }

    fn count(p: &Path) -> usize {
        std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0)
    }

    #[test]
    fn clean_at_start_removes_what_a_dead_load_left_and_keeps_images() {
        let (t, content, mut store) = fixture();
        let root = t.path();
        // An image in use: its config and layer blobs, its snapshot.
        let layer = content.write(None, &b"layer"[..]).unwrap();
        let diff = Digest::of(b"diff");
        let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff.as_str()]}});
        let config = content.write(None, config.to_string().as_bytes()).unwrap();
        store
            .put_image(&ImageRow {
                name: "kept:1".into(),
                config: config.to_string(),
                layers: vec![layer.to_string()],
                created: "t".into(),
            })
            .unwrap();
        std::fs::create_dir_all(root.join("snapshots").join(diff.hex()).join("fs")).unwrap();
        // What a rindd killed mid-load leaves.
        std::fs::create_dir_all(spool_dir(root)).unwrap();
        std::fs::write(spool_dir(root).join("load-1-0"), b"half an archive").unwrap();
        std::fs::write(root.join("content/ingest/1-3"), b"half a blob").unwrap();
        let orphan = content.write(None, &b"orphan blob"[..]).unwrap();
        let other = root.join("snapshots").join(Digest::of(b"other").hex());
        std::fs::create_dir_all(other.join(".fs.unpacking-1/bin")).unwrap();
        std::fs::create_dir_all(root.join("snapshots").join(Digest::of(b"empty").hex())).unwrap();

        let cleaned = clean_at_start(root, &content, &store).unwrap();
        assert_eq!(cleaned.partial, 3, "{cleaned:?}");
        assert_eq!(cleaned.collected, Collected { blobs: 1, snapshots: 2 });
        assert_eq!((count(&spool_dir(root)), count(&root.join("content/ingest"))), (0, 0));
        assert!(!content.has(&orphan));
        assert!(content.has(&layer) && content.has(&config), "the image keeps its blobs");
        assert_eq!(count(&root.join("snapshots")), 1, "only the image's snapshot is left");
        assert_eq!(clean_at_start(root, &content, &store).unwrap(), Cleaned::default(), "nothing more the second time");
    }
}
