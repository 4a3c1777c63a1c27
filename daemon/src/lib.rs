//! rindd: the rind daemon. Issue 5 builds it up; so far the image layer
//! unpacker that snapshots are made of and the content store.

pub mod content;
pub mod images;
