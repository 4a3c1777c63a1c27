//! Daemon logic with no transport: the API adapters call these.

pub mod containers;
pub mod images;
pub mod ingest;
pub mod logs;
pub mod restart;
pub mod seccomp;
pub mod spec;
pub mod stats;
pub mod users;
