//! rindd: the rind daemon. Issue 5 builds it up; so far the image layer
//! unpacker that snapshots are made of.

pub mod images;
