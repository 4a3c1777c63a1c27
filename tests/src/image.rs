//! OCI image archives built at test time from a busybox rootfs, for
//! `ctr image import` and for rindd's `rind load`; images of many layers,
//! of layers that lie about their diff_id, of gzip bombs; multi-platform
//! OCI layouts to push to a registry.

use std::fs;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

/// Appends a regular file (mode 0644) to an archive being written.
pub fn append_file<W: std::io::Write>(ar: &mut tar::Builder<W>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    ar.append_data(&mut h, path, data).unwrap();
}

pub fn digest(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// A layer as an image carries it: the blob, and the diff_id the image
/// config claims for it (the digest of the uncompressed blob, unless a test
/// says otherwise).
#[derive(Clone)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub diff_id: String,
}

impl Layer {
    /// An uncompressed layer: its diff_id is its own digest.
    pub fn plain(tar: Vec<u8>) -> Layer {
        Layer { diff_id: digest(&tar), blob: tar }
    }

    /// The layer of a directory tree.
    pub fn of_dir(rootfs: &Path) -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.append_dir_all(".", rootfs).unwrap();
        Layer::plain(b.into_inner().unwrap())
    }

    /// A layer of regular files (0644, parents made as needed).
    pub fn of_files(files: &[(&str, &[u8])]) -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            b.append_data(&mut h, path, *data).unwrap();
        }
        Layer::plain(b.into_inner().unwrap())
    }

    /// The same blob, claiming another layer's diff_id.
    pub fn claiming(self, diff_id: &str) -> Layer {
        Layer { diff_id: diff_id.to_string(), ..self }
    }
}

/// The OCI image manifest of a config blob and (uncompressed) layers.
pub fn oci_manifest(config: &[u8], layers: &[Layer]) -> Vec<u8> {
    let descriptors: Vec<_> = layers
        .iter()
        .map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&l.blob), "size": l.blob.len()}))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": config.len()},
        "layers": descriptors
    }))
    .unwrap()
}

/// An OCI layout archive of one image of `layers` (bottom first), tagged
/// `name`, with the image config's `config` object: the bytes, and where
/// each entry ends in them (for a test that feeds the archive piecemeal).
pub fn oci_image(name: &str, layers: &[Layer], image_config: serde_json::Value) -> (Vec<u8>, Vec<(String, usize)>) {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let history: Vec<_> = layers.iter().map(|_| json!({"created_by": "rind tests"})).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history
    }))
    .unwrap();
    let manifest = oci_manifest(&config, layers);
    oci_layout(name, &manifest, layers.iter().map(|l| l.blob.as_slice()).chain([config.as_slice()]).collect())
}

/// The archive of an OCI layout whose index names `manifest`, with `blobs`
/// (and the manifest) under blobs/sha256/, in that order.
pub fn oci_layout(name: &str, manifest: &[u8], blobs: Vec<&[u8]>) -> (Vec<u8>, Vec<(String, usize)>) {
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(manifest),
            "size": manifest.len(),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap()}
        }]
    }))
    .unwrap();
    let mut ar = tar::Builder::new(Vec::new());
    let mut ends = Vec::new();
    let mut add = |path: &str, data: &[u8]| {
        append_file(&mut ar, path, data);
        ends.push((path.to_string(), ar.get_ref().len()));
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    let mut seen = std::collections::HashSet::new();
    for blob in blobs.into_iter().chain([manifest]) {
        let d = digest(blob);
        if seen.insert(d.clone()) {
            add(&format!("blobs/sha256/{}", d.trim_start_matches("sha256:")), blob);
        }
    }
    (ar.into_inner().unwrap(), ends)
}

/// Writes [`oci_image`]'s archive to `out`.
pub fn write_oci_image(name: &str, layers: &[Layer], image_config: serde_json::Value, out: &Path) {
    fs::write(out, oci_image(name, layers, image_config).0).unwrap();
}

