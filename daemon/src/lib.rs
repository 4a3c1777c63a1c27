//! rindd: the rind daemon. Images into a content store and overlay
//! snapshots, containers through one shim each, all recorded in SQLite.

pub mod api;
pub mod config;
pub mod content;
pub mod dirs;
pub mod events;
pub mod images;
pub mod names;
pub mod network;
pub mod registry;
pub mod services;
pub mod shims;
pub mod snapshots;
pub mod store;
