//! OCI image archives built at test time from a busybox rootfs, for
//! `ctr image import` and for rindd's `rind load`.

use std::fs;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

fn digest(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// Packs `rootfs` as a one-layer OCI image and writes an OCI layout archive
/// (index.json, oci-layout, blobs/) to `out`, tagged `name` (e.g. "docker.io/library/busybox:test").
pub fn write_oci_archive(rootfs: &Path, name: &str, cmd: &[&str], out: &Path) {
    let config = json!({"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "WorkingDir": "/"});
    write_oci_archive_with(rootfs, name, config, out)
}

/// The same, with the image config's `config` object given whole.
pub fn write_oci_archive_with(rootfs: &Path, name: &str, image_config: serde_json::Value, out: &Path) {
    let mut layer = tar::Builder::new(Vec::new());
    layer.follow_symlinks(false);
    layer.append_dir_all(".", rootfs).unwrap();
    let layer = layer.into_inner().unwrap();
    let diff_id = digest(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "rind tests"}]
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id, "size": layer.len()}]
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest),
            "size": manifest.len(),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap()}
        }]
    }))
    .unwrap();
    let mut ar = tar::Builder::new(fs::File::create(out).unwrap());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        ar.append_data(&mut h, path, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for blob in [&layer, &config, &manifest] {
        let d = digest(blob);
        add(&format!("blobs/sha256/{}", d.trim_start_matches("sha256:")), blob);
    }
    ar.finish().unwrap();
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
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        ar.append_data(&mut h, path, data).unwrap();
    };
    add("manifest.json", &manifest);
    add(&config_name, &config);
    add(&layer_name, &layer);
    ar.finish().unwrap();
}
