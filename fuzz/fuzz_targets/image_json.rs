//! Manifest, index and config parsing, with their limits: the first byte
//! says which document of an image archive the rest is (docker's
//! manifest.json, index.json, an OCI manifest, a nested index, an image
//! config); the harness builds a loadable archive around it and loads it
//! (services::images::load). `@LAYER@`, `@CONFIG@` and `@MANIFEST@` in the
//! document stand for the digests of the archive's own layer, config and
//! manifest, so seeds stay readable and mutations keep them valid.
//! A config that parses also goes through services::spec::container_spec,
//! as `rind create` uses it: a spec it makes is one rind-runtime accepts.

#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use oci_spec::image::ImageConfiguration;
use rind_fuzz::commands::create;
use rind_fuzz::harness::{tar_of, Sandbox};
use rindd::content::{ContentStore, Digest};
use rindd::images::Limits;
use rindd::services::{images, spec};
use rindd::store::Store;

struct Fixed {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

impl Fixed {
    fn new() -> Fixed {
        let layer = tar_of(&[("hello", b"hi\n")]);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            Digest::of(&layer)
        )
        .into_bytes();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
            Digest::of(&config),
            config.len(),
            Digest::of(&layer),
            layer.len()
        )
        .into_bytes();
        Fixed { layer, config, manifest }
    }

    fn expand(&self, doc: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(doc)
            .replace("@LAYER@", Digest::of(&self.layer).as_str())
            .replace("@CONFIG@", Digest::of(&self.config).as_str())
            .replace("@MANIFEST@", Digest::of(&self.manifest).as_str());
        // Bytes that are not UTF-8 go in as they came.
        if std::str::from_utf8(doc).is_ok() {
            text.into_bytes()
        } else {
            doc.to_vec()
        }
    }
}

fn blob_name(data: &[u8]) -> String {
    format!("blobs/sha256/{}", Digest::of(data).hex())
}

fn index_of(digest: &Digest, media_type: &str) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{media_type}","digest":"{digest}","size":1,"annotations":{{"io.containerd.image.name":"fuzz:latest"}}}}]}}"#
    )
    .into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, doc)) = data.split_first() else { return };
    let fixed = Fixed::new();
    let doc = fixed.expand(doc);
    let (layer_name, config_name, manifest_name) = (blob_name(&fixed.layer), blob_name(&fixed.config), blob_name(&fixed.manifest));
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (layer_name, fixed.layer.clone()),
        (config_name, fixed.config.clone()),
        (manifest_name, fixed.manifest.clone()),
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
    ];
    let legacy = br#"[{"Config":"config.json","RepoTags":["fuzz:latest"],"Layers":["layer.tar"]}]"#.to_vec();
    match mode % 5 {
        0 => {
            files.push(("config.json".into(), fixed.config.clone()));
            files.push(("layer.tar".into(), fixed.layer.clone()));
            files.push(("manifest.json".into(), doc.clone()));
        }
        1 => files.push(("index.json".into(), doc.clone())),
        2 => {
            files.push((blob_name(&doc), doc.clone()));
            files.push(("index.json".into(), index_of(&Digest::of(&doc), "application/vnd.oci.image.manifest.v1+json")));
        }
        3 => {
            files.push((blob_name(&doc), doc.clone()));
            files.push(("index.json".into(), index_of(&Digest::of(&doc), "application/vnd.oci.image.index.v1+json")));
        }
        _ => {
            files.push(("config.json".into(), doc.clone()));
            files.push(("layer.tar".into(), fixed.layer.clone()));
            files.push(("manifest.json".into(), legacy));
            if let Ok(cfg) = serde_json::from_slice::<ImageConfiguration>(&doc) {
                // What an image's config makes of a container rind-runtime accepts.
                if let Ok(s) = spec::container_spec(&cfg, &spec::RunOptions::default()) {
                    create::validate(&s).expect("rind-runtime refuses the spec of this image");
                }
            }
        }
    }
    let archive = tar_of(&files.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect::<Vec<_>>());

    let sb = Sandbox::new();
    let root = &sb.work;
    let content = ContentStore::open(&root.join("content")).expect("open the content store");
    let store = Mutex::new(Store::open(&root.join("meta.db")).expect("open the store"));
    let limits = Limits { max_layer_size: 64 << 10, max_layers: 4, max_json_size: 2048 };
    if let Ok(loaded) = images::load(root, &content, &store, &archive[..], &limits) {
        for l in loaded {
            // What was recorded can be read back as `create` and the collector do.
            images::diff_ids(&content, &l.config).expect("a loaded image's config reads back");
        }
    }
    images::collect_garbage_unlocked(root, &content, &store).expect("collect garbage");
    sb.assert_contained();
});
