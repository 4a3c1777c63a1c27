//! `rind save`: images as one tar holding both docker's `manifest.json` (and
//! `repositories`) and an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/`), the combined form containerd and docker 25+ write:
//! `docker load`, skopeo (`docker-archive:` and `oci-archive:`) and `rind
//! load` all read it. Layer blobs go out as the content store has them
//! (compressed or not), streamed; only the small JSON documents are built in
//! memory. The archive is deterministic: the same images give the same bytes.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;

use crate::content::{ContentError, ContentStore, Digest};
use crate::images::unpack::{detect, Compression};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// containerd's annotation for the whole name; OCI's `ref.name` holds the tag.
const IMAGE_NAME: &str = "io.containerd.image.name";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("{op} blob {digest}")]
    Blob {
        op: &'static str,
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest} is {actual} bytes, not {expected}")]
    Changed { digest: Digest, expected: u64, actual: u64 },
    #[error("image config {digest}: {reason}")]
    Config { digest: Digest, reason: String },
    #[error("write the archive")]
    Write(#[source] io::Error),
}

/// One image to save: its config and layer blobs (bottom first), and the
/// names (`NAME:TAG`) it goes out under; none for an image saved by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub config: Digest,
    pub layers: Vec<Digest>,
    pub names: Vec<String>,
}

/// What an archive holds: its small files, built whole, then the blobs of
/// the content store it streams, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    files: Vec<(String, Vec<u8>)>,
    blobs: Vec<(Digest, u64)>,
}

impl Archive {
    /// The content store's blobs in the archive, in order, with their sizes.
    pub fn blobs(&self) -> &[(Digest, u64)] {
        &self.blobs
    }
}

/// The OCI image manifest of a config and its layer blobs: OCI media types,
/// each layer's compression read off its first bytes. Built as
/// `registry::push` builds the one it pushes, so a saved image and a pushed
/// one have the same manifest digest.
pub fn manifest(config: (&Digest, u64), layers: &[(Digest, u64, Compression)]) -> Vec<u8> {
    let layer_type = |c: &Compression| match c {
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
    };
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0.to_string(), "size": config.1},
        "layers": layers.iter().map(|(d, size, c)| json!({"mediaType": layer_type(c), "digest": d.to_string(), "size": size})).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&m).expect("a JSON value serializes")
}

/// docker's manifest.json entry (its key order, RepoTags null when none).
#[derive(Serialize)]
struct DockerEntry<'a> {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<&'a [String]>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// A name as the archive carries it: the whole name (containerd's
/// annotation), the familiar repository and the tag (docker's
/// `repositories`). None for what is not a `NAME:TAG`: docker saves no
/// digest reference either.
fn tagged(name: &str) -> Option<(String, String, String)> {
    let r = crate::registry::name::parse(name).ok()?;
    if r.digest().is_some() {
        return None;
    }
    let tag = r.tag()?.to_string();
    let familiar = crate::registry::name::familiar(&r);
    let repo = familiar.strip_suffix(&format!(":{tag}")).unwrap_or(&familiar).to_string();
    Some((r.whole(), repo, tag))
}

pub(crate) fn size_of(content: &ContentStore, d: &Digest) -> Result<u64, SaveError> {
    std::fs::metadata(content.path(d)).map(|m| m.len()).map_err(|source| SaveError::Blob { op: "stat", digest: d.clone(), source })
}

pub(crate) fn compression_of(content: &ContentStore, d: &Digest) -> Result<Compression, SaveError> {
    let mut head = [0u8; 4];
    let mut f = File::open(content.path(d)).map_err(|source| SaveError::Blob { op: "open", digest: d.clone(), source })?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(SaveError::Blob { op: "read", digest: d.clone(), source }),
        }
    }
    Ok(detect(&head[..n]))
}

/// The index's platform for an image: the config's os, architecture and
/// variant, when it has the first two.
fn platform_of(content: &ContentStore, config: &Digest, max_json: u64) -> Result<Option<serde_json::Value>, SaveError> {
    let data = content.read_max(config, "image config", max_json)?;
    let v: serde_json::Value =
        serde_json::from_slice(&data).map_err(|e| SaveError::Config { digest: config.clone(), reason: e.to_string() })?;
    let (Some(os), Some(arch)) = (v["os"].as_str(), v["architecture"].as_str()) else { return Ok(None) };
    let mut p = json!({"architecture": arch, "os": os});
    if let Some(variant) = v["variant"].as_str() {
        p["variant"] = json!(variant);
    }
    Ok(Some(p))
}