/// The config busybox images get here: `cmd`, a PATH, / as workdir.
pub fn busybox_config(cmd: &[&str]) -> serde_json::Value {
    json!({"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "WorkingDir": "/"})
}

/// A gzip bomb as a layer: one file of `size` zero bytes, in one gzip member
/// about a thousandth of that (made by the system's gzip, fast). Its claimed
/// diff_id is not its own: whatever reads it whole refuses it.
pub fn gzip_bomb(size: u64) -> Layer {
    use std::io::{Read, Write};
    let mut h = tar::Header::new_gnu();
    h.set_path("bomb").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    let mut gzip = std::process::Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut input = gzip.stdin.take().unwrap();
    let feed = std::thread::spawn(move || {
        input.write_all(h.as_bytes()).unwrap();
        // The file's data, its padding to 512 bytes and the tar's end: zeros.
        let mut left = size.div_ceil(512) * 512 + 1024;
        let zeros = vec![0u8; 1 << 20];
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            input.write_all(&zeros[..n]).unwrap();
            left -= n as u64;
        }
    });
    let mut blob = Vec::new();
    gzip.stdout.take().unwrap().read_to_end(&mut blob).unwrap();
    feed.join().unwrap();
    assert!(gzip.wait().unwrap().success());
    Layer { diff_id: digest(b"not the bomb"), blob }
}

/// Packs `rootfs` as a one-layer OCI image and writes an OCI layout archive
/// (index.json, oci-layout, blobs/) to `out`, tagged `name` (e.g. "docker.io/library/busybox:test").
pub fn write_oci_archive(rootfs: &Path, name: &str, cmd: &[&str], out: &Path) {
    write_oci_archive_with(rootfs, name, busybox_config(cmd), out)
}

/// The same, with the image config's `config` object given whole.
pub fn write_oci_archive_with(rootfs: &Path, name: &str, image_config: serde_json::Value, out: &Path) {
    write_oci_image(name, &[Layer::of_dir(rootfs)], image_config, out)
}

/// Packs `rootfs` as a one-layer image in `docker save`'s layout
/// (manifest.json, the config, a layer tar), tagged `name`: what Docker
/// 20.10's `docker load` reads (it has no OCI layout support).
pub fn write_docker_archive(rootfs: &Path, name: &str, cmd: &[&str], out: &Path) {
    let mut layer = tar::Builder::new(Vec::new());
    layer.follow_symlinks(false);
    layer.append_dir_all(".", rootfs).unwrap();
    let layer = layer.into_inner().unwrap();
    let diff_id = digest(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "rind tests"}]
    }))
    .unwrap();
    let config_name = format!("{}.json", digest(&config).trim_start_matches("sha256:"));
    let layer_name = format!("{}/layer.tar", diff_id.trim_start_matches("sha256:"));
    let manifest = serde_json::to_vec(&json!([{"Config": config_name, "RepoTags": [name], "Layers": [layer_name]}])).unwrap();
    let mut ar = tar::Builder::new(fs::File::create(out).unwrap());
    let mut add = |path: &str, data: &[u8]| append_file(&mut ar, path, data);
    add("manifest.json", &manifest);
    add(&config_name, &config);
    add(&layer_name, &layer);
    ar.finish().unwrap();
}

/// The layer of a busybox rootfs built at test time ([`crate::make_rootfs`]).
pub fn busybox_layer() -> Layer {
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    crate::make_rootfs(&rootfs);
    Layer::of_dir(&rootfs)
}

/// The image of one platform in a multi-platform index.
#[derive(Clone)]
pub struct PlatformImage {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// Bottom first.
    pub layers: Vec<Layer>,
    /// The image config's `config` object.
    pub config: serde_json::Value,
}

impl PlatformImage {
    /// The platform as an index names it (`os`, `architecture`, `variant`).
    pub fn platform(&self) -> serde_json::Value {
        let mut p = json!({"os": self.os, "architecture": self.architecture});
        if let Some(v) = &self.variant {
            p["variant"] = json!(v);
        }
        p
    }

    /// The image's config blob and its OCI manifest.
    pub fn blobs(&self) -> (Vec<u8>, Vec<u8>) {
        let diff_ids: Vec<&str> = self.layers.iter().map(|l| l.diff_id.as_str()).collect();
        let history: Vec<_> = self.layers.iter().map(|_| json!({"created_by": "rind tests"})).collect();
        let mut config = json!({
            "architecture": self.architecture,
            "os": self.os,
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history
        });
        if let Some(v) = &self.variant {
            config["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config).unwrap();
        let manifest = oci_manifest(&config, &self.layers);
        (config, manifest)
    }
}

/// busybox for linux/amd64 and, for linux/arm64/v8, a one-layer image whose
/// only file, `/arch`, says "arm64": two platforms told apart by content.
pub fn two_platform_images() -> Vec<PlatformImage> {
    vec![
        PlatformImage {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            layers: vec![busybox_layer()],
            config: busybox_config(&["sh"]),
        },
        PlatformImage {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
            layers: vec![Layer::of_files(&[("arch", b"arm64\n")])],
            config: busybox_config(&["/bin/sh"]),
        },
    ]
}

/// Writes an OCI layout directory at `dir` whose index.json names one image
/// index, tagged `tag`, of `images` (one manifest per platform): what
/// `skopeo copy --all oci:DIR:TAG docker://…` pushes as a multi-platform
/// image. Returns the image index's digest.
pub fn write_oci_index_layout(dir: &Path, tag: &str, images: &[PlatformImage]) -> String {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = digest(data);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), data).unwrap();
        d
    };
    let mut manifests = Vec::new();
    for img in images {
        let (config, manifest) = img.blobs();
        for layer in &img.layers {
            put(&layer.blob);
        }
        put(&config);
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(&manifest),
            "size": manifest.len(),
            "platform": img.platform()
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests
    }))
    .unwrap();
    let index_digest = put(&index);
    let top = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }]
    }))
    .unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(dir.join("index.json"), top).unwrap();
    index_digest
}

/// The digest of the first manifest an OCI layout archive's index.json names
/// (the image's digest once pushed without conversion).
pub fn oci_archive_manifest_digest(archive: &Path) -> String {
    use std::io::Read;
    let mut ar = tar::Archive::new(fs::File::open(archive).unwrap());
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().as_ref() == Path::new("index.json") {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            let index: serde_json::Value = serde_json::from_str(&text).unwrap();
            return index["manifests"][0]["digest"].as_str().unwrap().to_string();
        }
    }
    panic!("{} has no index.json", archive.display());
}
