//! Layer unpacking (daemon/src/images/unpack.rs): any bytes as a layer blob
//! (plain, gzip or zstd tar). Whatever the layer, nothing is written outside
//! the snapshot's directory, a refused layer leaves nothing, and an applied
//! one holds no device node but whiteouts.

#![no_main]

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use libfuzzer_sys::fuzz_target;
use rind_fuzz::harness::{tree, Sandbox};
use rindd::content::Digest;
use rindd::images::unpack::unpack_layer;

/// Small enough that a decompression bomb is refused quickly.
const MAX_LAYER: u64 = 8 << 20;

fuzz_target!(|data: &[u8]| {
    let sb = Sandbox::new();
    let blob = sb.work.join("blob");
    fs::write(&blob, data).expect("write the blob");
    let dest = sb.work.join("snap");
    // The digest of the blob itself: a plain tar then passes the diff_id check.
    let result = unpack_layer(&blob, &dest, &Digest::of(data), MAX_LAYER);
    sb.assert_contained();
    match result {
        Ok(stats) => {
            assert!(stats.size <= MAX_LAYER);
            for rel in tree(&dest) {
                let m = fs::symlink_metadata(dest.join(&rel)).expect("stat what was unpacked");
                let t = m.file_type();
                assert!(!t.is_block_device(), "block device {rel:?} unpacked");
                assert!(!t.is_char_device() || m.rdev() == 0, "character device {rel:?} unpacked (not a whiteout)");
            }
            assert_eq!(tree(&sb.work).iter().filter(|p| p.components().count() == 1).count(), 2, "blob and snap only");
        }
        Err(_) => assert_eq!(tree(&sb.work), vec![std::path::PathBuf::from("blob")], "a refused layer left something"),
    }
});
