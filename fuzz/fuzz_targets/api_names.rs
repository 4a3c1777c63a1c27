//! The names rind's API takes as text: image references (pull, push, tag,
//! save, run --pull: daemon/src/registry/name.rs) and platforms (--platform).
//! Invariants: the name rindd stores and shows for a reference (`familiar`)
//! parses back to the same repository and shows as itself again, and a
//! platform prints back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rindd::registry::{name, Platform};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    if pick % 2 == 0 {
        let Ok(r) = name::parse(&text) else { return };
        let shown = name::familiar(&r);
        let again = name::parse(&shown).unwrap_or_else(|e| panic!("{text:?} is stored as {shown:?}, which does not parse: {e}"));
        // With a tag and a digest, the tag is the name kept (as `familiar` says).
        assert_eq!(
            (again.registry(), again.repository()),
            (r.registry(), r.repository()),
            "{text:?} is stored as {shown:?}, another repository"
        );
        assert_eq!(name::familiar(&again), shown, "{text:?}: the stored name {shown:?} is not stable");
        let _ = name::path(&r);
    } else if let Ok(p) = Platform::parse(&text) {
        assert_eq!(Platform::parse(&p.to_string()).expect("a platform prints back"), p);
    }
});