/// Plans the archive of `images`: reads each config, each layer's size and
/// first bytes, and builds the manifests, index.json, manifest.json and
/// repositories. The caller holds the blobs (a lease) until it is written.
pub fn plan(content: &ContentStore, images: &[Image], max_json: u64) -> Result<Archive, SaveError> {
    let mut manifests: Vec<(String, Vec<u8>)> = Vec::new();
    let mut index = Vec::new();
    let mut docker = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut blobs = Vec::new();
    let mut seen = HashSet::new();
    let mut add_blob = |d: &Digest, size: u64| {
        if seen.insert(d.clone()) {
            blobs.push((d.clone(), size));
        }
    };
    for img in images {
        let config_size = size_of(content, &img.config)?;
        let layers = img
            .layers
            .iter()
            .map(|l| Ok((l.clone(), size_of(content, l)?, compression_of(content, l)?)))
            .collect::<Result<Vec<_>, SaveError>>()?;
        let body = manifest((&img.config, config_size), &layers);
        let digest = Digest::of(&body);
        let platform = platform_of(content, &img.config, max_json)?;
        let descriptor = |annotations: Option<serde_json::Value>| {
            let mut d = json!({"mediaType": OCI_MANIFEST, "digest": digest.to_string(), "size": body.len()});
            if let Some(a) = annotations {
                d["annotations"] = a;
            }
            if let Some(p) = &platform {
                d["platform"] = p.clone();
            }
            d
        };
        let mut repo_tags = Vec::new();
        for name in &img.names {
            let Some((whole, repo, tag)) = tagged(name) else {
                tracing::debug!(image = %img.config, name = %name, "not a NAME:TAG: saved without it");
                continue;
            };
            index.push(descriptor(Some(json!({IMAGE_NAME: whole, REF_NAME: tag.clone()}))));
            if let Some(top) = img.layers.last() {
                repositories.entry(repo).or_default().insert(tag, top.hex().to_string());
            }
            repo_tags.push(name.clone());
        }
        if repo_tags.is_empty() {
            // Saved by id: the layout still lists it, unnamed (docker's leaves
            // it out, and an OCI reader could not find it).
            index.push(descriptor(None));
        }
        docker.push(json!(DockerEntry {
            config: blob_path(&img.config),
            repo_tags: (!repo_tags.is_empty()).then_some(repo_tags.as_slice()),
            layers: img.layers.iter().map(blob_path).collect(),
        }));
        manifests.push((blob_path(&digest), body));
        add_blob(&img.config, config_size);
        for (l, size, _) in &layers {
            add_blob(l, *size);
        }
    }
    let json_of = |v: &serde_json::Value| serde_json::to_vec(v).expect("a JSON value serializes");
    let mut files = vec![
        ("oci-layout".to_string(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json".to_string(), json_of(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}))),
        ("manifest.json".to_string(), json_of(&json!(docker))),
    ];
    if !repositories.is_empty() {
        files.push(("repositories".to_string(), json_of(&json!(repositories))));
    }
    // A manifest shared by two images (the same config and layers) goes once.
    let mut written = HashSet::new();
    files.extend(manifests.into_iter().filter(|(path, _)| written.insert(path.clone())));
    Ok(Archive { files, blobs })
}

fn header(size: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    // Fixed times: the same images make the same archive.
    h.set_mtime(0);
    h
}

/// Writes `archive` to `out`: its documents, then each blob streamed from
/// the content store.
pub fn write(content: &ContentStore, archive: &Archive, out: impl Write) -> Result<(), SaveError> {
    let mut tar = tar::Builder::new(out);
    let (docs, manifests): (Vec<_>, Vec<_>) = archive.files.iter().partition(|(p, _)| !p.starts_with("blobs/"));
    for (path, data) in docs {
        tar.append_data(&mut header(data.len() as u64, tar::EntryType::Regular), path, data.as_slice()).map_err(SaveError::Write)?;
    }
    for dir in ["blobs/", "blobs/sha256/"] {
        tar.append_data(&mut header(0, tar::EntryType::Directory), dir, io::empty()).map_err(SaveError::Write)?;
    }
    for (path, data) in manifests {
        tar.append_data(&mut header(data.len() as u64, tar::EntryType::Regular), path, data.as_slice()).map_err(SaveError::Write)?;
    }
    for (d, size) in &archive.blobs {
        let path: PathBuf = content.path(d);
        let f = File::open(&path).map_err(|source| SaveError::Blob { op: "open", digest: d.clone(), source })?;
        // Blobs never change: a size that did is a store that was tampered with.
        let actual = f.metadata().map_err(|source| SaveError::Blob { op: "stat", digest: d.clone(), source })?.len();
        if actual != *size {
            return Err(SaveError::Changed { digest: d.clone(), expected: *size, actual });
        }
        let mut reader = ReadErrors { inner: f.take(*size), error: None };
        let result = tar.append_data(&mut header(*size, tar::EntryType::Regular), blob_path(d), &mut reader);
        if let Some(source) = reader.error.take() {
            return Err(SaveError::Blob { op: "read", digest: d.clone(), source });
        }
        result.map_err(SaveError::Write)?;
    }
    let mut out = tar.into_inner().map_err(SaveError::Write)?;
    out.flush().map_err(SaveError::Write)
}

/// A blob's reader that keeps its own error aside, so a failed read of the
/// store is told apart from a failed write of the archive.
struct ReadErrors<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R: Read> Read for ReadErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = e.kind();
            self.error = Some(e);
            io::Error::new(kind, "read blob")
        })
    }
}

