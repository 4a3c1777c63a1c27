//! Images: `load` imports an archive into the content store, unpacks each
//! layer once into the shared snapshots (verified against its diff_id), and
//! records the image by name. No daemon-wide lock is held while it reads or
//! unpacks: what it writes is under a lease until the image row, written in
//! one short transaction, references it; the garbage collector keeps leased
//! content and takes the store's lock only to read the rows.
//!
//! Also the other image verbs that need no registry: `save` (an archive of
//! images, `images::save`), `history`, `prune`, and the listing `images`
//! shows, with docker's filters.
//!
//! Names are the store's key, so an image no name refers to any more (a
//! name moved to another image by a load or a tag, or an archive without
//! names) keeps a row named by its own config digest: docker's dangling
//! `<none>:<none>` image, which `image prune` removes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use oci_spec::image::ImageConfiguration;

use crate::content::{ContentError, ContentStore, Digest, Lease};
use crate::images::archive::{self, ArchiveError};
use crate::images::save::{self, SaveError};
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
    #[error(transparent)]
    Save(#[from] SaveError),
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("{reference} is the start of {count} image ids: give more of it")]
    Ambiguous { reference: String, count: usize },
    #[error("invalid filter {filter:?}: {reason}")]
    Filter { filter: String, reason: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub names: Vec<String>,
    pub config: Digest,
    /// Layers unpacked now (the others were shared with images already here).
    pub unpacked: usize,
}

fn read_config(content: &ContentStore, config: &Digest) -> Result<ImageConfiguration, ImageError> {
    serde_json::from_slice(&content.read_max(config, "image config", Limits::MAX_JSON_SIZE)?)
        .map_err(|e| ImageError::Config { digest: config.to_string(), reason: e.to_string() })
}

/// The image's diff ids (digests of the uncompressed layers), from its config.
pub fn diff_ids(content: &ContentStore, config: &Digest) -> Result<Vec<Digest>, ImageError> {
    diff_ids_of(&read_config(content, config)?, config)
}

fn diff_ids_of(cfg: &ImageConfiguration, config: &Digest) -> Result<Vec<Digest>, ImageError> {
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
        let row = |name: &str| ImageRow {
            name: name.to_string(),
            config: img.config.to_string(),
            layers: img.layers.iter().map(|l| l.to_string()).collect(),
            created: created.clone(),
        };
        let mut store = lock(store);
        if img.names.is_empty() {
            record_unnamed(&mut store, &row(img.config.as_str()))?;
        }
        for name in &img.names {
            record(&mut store, &row(name))?;
        }
        drop(store);
        // An image without names is known by its id (docker's "Loaded image ID").
        let names = if img.names.is_empty() { vec![img.config.to_string()] } else { img.names };
        out.push(Loaded { names, config: img.config, unpacked });
    }
    Ok(out)
}

/// A dangling image's row: named by its own config digest.
fn is_dangling_row(r: &ImageRow) -> bool {
    r.name == r.config
}

/// A `NAME@DIGEST` row (a pull by digest): a repo digest, not a tag.
fn is_digest_name(name: &str) -> bool {
    name.contains('@')
}

/// Records `row` under its name, with docker's semantics for the image the
/// name leaves: it stays, dangling, unless another name still refers to it
/// (docker's "renaming the old one with ID … to empty string"); and the
/// image the name now refers to is no longer dangling. The caller holds the
/// store's lock, so no other verb sees the steps apart.
pub fn record(store: &mut Store, row: &ImageRow) -> Result<(), StoreError> {
    let before = store.image(&row.name)?;
    store.put_image(row)?;
    store.delete_image(&row.config)?;
    if let Some(old) = before.filter(|o| o.config != row.config) {
        if !store.images()?.iter().any(|r| r.config == old.config) {
            store.put_image(&ImageRow { name: old.config.clone(), ..old })?;
        }
    }
    Ok(())
}

/// Removes the name `name` (a tag or a digest reference); when it was the
/// last tag of its repository on that image, the repository's digest
/// references to the image go too, as docker's rmi does. The names removed.
pub fn untag(store: &mut Store, name: &str) -> Result<Vec<String>, StoreError> {
    let Some(row) = store.image(name)? else { return Ok(Vec::new()) };
    store.delete_image(name)?;
    let mut gone = vec![name.to_string()];
    let Some((repo, _)) = split_name(name).filter(|(_, is_digest)| !is_digest) else { return Ok(gone) };
    let same_repo: Vec<(String, bool)> = store
        .images()?
        .into_iter()
        .filter(|r| r.config == row.config)
        .filter_map(|r| split_name(&r.name).filter(|(rp, _)| *rp == repo).map(|(_, d)| (r.name.clone(), d)))
        .collect();
    if same_repo.iter().all(|(_, is_digest)| *is_digest) {
        for (n, _) in same_repo {
            store.delete_image(&n)?;
            gone.push(n);
        }
    }
    Ok(gone)
}

