//! Daemon logic with no transport: the API adapters call these.

pub mod images;
pub mod seccomp;
pub mod spec;