/// A writer that hands its bytes on in chunks of `size` (the last one
/// shorter) to `send`: the archive goes out as a stream of messages, never
/// whole in memory. `send` failing (the reader gone) fails the write.
pub struct Chunks<F: FnMut(Vec<u8>) -> io::Result<()>> {
    buf: Vec<u8>,
    size: usize,
    send: F,
}

impl<F: FnMut(Vec<u8>) -> io::Result<()>> Chunks<F> {
    pub fn new(size: usize, send: F) -> Chunks<F> {
        Chunks { buf: Vec::with_capacity(size), size, send }
    }
}

impl<F: FnMut(Vec<u8>) -> io::Result<()>> Write for Chunks<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.size {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.size));
            (self.send)(full)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            (self.send)(std::mem::take(&mut self.buf))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::archive::import;
    use crate::images::Limits;

    struct Fixture {
        _t: tempfile::TempDir,
        cs: ContentStore,
    }

    fn fixture() -> Fixture {
        let t = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(t.path()).unwrap();
        Fixture { _t: t, cs }
    }

    fn layer_tar(file: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, file, &b"x"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// An image of a plain and a gzip layer, named `names`.
    fn image(cs: &ContentStore, names: &[&str]) -> Image {
        let (a, b) = (layer_tar("a"), layer_tar("b"));
        let config = json!({
            "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&a).to_string(), Digest::of(&b).to_string()]},
            "history": [{"created_by": "a"}, {"created_by": "b"}]
        });
        let config = cs.write(None, serde_json::to_vec(&config).unwrap().as_slice()).unwrap();
        let layers = vec![cs.write(None, a.as_slice()).unwrap(), cs.write(None, gzip(&b).as_slice()).unwrap()];
        Image { config, layers, names: names.iter().map(|s| s.to_string()).collect() }
    }

    fn save(cs: &ContentStore, images: &[Image]) -> Vec<u8> {
        let archive = plan(cs, images, Limits::MAX_JSON_SIZE).unwrap();
        let mut out = Vec::new();
        write(cs, &archive, &mut out).unwrap();
        out
    }

    fn entries(ar: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for e in tar::Archive::new(ar).entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(e.path().unwrap().display().to_string(), data);
        }
        out
    }

    #[test]
    fn the_archive_holds_dockers_manifest_and_an_oci_layout() {
        let f = fixture();
        let img = image(&f.cs, &["busybox:latest", "docker.io/library/busybox:1"]);
        let files = entries(&save(&f.cs, std::slice::from_ref(&img)));
        let docker: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(
            docker,
            json!([{
                "Config": blob_path(&img.config),
                "RepoTags": ["busybox:latest", "docker.io/library/busybox:1"],
                "Layers": [blob_path(&img.layers[0]), blob_path(&img.layers[1])],
            }])
        );
        let repos: serde_json::Value = serde_json::from_slice(&files["repositories"]).unwrap();
        assert_eq!(repos, json!({"busybox": {"1": img.layers[1].hex(), "latest": img.layers[1].hex()}}));
        assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let m = &index["manifests"];
        assert_eq!(m.as_array().unwrap().len(), 2, "one entry per name: {index}");
        assert_eq!(m[0]["annotations"], json!({IMAGE_NAME: "docker.io/library/busybox:latest", REF_NAME: "latest"}));
        assert_eq!(m[1]["annotations"], json!({IMAGE_NAME: "docker.io/library/busybox:1", REF_NAME: "1"}));
        assert_eq!(m[0]["platform"], json!({"architecture": "amd64", "os": "linux"}));
        assert_eq!(m[0]["digest"], m[1]["digest"]);
        // The manifest is a blob of the layout, its layers' media types sniffed.
        let md = Digest::parse(m[0]["digest"].as_str().unwrap()).unwrap();
        let body = &files[&blob_path(&md)];
        assert_eq!(Digest::of(body), md);
        assert_eq!(m[0]["size"], json!(body.len()));
        let manifest: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(manifest["layers"][1]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
        assert_eq!(manifest["config"]["digest"], img.config.to_string());
        for d in std::iter::once(&img.config).chain(&img.layers) {
            assert_eq!(files[&blob_path(d)], f.cs.read(d).unwrap(), "{d} as stored");
        }
    }

    #[test]
    fn the_same_images_make_the_same_bytes() {
        let f = fixture();
        let img = image(&f.cs, &["a:1"]);
        assert_eq!(save(&f.cs, std::slice::from_ref(&img)), save(&f.cs, std::slice::from_ref(&img)));
        let a = plan(&f.cs, std::slice::from_ref(&img), Limits::MAX_JSON_SIZE).unwrap();
        assert_eq!(a.blobs().len(), 3, "config and two layers");
    }

    #[test]
    fn rind_load_reads_what_save_wrote_with_shared_blobs_once() {
        let f = fixture();
        let one = image(&f.cs, &["one:1"]);
        // Another config over the same layers.
        let config = f.cs.write(None, &br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#[..]).unwrap();
        let two = Image { config, layers: one.layers.clone(), names: vec![] };
        let ar = save(&f.cs, &[one.clone(), two.clone()]);
        let names: Vec<String> =
            tar::Archive::new(&ar[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "each entry once: {names:?}");

        let g = fixture();
        let got = import(&g.cs, &g.cs.lease(), &ar[..], &Limits::default()).unwrap();
        let as_saved = |i: &Image| (i.names.clone(), i.config.clone(), i.layers.clone());
        let loaded: Vec<_> = got.iter().map(|i| (i.names.clone(), i.config.clone(), i.layers.clone())).collect();
        assert_eq!(loaded, vec![as_saved(&one), as_saved(&two)]);
    }

    #[test]
    fn an_image_saved_by_id_is_in_the_layout_unnamed() {
        let f = fixture();
        let img = image(&f.cs, &[]);
        let files = entries(&save(&f.cs, &[img]));
        let docker: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(docker[0]["RepoTags"], serde_json::Value::Null);
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert!(index["manifests"][0].get("annotations").is_none());
        assert!(!files.contains_key("repositories"));
    }

    #[test]
    fn digest_references_are_not_tags() {
        assert_eq!(tagged(&format!("busybox@sha256:{}", "a".repeat(64))), None);
        assert_eq!(tagged("busybox"), Some(("docker.io/library/busybox:latest".into(), "busybox".into(), "latest".into())));
        assert_eq!(tagged("127.0.0.1:5000/app:v2"), Some(("127.0.0.1:5000/app:v2".into(), "127.0.0.1:5000/app".into(), "v2".into())));
    }

    #[test]
    fn chunks_are_whole_but_the_last() {
        let mut got = Vec::new();
        {
            let mut w = Chunks::new(4, |c| {
                got.push(c);
                Ok(())
            });
            w.write_all(b"0123456789").unwrap();
            w.flush().unwrap();
        }
        assert_eq!(got, vec![b"0123".to_vec(), b"4567".to_vec(), b"89".to_vec()]);
        let mut gone = Chunks::new(2, |_| Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        assert_eq!(gone.write_all(b"abc").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_blob_that_changed_size_is_an_error() {
        let f = fixture();
        let img = image(&f.cs, &["a:1"]);
        let archive = plan(&f.cs, std::slice::from_ref(&img), Limits::MAX_JSON_SIZE).unwrap();
        std::fs::write(f.cs.path(&img.layers[0]), b"short").unwrap();
        let e = write(&f.cs, &archive, io::sink()).unwrap_err();
        assert!(matches!(e, SaveError::Changed { .. }), "{e}");
    }
}
