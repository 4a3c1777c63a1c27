//! Images: `load` imports an archive into the content store, unpacks each
//! layer once into the shared snapshots, and records the image by name.

use std::io::Read;
use std::path::Path;

use oci_spec::image::ImageConfiguration;

use crate::content::{ContentError, ContentStore, Digest};
use crate::images::archive::{self, ArchiveError};
use crate::images::unpack::UnpackError;
use crate::snapshots::{chain_ids, Snapshots};
use crate::store::{ImageRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("image config {digest}: {reason}")]
    Config { digest: String, reason: String },
    #[error("{op} {path}: {source}")]
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
    let cfg: ImageConfiguration = serde_json::from_slice(&content.read(config)?)
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

/// Removes the blobs and layer snapshots no image and no container uses.
/// Runs under the store lock, so no load is half-way meanwhile.
pub fn collect_garbage(root: &Path, content: &ContentStore, store: &Store) -> Result<Collected, ImageError> {
    let mut blobs = std::collections::HashSet::new();
    let mut chains = std::collections::HashSet::new();
    for img in store.images()? {
        let config = Digest::parse(&img.config).map_err(|e| ImageError::Config { digest: img.config.clone(), reason: e.to_string() })?;
        chains.extend(chain_ids(&diff_ids(content, &config)?).into_iter().map(|c| c.hex().to_string()));
        blobs.insert(config.hex().to_string());
        blobs.extend(img.layers.iter().map(|l| l.trim_start_matches("sha256:").to_string()));
    }
    for c in store.containers()? {
        // A container keeps its layers even when its image was removed (rmi --force).
        let cfg: serde_json::Value = serde_json::from_str(&c.config).unwrap_or_default();
        for ch in cfg["chain"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
            chains.insert(ch.trim_start_matches("sha256:").to_string());
        }
    }
    let mut gone = Collected::default();
    for d in content.list() {
        if !blobs.contains(d.hex()) {
            content.delete(&d)?;
            gone.blobs += 1;
        }
    }
    let snaps = root.join("snapshots");
    for e in std::fs::read_dir(&snaps).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !chains.contains(&name) {
            std::fs::remove_dir_all(e.path()).map_err(|source| ImageError::Io { op: "remove", path: e.path(), source })?;
            gone.snapshots += 1;
        }
    }
    Ok(gone)
}

pub fn load(root: &Path, content: &ContentStore, store: &mut Store, archive_data: impl Read) -> Result<Vec<Loaded>, ImageError> {
    let snapshots = Snapshots::new(root);
    let mut out = Vec::new();
    for img in archive::import(content, archive_data)? {
        let diffs = diff_ids(content, &img.config)?;
        if diffs.len() != img.layers.len() {
            return Err(ImageError::Config {
                digest: img.config.to_string(),
                reason: format!("{} diff_ids for {} layers", diffs.len(), img.layers.len()),
            });
        }
        let mut unpacked = 0;
        for (chain, blob) in chain_ids(&diffs).iter().zip(&img.layers) {
            if snapshots.ensure(chain, &content.path(blob))?.is_some() {
                unpacked += 1;
            }
        }
        let created = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        for name in &img.names {
            store.put_image(&ImageRow {
                name: name.clone(),
                config: img.config.to_string(),
                layers: img.layers.iter().map(|l| l.to_string()).collect(),
                created: created.clone(),
            })?;
        }
        out.push(Loaded { names: img.names, config: img.config, unpacked });
    }
    Ok(out)
}
