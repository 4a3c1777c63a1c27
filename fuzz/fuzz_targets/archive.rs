//! Image archive import (daemon/src/images/archive.rs, through
//! services::images::load as `rind load` runs it, then the garbage
//! collection that follows every load): any bytes as a `docker save` or OCI
//! layout archive. Nothing is written outside the daemon's root, and after
//! the collection the store holds exactly the blobs of the recorded images.

#![no_main]

use std::collections::BTreeSet;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use rind_fuzz::harness::Sandbox;
use rindd::content::ContentStore;
use rindd::images::Limits;
use rindd::services::images;
use rindd::store::Store;

fuzz_target!(|data: &[u8]| {
    let sb = Sandbox::new();
    let root = &sb.work;
    let content = ContentStore::open(&root.join("content")).expect("open the content store");
    let store = Mutex::new(Store::open(&root.join("meta.db")).expect("open the store"));
    // Small limits, so inputs of a few KB reach them.
    let limits = Limits { max_layer_size: 256 << 10, max_layers: 8, max_json_size: 16 << 10 };
    let loaded = images::load(root, &content, &store, data, &limits);
    images::collect_garbage_unlocked(root, &content, &store).expect("collect garbage");
    sb.assert_contained();

    let rows = store.lock().expect("store").images().expect("read the images");
    if let Ok(loaded) = &loaded {
        let names: BTreeSet<&String> = loaded.iter().flat_map(|l| &l.names).collect();
        assert!(names.iter().all(|n| rows.iter().any(|r| &&r.name == n)), "a loaded name is not recorded");
    }
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    for r in &rows {
        referenced.insert(r.config.clone());
        referenced.extend(r.layers.iter().cloned());
    }
    let held: BTreeSet<String> = content.list().iter().map(|d| d.to_string()).collect();
    assert_eq!(held, referenced, "blobs left after the collection differ from those the images use");
});
