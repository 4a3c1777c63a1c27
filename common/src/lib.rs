//! Small pieces more than one of rind's binaries need.

pub mod exit;
pub mod signal;
