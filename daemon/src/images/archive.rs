//! `rind load`: image archives as `docker save` writes them (manifest.json,
//! legacy `<id>/layer.tar` or OCI blobs) and OCI image layouts (index.json),
//! read as one stream. Every file goes into the content store (blobs under
//! their digest are verified) under the load's lease; then the manifests say
//! what the images are. JSON documents and layer counts have limits.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;

use crate::content::{ContentError, ContentStore, Digest, Lease};
use crate::images::unpack::clean_entry_path;
use crate::images::Limits;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("read archive")]
    Read(#[source] std::io::Error),
    #[error("archive entry {entry:?} refused: {reason}")]
    Hostile { entry: String, reason: &'static str },
    #[error("archive entry {entry}: {source}")]
    Content {
        entry: String,
        #[source]
        source: ContentError,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("the archive has neither manifest.json nor index.json")]
    Unknown,
    #[error("{entry} is larger than {limit} bytes")]
    TooLarge { entry: String, limit: u64 },
    #[error("image {image} has {count} layers: rind takes at most {limit}")]
    TooManyLayers { image: String, count: usize, limit: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    pub names: Vec<String>,
    pub config: Digest,
    /// Layer blobs, bottom first.
    pub layers: Vec<Digest>,
}

#[derive(Deserialize)]
struct DockerManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn invalid(what: impl Into<String>, reason: impl ToString) -> ArchiveError {
    ArchiveError::Invalid { what: what.into(), reason: reason.to_string() }
}

/// Refuses an image with more layers than `limits` allow.
fn check_layers(image: impl FnOnce() -> String, count: usize, limits: &Limits) -> Result<(), ArchiveError> {
    if count > limits.max_layers {
        return Err(ArchiveError::TooManyLayers { image: image(), count, limit: limits.max_layers });
    }
    Ok(())
}

pub fn import(store: &ContentStore, lease: &Lease<'_>, archive: impl Read, limits: &Limits) -> Result<Vec<ImportedImage>, ArchiveError> {
    let mut files: HashMap<PathBuf, Digest> = HashMap::new();
    let mut links: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut json: HashMap<String, Vec<u8>> = HashMap::new();
    let mut ar = tar::Archive::new(archive);
    for entry in ar.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let raw = entry.path().map_err(ArchiveError::Read)?.into_owned();
        let shown = raw.display().to_string();
        let rel = clean_entry_path(&raw).map_err(|reason| ArchiveError::Hostile { entry: shown.clone(), reason })?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Symlink => {
                let target = entry.link_name().map_err(ArchiveError::Read)?.unwrap_or_default().into_owned();
                let joined = rel.parent().unwrap_or(Path::new("")).join(&target);
                let resolved = clean_entry_path(&joined).map_err(|reason| ArchiveError::Hostile { entry: shown.clone(), reason })?;
                links.insert(rel, resolved);
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            _ => return Err(ArchiveError::Hostile { entry: shown, reason: "not a regular file, directory or symlink" }),
        }
        let top = rel.to_string_lossy().into_owned();
        if matches!(top.as_str(), "index.json" | "manifest.json" | "oci-layout" | "repositories") {
            let limit = limits.max_json_size;
            let mut buf = Vec::new();
            (&mut entry).take(limit.saturating_add(1)).read_to_end(&mut buf).map_err(ArchiveError::Read)?;
            if buf.len() as u64 > limit {
                return Err(ArchiveError::TooLarge { entry: top, limit });
            }
            json.insert(top, buf);
            continue;
        }
        // blobs/sha256/<hex> must match their name; legacy files get theirs computed.
        let expected = match rel.strip_prefix("blobs/sha256") {
            Ok(hex) => Some(
                Digest::parse(&format!("sha256:{}", hex.display()))
                    .map_err(|source| ArchiveError::Content { entry: shown.clone(), source })?,
            ),
            Err(_) => None,
        };
        let d =
            store.write_leased(lease, expected.as_ref(), &mut entry).map_err(|source| ArchiveError::Content { entry: shown, source })?;
        files.insert(rel, d);
    }
    let resolve = |p: &str| -> Result<Digest, ArchiveError> {
        let mut path = clean_entry_path(Path::new(p)).map_err(|reason| ArchiveError::Hostile { entry: p.into(), reason })?;
        for _ in 0..8 {
            match links.get(&path) {
                Some(t) => path = t.clone(),
                None => break,
            }
        }
        files.get(&path).cloned().ok_or_else(|| invalid(p, "referenced but not in the archive"))
    };
    if let Some(m) = json.get("manifest.json") {
        let manifests: Vec<DockerManifest> = serde_json::from_slice(m).map_err(|e| invalid("manifest.json", e))?;
        return manifests
            .into_iter()
            .map(|dm| {
                check_layers(|| dm.repo_tags.as_ref().and_then(|t| t.first()).unwrap_or(&dm.config).clone(), dm.layers.len(), limits)?;
                Ok(ImportedImage {
                    names: dm.repo_tags.unwrap_or_default(),
                    config: resolve(&dm.config)?,
                    layers: dm.layers.iter().map(|l| resolve(l)).collect::<Result<_, _>>()?,
                })
            })
            .collect();
    }
    let Some(idx) = json.get("index.json") else { return Err(ArchiveError::Unknown) };
    let index: ImageIndex = serde_json::from_slice(idx).map_err(|e| invalid("index.json", e))?;
    let mut out = Vec::new();
    for desc in index.manifests() {
        let names: Vec<String> = desc
            .annotations()
            .as_ref()
            .and_then(|a| a.get("io.containerd.image.name").or_else(|| a.get("org.opencontainers.image.ref.name")))
            .cloned()
            .into_iter()
            .collect();
        let mut digest =
            Digest::parse(desc.digest().as_ref()).map_err(|source| ArchiveError::Content { entry: "index.json".into(), source })?;
        // A multi-platform index: take the linux/amd64 manifest.
        let json_of = |d: &Digest, what: &'static str| {
            store.read_max(d, what, limits.max_json_size).map_err(|source| ArchiveError::Content { entry: d.to_string(), source })
        };
        if *desc.media_type() == MediaType::ImageIndex {
            let inner: ImageIndex = serde_json::from_slice(&json_of(&digest, "index")?).map_err(|e| invalid(digest.to_string(), e))?;
            let pick = inner
                .manifests()
                .iter()
                .find(|m| m.platform().as_ref().is_some_and(|p| p.os().to_string() == "linux" && p.architecture().to_string() == "amd64"))
                .ok_or_else(|| invalid(digest.to_string(), "no linux/amd64 manifest"))?;
            digest = Digest::parse(pick.digest().as_ref()).map_err(|source| ArchiveError::Content { entry: "index".into(), source })?;
        }
        let data = json_of(&digest, "manifest")?;
        let manifest: ImageManifest = serde_json::from_slice(&data).map_err(|e| invalid(digest.to_string(), e))?;
        let config = Digest::parse(manifest.config().digest().as_ref())
            .map_err(|source| ArchiveError::Content { entry: digest.to_string(), source })?;
        check_layers(|| names.first().cloned().unwrap_or_else(|| digest.to_string()), manifest.layers().len(), limits)?;
        let layers = manifest
            .layers()
            .iter()
            .map(|l| Digest::parse(l.digest().as_ref()).map_err(|source| ArchiveError::Content { entry: digest.to_string(), source }))
            .collect::<Result<Vec<_>, _>>()?;
        for d in std::iter::once(&config).chain(&layers) {
            // Held before it is looked for: it may be another image's, and go with it.
            lease.blob(d);
            if !store.has(d) {
                return Err(invalid(d.to_string(), "referenced but not in the archive"));
            }
        }
        out.push(ImportedImage { names, config, layers });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn import_docker_legacy_archive() {
        let t = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(t.path()).unwrap();
        let manifest = br#"[{"Config":"abc.json","RepoTags":["busybox:test"],"Layers":["l1/layer.tar"]}]"#;
        let ar = tar_with(&[("abc.json", b"{}"), ("l1/layer.tar", b"layer-bytes"), ("manifest.json", manifest)]);
        let imgs = import(&cs, &cs.lease(), &ar[..], &Limits::default()).unwrap();
        assert_eq!(imgs.len(), 1);
        assert_eq!(imgs[0].names, vec!["busybox:test"]);
        assert_eq!(imgs[0].layers, vec![Digest::of(b"layer-bytes")]);
        assert_eq!(imgs[0].config, Digest::of(b"{}"));
    }

    fn imp(cs: &ContentStore, ar: &[u8]) -> Result<Vec<ImportedImage>, ArchiveError> {
        import(cs, &cs.lease(), ar, &Limits::default())
    }

    #[test]
    fn import_refuses_bad_blobs_and_paths() {
        let t = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(t.path()).unwrap();
        let wrong = format!("blobs/sha256/{}", Digest::of(b"x").hex());
        let e = imp(&cs, &tar_with(&[(&wrong, b"not x")])).unwrap_err().to_string();
        assert!(e.contains("mismatch"), "{e}");
        let e = imp(&cs, &tar_with(&[("../evil", b"x")])).unwrap_err().to_string();
        assert!(e.contains(".."), "{e}");
        let e = imp(&cs, &tar_with(&[("manifest.json", br#"[{"Config":"missing.json","Layers":[]}]"#)])).unwrap_err().to_string();
        assert!(e.contains("missing.json"), "{e}");
        assert!(matches!(imp(&cs, &tar_with(&[("x", b"y")])), Err(ArchiveError::Unknown)));
    }

    #[test]
    fn import_refuses_documents_and_layer_counts_over_the_limits() {
        let t = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(t.path()).unwrap();
        let limits = Limits { max_layers: 2, max_json_size: 200, ..Limits::default() };
        let imp = |ar: &[u8]| import(&cs, &cs.lease(), ar, &limits).unwrap_err();

        let big = format!(r#"[{{"Config":"c.json","Layers":[],"RepoTags":["{}"]}}]"#, "x".repeat(200));
        let e = imp(&tar_with(&[("manifest.json", big.as_bytes())]));
        assert_eq!(e.to_string(), "manifest.json is larger than 200 bytes");

        let three = br#"[{"Config":"c.json","RepoTags":["deep:1"],"Layers":["a.tar","a.tar","a.tar"]}]"#;
        let e = imp(&tar_with(&[("c.json", b"{}"), ("a.tar", b"a"), ("manifest.json", three)]));
        assert_eq!(e.to_string(), "image deep:1 has 3 layers: rind takes at most 2");

        // An OCI manifest is a blob: its size is known only from the store.
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{}","size":2}},"layers":[],"pad":"{}"}}"#,
            Digest::of(b"{}"),
            "x".repeat(200)
        );
        let md = Digest::of(manifest.as_bytes());
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{}}}]}}"#,
            manifest.len()
        );
        let blob = format!("blobs/sha256/{}", md.hex());
        let e = imp(&tar_with(&[(&blob, manifest.as_bytes()), ("index.json", index.as_bytes())]));
        assert!(e.to_string().ends_with(&format!("manifest {md} is larger than 200 bytes")), "{e}");
    }
}
