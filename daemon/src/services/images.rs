//! Images: `load` imports an archive into the content store, unpacks each
//! layer once into the shared snapshots (verified against its diff_id), and
//! records the image by name. No daemon-wide lock is held while it reads or
//! unpacks: what it writes is under a lease until the image row, written in
//! one short transaction, references it; the garbage collector keeps leased
//! content and takes the store's lock only to read the rows.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use oci_spec::image::ImageConfiguration;

use crate::content::{ContentError, ContentStore, Digest};
use crate::images::archive::{self, ArchiveError};
use crate::images::unpack::UnpackError;
use crate::images::Limits;
use crate::snapshots::{chain_ids, Snapshots};
use crate::store::{ContainerRow, ImageRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    /// A layer refused or failed while it was unpacked: which one.
    #[error("layer {index} of {count} of image {image} ({blob})")]
    Layer {
        index: usize,
        count: usize,
        image: String,
        blob: Digest,
        #[source]
        source: UnpackError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image config {digest}: {reason}")]
    Config { digest: String, reason: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub names: Vec<String>,
    pub config: Digest,
    /// Layers unpacked now (the others were shared with images already here).
    pub unpacked: usize,
}

/// The image's diff ids (digests of the uncompressed layers), from its config.
pub fn diff_ids(content: &ContentStore, config: &Digest) -> Result<Vec<Digest>, ImageError> {
    let cfg: ImageConfiguration = serde_json::from_slice(&content.read_max(config, "image config", Limits::MAX_JSON_SIZE)?)
        .map_err(|e| ImageError::Config { digest: config.to_string(), reason: e.to_string() })?;
    cfg.rootfs()
        .diff_ids()
        .iter()
        .map(|d| Digest::parse(d).map_err(|e| ImageError::Config { digest: config.to_string(), reason: e.to_string() }))
        .collect()
}

/// What a garbage collection removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub blobs: usize,
    pub snapshots: usize,
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    // A panic while it was held aborted rindd (panic = "abort"), and the rows
    // are SQLite's, consistent whatever happened to the guard.
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes the blobs and layer snapshots no image, no container and no
/// load in progress (its lease) uses, with the store's lock held throughout
/// by the caller (at start, before serving).
pub fn collect_garbage(root: &Path, content: &ContentStore, store: &Store) -> Result<Collected, ImageError> {
    collect(root, content, || Ok((store.images()?, store.containers()?)))
}

/// [`collect_garbage`], taking the store's lock only to read the rows: the
/// removal (of unbounded length) holds no daemon-wide lock.
pub fn collect_garbage_unlocked(root: &Path, content: &ContentStore, store: &Mutex<Store>) -> Result<Collected, ImageError> {
    collect(root, content, || {
        let store = lock(store);
        Ok((store.images()?, store.containers()?))
    })
}

type Rows = (Vec<ImageRow>, Vec<ContainerRow>);

fn collect(root: &Path, content: &ContentStore, rows: impl FnOnce() -> Result<Rows, StoreError>) -> Result<Collected, ImageError> {
    // Begun before the rows are read: a load that records its image after
    // that still has its lease counted in the sweep.
    let collecting = content.collecting();
    let (images, containers) = rows()?;
    let mut blobs = HashSet::new();
    let mut chains = HashSet::new();
    for img in images {
        let config = Digest::parse(&img.config).map_err(|e| ImageError::Config { digest: img.config.clone(), reason: e.to_string() })?;
        chains.extend(chain_ids(&diff_ids(content, &config)?).into_iter().map(|c| c.hex().to_string()));
        blobs.insert(config.hex().to_string());
        blobs.extend(img.layers.iter().map(|l| l.trim_start_matches("sha256:").to_string()));
    }
    for c in containers {
        // A container keeps its layers even when its image was removed (rmi --force).
        let cfg: serde_json::Value = serde_json::from_str(&c.config).unwrap_or_default();
        for ch in cfg["chain"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
            chains.insert(ch.trim_start_matches("sha256:").to_string());
        }
    }
    let sweep = collecting.sweep();
    let held = sweep.held();
    blobs.extend(held.blobs.iter().cloned());
    let mut gone = Collected::default();
    for d in content.list() {
        if !blobs.contains(d.hex()) {
            content.delete(&d)?;
            gone.blobs += 1;
        }
    }
    gone.snapshots = Snapshots::new(root).sweep(&chains, &held)?;
    Ok(gone)
}

/// Imports `archive_data`, unpacks and verifies every layer, and records
/// each image. A refused or failed load leaves its content to the garbage
/// collector (its lease ends with it).
pub fn load(
    root: &Path,
    content: &ContentStore,
    store: &Mutex<Store>,
    archive_data: impl Read,
    limits: &Limits,
) -> Result<Vec<Loaded>, ImageError> {
    let lease = content.lease();
    let snapshots = Snapshots::new(root);
    let mut out = Vec::new();
    for img in archive::import(content, &lease, archive_data, limits)? {
        let diffs = diff_ids(content, &img.config)?;
        if diffs.len() != img.layers.len() {
            return Err(ImageError::Config {
                digest: img.config.to_string(),
                reason: format!("{} diff_ids for {} layers", diffs.len(), img.layers.len()),
            });
        }
        let image = img.names.first().cloned().unwrap_or_else(|| img.config.to_string());
        let mut unpacked = 0;
        for (i, ((chain, blob), diff)) in chain_ids(&diffs).iter().zip(&img.layers).zip(&diffs).enumerate() {
            let made = snapshots.ensure(&lease, chain, &content.path(blob), diff, limits.max_layer_size).map_err(|source| {
                ImageError::Layer { index: i + 1, count: diffs.len(), image: image.clone(), blob: blob.clone(), source }
            })?;
            if made.is_some() {
                unpacked += 1;
            }
        }
        let created = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        let mut store = lock(store);
        for name in &img.names {
            store.put_image(&ImageRow {
                name: name.clone(),
                config: img.config.to_string(),
                layers: img.layers.iter().map(|l| l.to_string()).collect(),
                created: created.clone(),
            })?;
        }
        drop(store);
        out.push(Loaded { names: img.names, config: img.config, unpacked });
    }
    Ok(out)
}