/// A name's repository, and whether the name is a digest reference
/// (`repo@sha256:…`) rather than a tag (`repo:tag`); None for a bare id.
fn split_name(name: &str) -> Option<(&str, bool)> {
    if let Some((repo, _)) = name.split_once('@') {
        return Some((repo, true));
    }
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    name[slash..].rfind(':').map(|i| (&name[..slash + i], false)).filter(|(repo, _)| !repo.is_empty() && *repo != "sha256")
}

/// Records an image that comes without a name (an archive saved by id) as
/// dangling, unless a name already refers to it.
fn record_unnamed(store: &mut Store, row: &ImageRow) -> Result<(), StoreError> {
    if !store.images()?.iter().any(|r| r.config == row.config) {
        store.put_image(row)?;
    }
    Ok(())
}

/// What a reference names: an image (its config and layers) and the names
/// it was named by.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    config: String,
    layers: Vec<String>,
    names: Vec<String>,
}

fn parse_name(name: &str) -> Option<oci_client::Reference> {
    crate::registry::name::parse(name).ok()
}

/// `NAME` without `:TAG` or `@DIGEST` (a port is not a tag).
fn is_name_only(reference: &str) -> bool {
    !reference.contains('@') && !reference.rsplit('/').next().unwrap_or(reference).contains(':')
}

fn repository_of(r: &oci_client::Reference) -> String {
    format!("{}/{}", r.registry(), r.repository())
}

/// The images `reference` names, as docker resolves it: a stored name, the
/// same name normalised (`busybox` is `docker.io/library/busybox:latest`);
/// with `every_tag`, a `NAME` alone names each tag of it (`docker save`);
/// else an image id or a unique start of one, with or without `sha256:`.
fn find(rows: &[ImageRow], reference: &str, every_tag: bool) -> Result<Vec<Found>, ImageError> {
    let named = || rows.iter().filter(|r| !is_dangling_row(r));
    let one = |r: &ImageRow, name: Option<&str>| Found {
        config: r.config.clone(),
        layers: r.layers.clone(),
        names: name.into_iter().map(str::to_string).collect(),
    };
    if let Some(r) = named().find(|r| r.name == reference) {
        return Ok(vec![one(r, Some(&r.name))]);
    }
    if let Some(want) = parse_name(reference) {
        if every_tag && is_name_only(reference) {
            let repo = repository_of(&want);
            let mut found: Vec<Found> = Vec::new();
            for r in named().filter(|r| !is_digest_name(&r.name) && parse_name(&r.name).is_some_and(|n| repository_of(&n) == repo)) {
                match found.iter_mut().find(|f| f.config == r.config) {
                    Some(f) => f.names.push(r.name.clone()),
                    None => found.push(one(r, Some(&r.name))),
                }
            }
            if !found.is_empty() {
                return Ok(found);
            }
        } else if let Some(r) = named().find(|r| parse_name(&r.name).is_some_and(|n| n.whole() == want.whole())) {
            return Ok(vec![one(r, Some(&r.name))]);
        }
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        let ids: BTreeSet<&str> =
            rows.iter().map(|r| r.config.as_str()).filter(|c| c.strip_prefix("sha256:").is_some_and(|h| h.starts_with(hex))).collect();
        match ids.len() {
            0 => {}
            1 => {
                let r = rows.iter().find(|r| ids.contains(r.config.as_str())).expect("the id came from a row");
                return Ok(vec![one(r, None)]);
            }
            count => return Err(ImageError::Ambiguous { reference: reference.to_string(), count }),
        }
    }
    Err(ImageError::NotFound(reference.to_string()))
}

/// An archive ready to be written, and the lease that keeps its blobs from
/// the garbage collector (an `rmi` meanwhile) until it is.
pub struct Saving {
    archive: save::Archive,
    _lease: Lease<'static>,
}

/// Resolves `references` (names, ids) and plans their archive; an image
/// named twice goes once, with every name it was named by.
pub fn prepare_save(content: &ContentStore, store: &Mutex<Store>, references: &[String], limits: &Limits) -> Result<Saving, ImageError> {
    let rows = lock(store).images()?;
    let mut images: Vec<(String, save::Image)> = Vec::new();
    for reference in references {
        for f in find(&rows, reference, true)? {
            match images.iter_mut().find(|(_, i)| i.config.as_str() == f.config) {
                Some((_, i)) => i.names.extend(f.names.into_iter().filter(|n| !i.names.contains(n)).collect::<Vec<_>>()),
                None => {
                    let config =
                        Digest::parse(&f.config).map_err(|e| ImageError::Config { digest: f.config.clone(), reason: e.to_string() })?;
                    let layers = f.layers.iter().map(|l| Digest::parse(l)).collect::<Result<_, _>>()?;
                    images.push((reference.clone(), save::Image { config, layers, names: f.names }));
                }
            }
        }
    }
    let lease = content.lease_owned();
    for (reference, img) in &images {
        for d in std::iter::once(&img.config).chain(&img.layers) {
            // Held before it is looked for: an `rmi` may have taken it since the rows were read.
            lease.blob(d);
            if !content.has(d) {
                return Err(ImageError::NotFound(reference.clone()));
            }
        }
    }
    let images: Vec<save::Image> = images.into_iter().map(|(_, i)| i).collect();
    Ok(Saving { archive: save::plan(content, &images, limits.max_json_size)?, _lease: lease })
}

