//! Images: content, layers and their unpacking into snapshots.

pub mod archive;
pub mod unpack;
