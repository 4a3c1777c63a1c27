//! Small pieces more than one of rind's binaries need.

pub mod error;
pub mod exit;
pub mod shim;
pub mod signal;
