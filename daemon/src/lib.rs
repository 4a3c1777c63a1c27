//! rindd: the rind daemon. Issue 5 builds it up; so far the image layer
//! unpacker, the content store and the metadata store.

pub mod api;
pub mod content;
pub mod images;
pub mod services;
pub mod snapshots;
pub mod store;