/// Writes the archive [`prepare_save`] planned to `out`, blob by blob.
pub fn write_save(content: &ContentStore, saving: &Saving, out: impl Write) -> Result<(), ImageError> {
    Ok(save::write(content, &saving.archive, out)?)
}

/// Unpacked layer sizes by chain id hex. A verified snapshot never changes,
/// so each is measured once per rindd: a memo of a pure function of the
/// disk, not state (losing it only costs a walk).
fn sizes() -> &'static Mutex<HashMap<String, u64>> {
    static SIZES: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    SIZES.get_or_init(Mutex::default)
}

/// The unpacked size of the layer snapshot of `chain`, as docker counts a
/// layer (moby's `directory.Size`): the bytes of every entry but
/// directories, hard links once. 0 when the snapshot is not there.
pub fn layer_size(root: &Path, chain: &Digest) -> u64 {
    if let Some(n) = sizes().lock().unwrap_or_else(PoisonError::into_inner).get(chain.hex()) {
        return *n;
    }
    let snapshots = Snapshots::new(root);
    let dir = if snapshots.resolve(chain).is_some() {
        snapshots.dir(chain)
    } else {
        // A version-1 snapshot, named by its chain id.
        let legacy = root.join("snapshots").join(chain.hex()).join("fs");
        if !legacy.is_dir() {
            return 0;
        }
        legacy
    };
    match dir_size(&dir) {
        Ok(n) => {
            sizes().lock().unwrap_or_else(PoisonError::into_inner).insert(chain.hex().to_string(), n);
            n
        }
        Err(e) => {
            // Only a size shown goes wrong: being removed under us, say.
            tracing::debug!(chain = %chain, error = %e, "measure a layer");
            0
        }
    }
}

fn dir_size(dir: &Path) -> std::io::Result<u64> {
    let mut inodes = HashSet::new();
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            // Not followed: a symlink counts as itself.
            let m = e.metadata()?;
            if m.is_dir() {
                todo.push(e.path());
            } else if inodes.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    Ok(total)
}

/// docker's `--filter` for `images`: `dangling=true|false`, and
/// `reference=PATTERN` (several: any of them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters {
    pub dangling: Option<bool>,
    pub references: Vec<String>,
}

impl Filters {
    pub fn parse(filters: &[String]) -> Result<Filters, ImageError> {
        let mut out = Filters::default();
        for f in filters {
            let bad = |reason| ImageError::Filter { filter: f.clone(), reason };
            let (key, value) = f.split_once('=').ok_or_else(|| bad("use KEY=VALUE"))?;
            match key {
                "dangling" => {
                    out.dangling = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad("dangling is true or false")),
                    })
                }
                "reference" => {
                    glob_match(value, "").map_err(|()| bad("syntax error in pattern"))?;
                    out.references.push(value.to_string());
                }
                _ => return Err(bad("rind filters images by dangling and reference")),
            }
        }
        Ok(out)
    }

    /// docker's `reference.FamiliarMatch`: the pattern against the familiar
    /// name with its tag or digest (`busybox:latest`), then without it.
    fn matches_reference(&self, name: &str) -> bool {
        let (whole, repo) = match parse_name(name) {
            Some(r) => {
                let familiar = crate::registry::name::familiar(&r);
                let repo = familiar.split(['@']).next().unwrap_or(&familiar).to_string();
                let repo = match repo.rsplit_once(':') {
                    Some((head, tag)) if !tag.contains('/') => head.to_string(),
                    _ => repo,
                };
                (familiar, repo)
            }
            None => (name.to_string(), name.to_string()),
        };
        self.references.iter().any(|p| glob_match(p, &whole) == Ok(true) || glob_match(p, &repo) == Ok(true))
    }
}

/// Go's `path.Match`: `*` any run of characters but `/`, `?` one of them,
/// `[…]` a class (`[^…]` negated, `a-z` ranges), `\` escapes. Err for a
/// malformed pattern, wherever it is malformed.
fn glob_match(pattern: &str, name: &str) -> Result<bool, ()> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // A malformed pattern is an error even where matching would stop early.
    check_pattern(&p)?;
    Ok(glob(&p, &n))
}

fn check_pattern(p: &[char]) -> Result<(), ()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(());
                }
                i += 2;
            }
            '[' => i = class(p, i, None).ok_or(())?.1,
            _ => i += 1,
        }
    }
    Ok(())
}

/// The class at `p[start] == '['`: whether `c` (if any) is in it, and the
/// index after its `]`. None when malformed.
fn class(p: &[char], start: usize, c: Option<char>) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            return Some((hit != negated, i + 1));
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else if ch == '-' || ch == ']' {
            return None;
        } else {
            ch
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            i += 1;
            let ch = *p.get(i)?;
            hi = if ch == '\\' {
                i += 1;
                *p.get(i)?
            } else if ch == ']' || ch == '-' {
                return None;
            } else {
                ch
            };
            i += 1;
        }
        if let Some(c) = c {
            hit |= lo <= c && c <= hi;
        }
    }
}

fn glob(p: &[char], n: &[char]) -> bool {
    let Some(&first) = p.first() else { return n.is_empty() };
    match first {
        '*' => {
            // The star takes 0..k characters, none of them '/'.
            let mut k = 0;
            loop {
                if glob(&p[1..], &n[k..]) {
                    return true;
                }
                if k == n.len() || n[k] == '/' {
                    return false;
                }
                k += 1;
            }
        }
        '?' => n.first().is_some_and(|&c| c != '/') && glob(&p[1..], &n[1..]),
        '[' => match (n.first(), class(p, 0, n.first().copied())) {
            (Some(&c), Some((true, next))) if c != '/' => glob(&p[next..], &n[1..]),
            _ => false,
        },
        '\\' => n.first() == p.get(1) && p.len() > 1 && glob(&p[2..], &n[1..]),
        c => n.first() == Some(&c) && glob(&p[1..], &n[1..]),
    }
}

/// One image as `images` shows it: every name it has, and its sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub config: String,
    pub layers: Vec<String>,
    /// `NAME:TAG` names, as stored.
    pub repo_tags: Vec<String>,
    /// `NAME@DIGEST` names, as stored.
    pub repo_digests: Vec<String>,
    /// When rindd recorded it.
    pub recorded: String,
    /// The image config's `created`.
    pub created: Option<String>,
    /// Its layers unpacked (docker's SIZE).
    pub size: u64,
}

/// The images, one per config, newest first (by the config's `created`),
/// as docker's `images` filters them: with `reference`, only the names that
/// match; `dangling=true` the images without a tag, `dangling=false` those
/// with a name.
pub fn list(root: &Path, content: &ContentStore, store: &Mutex<Store>, filters: &Filters) -> Result<Vec<Summary>, ImageError> {
    let rows = lock(store).images()?;
    let mut by_config: BTreeMap<String, Summary> = BTreeMap::new();
    for r in rows {
        let s = by_config.entry(r.config.clone()).or_insert_with(|| Summary {
            config: r.config.clone(),
            layers: r.layers.clone(),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            recorded: r.created.clone(),
            created: None,
            size: 0,
        });
        if is_dangling_row(&r) {
            continue;
        }
        if is_digest_name(&r.name) {
            s.repo_digests.push(r.name);
        } else {
            s.repo_tags.push(r.name);
        }
    }
    let mut out = Vec::new();
    for (_, mut s) in by_config {
        if !filters.references.is_empty() {
            s.repo_tags.retain(|n| filters.matches_reference(n));
            s.repo_digests.retain(|n| filters.matches_reference(n));
            if s.repo_tags.is_empty() && s.repo_digests.is_empty() {
                continue;
            }
        }
        // docker's: an image known by digest only is shown either way.
        let keep = match filters.dangling {
            Some(true) => s.repo_tags.is_empty(),
            Some(false) => !s.repo_tags.is_empty() || !s.repo_digests.is_empty(),
            None => true,
        };
        if !keep {
            continue;
        }
        let config = Digest::parse(&s.config).map_err(|e| ImageError::Config { digest: s.config.clone(), reason: e.to_string() })?;
        let cfg = read_config(content, &config)?;
        s.created = cfg.created().clone();
        s.size = chain_ids(&diff_ids_of(&cfg, &config)?).iter().map(|c| layer_size(root, c)).sum();
        out.push(s);
    }
    let time = |s: &Summary| s.created.as_deref().and_then(|c| humantime::parse_rfc3339_weak(c).ok());
    out.sort_by(|a, b| {
        time(b).cmp(&time(a)).then_with(|| a.repo_tags.first().cmp(&b.repo_tags.first())).then_with(|| a.config.cmp(&b.config))
    });
    Ok(out)
}

/// One line of an image's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The image's id on the newest line, else `<missing>` (docker's: the
    /// images of the lines below are not here).
    pub id: String,
    pub created: Option<String>,
    pub created_by: String,
    /// The line's layer unpacked; 0 for an empty layer.
    pub size: u64,
    pub comment: String,
}

/// The history the image config records, newest first; each entry that
/// made a layer gets the next layer's size, bottom first.
pub fn history(root: &Path, content: &ContentStore, store: &Mutex<Store>, reference: &str) -> Result<Vec<HistoryEntry>, ImageError> {
    let rows = lock(store).images()?;
    let found = find(&rows, reference, false)?.into_iter().next().ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
    let config = Digest::parse(&found.config).map_err(|e| ImageError::Config { digest: found.config.clone(), reason: e.to_string() })?;
    let cfg = read_config(content, &config)?;
    let chains = chain_ids(&diff_ids_of(&cfg, &config)?);
    let mut layers = chains.iter();
    let mut out = Vec::new();
    for h in cfg.history().iter().flatten() {
        let size = if h.empty_layer().unwrap_or(false) {
            0
        } else {
            let chain = layers.next().ok_or_else(|| ImageError::Config {
                digest: config.to_string(),
                reason: format!("its history has more layers than its {} diff_ids", chains.len()),
            })?;
            layer_size(root, chain)
        };
        out.push(HistoryEntry {
            id: "<missing>".into(),
            created: h.created().clone(),
            created_by: h.created_by().clone().unwrap_or_default(),
            size,
            comment: h.comment().clone().unwrap_or_default(),
        });
    }
    out.reverse();
    if let Some(top) = out.first_mut() {
        top.id = config.to_string();
    }
    Ok(out)
}

/// A line of docker's "Deleted Images:".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pruned {
    Untagged(String),
    Deleted(String),
}

/// What `image prune` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub lines: Vec<Pruned>,
    /// Bytes of blobs and unpacked layers that went.
    pub reclaimed: u64,
}

/// The image ids containers use: the id each was made from (its image's
/// name may have moved since); the name's image for a row without one.
fn in_use(rows: &[ImageRow], containers: &[ContainerRow]) -> HashSet<String> {
    let mut used = HashSet::new();
    for c in containers {
        let cfg: serde_json::Value = serde_json::from_str(&c.config).unwrap_or_default();
        match cfg["image_id"].as_str().filter(|id| !id.is_empty()) {
            Some(id) => {
                used.insert(id.to_string());
            }
            None => used.extend(rows.iter().filter(|r| r.name == c.image).map(|r| r.config.clone())),
        }
    }
    used
}

/// docker's `image prune`: removes the dangling images (those without a
/// tag), with `all` every image; never one a container uses. Rows go in one
/// pass under the store's lock; blobs and layer snapshots then through the
/// garbage collector, which keeps what another image shares.
pub fn prune(root: &Path, content: &ContentStore, store: &Mutex<Store>, all: bool) -> Result<PruneReport, ImageError> {
    let mut report = PruneReport::default();
    let mut doomed: Vec<(String, Vec<String>)> = Vec::new();
    {
        let mut store = lock(store);
        let rows = store.images()?;
        let used = in_use(&rows, &store.containers()?);
        let mut by_config: BTreeMap<&str, Vec<&ImageRow>> = BTreeMap::new();
        for r in &rows {
            by_config.entry(r.config.as_str()).or_default().push(r);
        }
        for (config, rows) in by_config {
            let tagged = rows.iter().any(|r| !is_dangling_row(r) && !is_digest_name(&r.name));
            if used.contains(config) || (tagged && !all) {
                continue;
            }
            let mut layers = Vec::new();
            for r in rows {
                store.delete_image(&r.name)?;
                if !is_dangling_row(r) {
                    report.lines.push(Pruned::Untagged(r.name.clone()));
                }
                layers.extend(r.layers.iter().filter(|l| !layers.contains(*l)).cloned().collect::<Vec<_>>());
            }
            report.lines.push(Pruned::Deleted(config.to_string()));
            doomed.push((config.to_string(), layers));
        }
    }
    if doomed.is_empty() {
        return Ok(report);
    }
    // Measured before they go; counted if they went.
    let mut blobs: HashMap<Digest, u64> = HashMap::new();
    let mut chains: HashMap<Digest, u64> = HashMap::new();
    for (config, layers) in &doomed {
        let Ok(config) = Digest::parse(config) else { continue };
        if let Ok(diffs) = diff_ids(content, &config) {
            chains.extend(chain_ids(&diffs).into_iter().map(|c| (c.clone(), layer_size(root, &c))));
        }
        for d in std::iter::once(config).chain(layers.iter().filter_map(|l| Digest::parse(l).ok())) {
            if let Ok(m) = std::fs::metadata(content.path(&d)) {
                blobs.insert(d, m.len());
            }
        }
    }
    collect_garbage_unlocked(root, content, store)?;
    let snapshots = Snapshots::new(root);
    report.reclaimed = blobs.iter().filter(|(d, _)| !content.has(d)).map(|(_, n)| n).sum::<u64>()
        + chains.iter().filter(|(c, _)| snapshots.resolve(c).is_none()).map(|(_, n)| n).sum::<u64>();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        t: tempfile::TempDir,
        content: ContentStore,
        store: Mutex<Store>,
    }

    fn fixture() -> Fixture {
        let t = tempfile::tempdir().unwrap();
        let content = ContentStore::open(&t.path().join("content")).unwrap();
        let store = Mutex::new(Store::open(&t.path().join("meta.db")).unwrap());
        Fixture { t, content, store }
    }

    /// A layer of one file, owned by whoever runs the test (unpacked unprivileged).
    fn layer(file: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, file, data).unwrap();
        b.into_inner().unwrap()
    }

    /// An OCI archive of one image over `layers`, named `name` (none: unnamed).
    fn archive(name: Option<&str>, layers: &[Vec<u8>], created: &str, history: serde_json::Value) -> Vec<u8> {
        let diff_ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": created, "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history,
        }))
        .unwrap();
        let descriptors: Vec<_> = layers
            .iter()
            .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::of(l).to_string(), "size": l.len()}))
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        let mut desc = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::of(&manifest).to_string(), "size": manifest.len()});
        if let Some(n) = name {
            desc["annotations"] = serde_json::json!({"io.containerd.image.name": n});
        }
        let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [desc]})).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: String, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, data).unwrap();
        };
        add("index.json".into(), &index);
        for blob in layers.iter().map(Vec::as_slice).chain([config.as_slice(), manifest.as_slice()]) {
            add(format!("blobs/sha256/{}", Digest::of(blob).hex()), blob);
        }
        b.into_inner().unwrap()
    }

    impl Fixture {
        fn load(&self, ar: &[u8]) -> Loaded {
            load(self.t.path(), &self.content, &self.store, ar, &Limits::default()).unwrap().remove(0)
        }

        fn names(&self) -> Vec<String> {
            lock(&self.store).images().unwrap().into_iter().map(|r| r.name).collect()
        }

        fn list(&self, filters: &[&str]) -> Vec<Summary> {
            let f = Filters::parse(&filters.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
            list(self.t.path(), &self.content, &self.store, &f).unwrap()
        }
    }

    fn simple(name: &str, content: &str) -> Vec<u8> {
        archive(Some(name), &[layer("f", content.as_bytes())], "2024-01-01T00:00:00Z", serde_json::json!([{"created_by": "ADD f"}]))
    }

    #[test]
    fn a_name_that_moves_leaves_its_old_image_dangling() {
        let f = fixture();
        let old = f.load(&simple("busybox:latest", "old"));
        let new = f.load(&simple("busybox:latest", "new"));
        assert_ne!(old.config, new.config);
        let mut want = vec!["busybox:latest".to_string(), old.config.to_string()];
        want.sort();
        assert_eq!(f.names(), want, "the old image keeps a row named by its id");
        // Named again, it is no longer dangling.
        let mut store = lock(&f.store);
        let row = store.image(old.config.as_str()).unwrap().unwrap();
        record(&mut store, &ImageRow { name: "old:1".into(), ..row }).unwrap();
        drop(store);
        assert_eq!(f.names(), ["busybox:latest", "old:1"]);
        // A name moving off an image with another name leaves no dangling row.
        let again = f.load(&simple("old:1", "new"));
        assert_eq!(again.config, new.config);
        assert_eq!(f.names(), vec!["busybox:latest".to_string(), "old:1".into(), old.config.to_string()]);
    }

    #[test]
    fn an_unnamed_image_loads_dangling_and_is_known_by_its_id() {
        let f = fixture();
        let ar = archive(None, &[layer("f", b"x")], "2024-01-01T00:00:00Z", serde_json::json!([]));
        let loaded = f.load(&ar);
        assert_eq!(loaded.names, vec![loaded.config.to_string()]);
        assert_eq!(f.names(), vec![loaded.config.to_string()]);
        let listed = f.list(&["dangling=true"]);
        assert_eq!(listed.len(), 1);
        assert!(listed[0].repo_tags.is_empty() && listed[0].repo_digests.is_empty());
        assert!(f.list(&["dangling=false"]).is_empty());
    }

    #[test]
    fn find_resolves_names_ids_and_repositories() {
        let row = |name: &str, config: char| ImageRow {
            name: name.into(),
            config: format!("sha256:{}", config.to_string().repeat(64)),
            layers: vec![],
            created: String::new(),
        };
        let rows = vec![row("busybox:latest", 'a'), row("busybox:1", 'a'), row("docker.io/library/busybox:2", 'b'), row("app:v1", 'c')];
        // Two dangling images whose ids start alike.
        let mut rows = rows;
        for hex in ["d".repeat(64), "d".repeat(63) + "e"] {
            let id = format!("sha256:{hex}");
            rows.push(ImageRow { name: id.clone(), config: id, layers: vec![], created: String::new() });
        }
        let configs =
            |r: Result<Vec<Found>, ImageError>| r.unwrap().into_iter().map(|f| (f.config[7..8].to_string(), f.names)).collect::<Vec<_>>();
        assert_eq!(configs(find(&rows, "busybox:1", true)), [("a".into(), vec!["busybox:1".to_string()])]);
        assert_eq!(configs(find(&rows, "busybox", false)), [("a".into(), vec!["busybox:latest".to_string()])]);
        assert_eq!(configs(find(&rows, "busybox:2", false)), [("b".into(), vec!["docker.io/library/busybox:2".to_string()])]);
        assert_eq!(
            configs(find(&rows, "busybox", true)),
            [
                ("a".into(), vec!["busybox:latest".to_string(), "busybox:1".into()]),
                ("b".into(), vec!["docker.io/library/busybox:2".to_string()])
            ],
            "every tag of the repository"
        );
        assert_eq!(configs(find(&rows, "ccc", true)), [("c".into(), vec![])], "an id prefix");
        assert_eq!(configs(find(&rows, &format!("sha256:{}", "c".repeat(64)), true)), [("c".into(), vec![])]);
        assert!(matches!(find(&rows, "ddd", true), Err(ImageError::Ambiguous { count: 2, .. })));
        assert!(matches!(find(&rows, "nope:1", true), Err(ImageError::NotFound(n)) if n == "nope:1"));
    }

    #[test]
    fn filters_parse_as_dockers() {
        let parse = |f: &[&str]| Filters::parse(&f.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            parse(&["dangling=true", "reference=busy*"]).unwrap(),
            Filters { dangling: Some(true), references: vec!["busy*".into()] }
        );
        for bad in ["dangling=maybe", "label=x", "nokey", "reference=[x"] {
            let e = parse(&[bad]).unwrap_err();
            assert!(e.to_string().starts_with(&format!("invalid filter {bad:?}")), "{e}");
        }
    }

    #[test]
    fn glob_is_gos_path_match() {
        let m = |p: &str, n: &str| glob_match(p, n).unwrap();
        assert!(m("busybox", "busybox"));
        assert!(m("busy*", "busybox"));
        assert!(m("*:latest", "busybox:latest"));
        assert!(!m("*", "someone/app"), "a star stops at /");
        assert!(m("*/*", "someone/app"));
        assert!(m("b?sybox", "busybox"));
        assert!(m("[a-c]usybox", "busybox"));
        assert!(!m("[^b]usybox", "busybox"));
        assert!(m("busybox\\:1", "busybox:1"));
        assert!(!m("busybox", "busybox:1"));
        for bad in ["[", "[]", "a\\", "[a-]"] {
            assert!(glob_match(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn reference_filters_match_the_familiar_name_with_or_without_its_tag() {
        let f = Filters { dangling: None, references: vec!["busybox".into()] };
        assert!(f.matches_reference("docker.io/library/busybox:1"));
        assert!(f.matches_reference("busybox:latest"));
        assert!(!f.matches_reference("app:v1"));
        let tags = Filters { dangling: None, references: vec!["*:v?".into()] };
        assert!(tags.matches_reference("app:v1") && !tags.matches_reference("busybox:latest"));
        let port = Filters { dangling: None, references: vec!["127.0.0.1:5000/*".into()] };
        assert!(port.matches_reference("127.0.0.1:5000/app:v2"));
    }

    #[test]
    fn untagging_the_last_tag_of_a_repository_drops_its_digest_references() {
        let f = fixture();
        f.load(&simple("busybox:latest", "a"));
        let mut store = lock(&f.store);
        let row = store.image("busybox:latest").unwrap().unwrap();
        let digest = format!("busybox@sha256:{}", "f".repeat(64));
        for n in ["busybox:1", digest.as_str(), "other:1", "127.0.0.1:5000/busybox:1"] {
            record(&mut store, &ImageRow { name: n.into(), ..row.clone() }).unwrap();
        }
        assert_eq!(untag(&mut store, "busybox:latest").unwrap(), ["busybox:latest"], "busybox:1 still names it");
        assert_eq!(untag(&mut store, "busybox:1").unwrap(), ["busybox:1".to_string(), digest.clone()]);
        let left: Vec<String> = store.images().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(left, ["127.0.0.1:5000/busybox:1", "other:1"]);
        assert_eq!(untag(&mut store, "nothing:1").unwrap(), Vec::<String>::new());
        assert_eq!(split_name("127.0.0.1:5000/a/b:v1"), Some(("127.0.0.1:5000/a/b", false)));
        assert_eq!(split_name("127.0.0.1:5000/a/b"), None);
        assert_eq!(split_name(&row.config), None);
    }

    #[test]
    fn list_groups_names_by_image_and_filters() {
        let f = fixture();
        let a = f.load(&simple("busybox:latest", "a"));
        let mut store = lock(&f.store);
        let row = store.image("busybox:latest").unwrap().unwrap();
        record(&mut store, &ImageRow { name: "mine:1".into(), ..row.clone() }).unwrap();
        let digest = format!("busybox@sha256:{}", "f".repeat(64));
        record(&mut store, &ImageRow { name: digest.clone(), ..row }).unwrap();
        drop(store);
        let b = f.load(&archive(Some("app:v1"), &[layer("g", b"bb")], "2024-06-01T00:00:00Z", serde_json::json!([])));
        let all = f.list(&[]);
        assert_eq!(all.iter().map(|s| s.config.as_str()).collect::<Vec<_>>(), [b.config.as_str(), a.config.as_str()], "newest first");
        assert_eq!(all[1].repo_tags, ["busybox:latest", "mine:1"]);
        assert_eq!(all[1].repo_digests, [digest]);
        assert_eq!(all[1].created.as_deref(), Some("2024-01-01T00:00:00Z"));
        // Unpacked: the one file's byte.
        assert_eq!(all[1].size, 1);
        let busybox = f.list(&["reference=busybox"]);
        assert_eq!(busybox.len(), 1);
        assert_eq!(busybox[0].repo_tags, ["busybox:latest"], "only the names that match");
        assert_eq!(f.list(&["reference=app", "reference=mine"]).len(), 2);
        assert!(f.list(&["dangling=true"]).is_empty());
    }

    #[test]
    fn history_is_newest_first_with_each_layers_size() {
        let f = fixture();
        let lines = serde_json::json!([
            {"created": "2024-01-01T00:00:00Z", "created_by": "ADD one", "comment": "first"},
            {"created": "2024-01-02T00:00:00Z", "created_by": "ENV x=1", "empty_layer": true},
            {"created": "2024-01-03T00:00:00Z", "created_by": "ADD two"},
        ]);
        let img = f.load(&archive(Some("h:1"), &[layer("one", b"1"), layer("two", b"22")], "2024-01-03T00:00:00Z", lines));
        let h = history_of(&f, "h:1");
        let got: Vec<(&str, &str, u64, &str)> =
            h.iter().map(|e| (e.id.as_str(), e.created_by.as_str(), e.size, e.comment.as_str())).collect();
        assert_eq!(got, [(img.config.as_str(), "ADD two", 2, ""), ("<missing>", "ENV x=1", 0, ""), ("<missing>", "ADD one", 1, "first")]);
        assert_eq!(h[2].created.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert!(matches!(history(f.t.path(), &f.content, &f.store, "nope"), Err(ImageError::NotFound(_))));
    }

    fn history_of(f: &Fixture, name: &str) -> Vec<HistoryEntry> {
        history(f.t.path(), &f.content, &f.store, name).unwrap()
    }

    #[test]
    fn prune_removes_dangling_images_and_with_all_every_unused_one() {
        let f = fixture();
        let old = f.load(&simple("busybox:latest", "old"));
        let new = f.load(&simple("busybox:latest", "new-content"));
        let blobs = |f: &Fixture| f.content.list().len();
        // As rindd does after a load: the manifests go.
        collect_garbage_unlocked(f.t.path(), &f.content, &f.store).unwrap();
        assert_eq!(blobs(&f), 4, "two configs, two layers");
        let r = prune(f.t.path(), &f.content, &f.store, false).unwrap();
        assert_eq!(r.lines, [Pruned::Deleted(old.config.to_string())]);
        assert_eq!(f.names(), ["busybox:latest"]);
        assert_eq!(blobs(&f), 2);
        let old_config_size = simple("busybox:latest", "old").len() as u64; // larger than what went: a bound
        assert!(r.reclaimed > 3 && r.reclaimed < old_config_size, "{}", r.reclaimed);
        // Nothing dangling left: nothing goes.
        assert_eq!(prune(f.t.path(), &f.content, &f.store, false).unwrap(), PruneReport::default());
        let r = prune(f.t.path(), &f.content, &f.store, true).unwrap();
        assert_eq!(r.lines, [Pruned::Untagged("busybox:latest".into()), Pruned::Deleted(new.config.to_string())]);
        assert!(f.names().is_empty());
        assert_eq!(blobs(&f), 0);
        assert_eq!(fs_entries(&f.t.path().join("snapshots")), Vec::<String>::new());
    }

    fn fs_entries(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir).map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
    }

    #[test]
    fn prune_keeps_what_a_container_uses() {
        let f = fixture();
        let used = f.load(&simple("used:1", "u"));
        let rows = lock(&f.store).images().unwrap();
        let container = |image: &str, config: &str| ContainerRow {
            id: "c1".into(),
            name: "c1".into(),
            image: image.into(),
            spec: "{}".into(),
            desired: crate::store::Desired::Stopped,
            restart_policy: Default::default(),
            bundle: String::new(),
            shim_address: None,
            created: std::time::SystemTime::now(),
            exit_code: None,
            finished_at: None,
            exit_reason: None,
            config: config.into(),
            status: crate::store::Status::Created,
            pid: 0,
            started_at: None,
            restart_count: 0,
            oom_killed: false,
        };
        let by_id = container("moved:1", &serde_json::json!({"image_id": used.config.to_string()}).to_string());
        assert_eq!(in_use(&rows, &[by_id]), HashSet::from([used.config.to_string()]));
        let by_name = container("used:1", "{}");
        assert_eq!(in_use(&rows, std::slice::from_ref(&by_name)), HashSet::from([used.config.to_string()]));
        lock(&f.store).insert_container(&by_name).unwrap();
        assert_eq!(prune(f.t.path(), &f.content, &f.store, true).unwrap(), PruneReport::default());
        assert_eq!(f.names(), ["used:1"]);
    }

    #[test]
    fn layer_sizes_count_files_once_and_not_directories() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), b"12345").unwrap();
        std::fs::hard_link(d.join("a/b/f"), d.join("a/g")).unwrap();
        std::os::unix::fs::symlink("a/b/f", d.join("link")).unwrap();
        assert_eq!(dir_size(d).unwrap(), 5 + "a/b/f".len() as u64);
    }

    #[test]
    fn save_plans_what_find_resolved() {
        let f = fixture();
        let a = f.load(&simple("busybox:latest", "a"));
        let saving = prepare_save(&f.content, &f.store, &["busybox".into(), "busybox:latest".into()], &Limits::default()).unwrap();
        assert_eq!(saving.archive.blobs().len(), 2, "the image once: config and layer");
        assert_eq!(saving.archive.blobs()[0].0, a.config);
        let mut out = Vec::new();
        write_save(&f.content, &saving, &mut out).unwrap();
        // Back into another store: the same image.
        let g = fixture();
        let back = g.load(&out);
        assert_eq!((back.names, back.config), (vec!["busybox:latest".to_string()], a.config));
        assert!(matches!(prepare_save(&f.content, &f.store, &["nope".into()], &Limits::default()), Err(ImageError::NotFound(_))));
    }
}
