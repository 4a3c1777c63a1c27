//! Shared pieces of the fuzz targets: the sandbox that checks an unpack
//! wrote nothing outside its directory, and the code of rind's binary-only
//! crates, compiled here from their sources (not copied) so the targets can
//! call their pure functions.
//!
//! rind-runtime and the shim are binaries with no library: their modules are
//! included by path, at this crate's root so that their `crate::` paths
//! resolve. The list follows `runtime/src/main.rs`.

#![allow(dead_code, unused_imports, clippy::all)]

pub mod harness;

#[path = "../../runtime/src/atomic.rs"]
pub mod atomic;
#[path = "../../runtime/src/cgroups/mod.rs"]
pub mod cgroups;
#[path = "../../runtime/src/cli.rs"]
pub mod cli;
#[path = "../../runtime/src/commands/mod.rs"]
pub mod commands;
#[path = "../../runtime/src/hooks.rs"]
pub mod hooks;
#[path = "../../runtime/src/log.rs"]
pub mod log;
#[path = "../../runtime/src/paths.rs"]
pub mod paths;
#[path = "../../runtime/src/process/mod.rs"]
pub mod process;
#[path = "../../runtime/src/rootfs/mod.rs"]
pub mod rootfs;
#[path = "../../runtime/src/seal.rs"]
pub mod seal;
#[path = "../../runtime/src/state.rs"]
pub mod state;

/// The shim's CRI log writer (`shim/src/logs.rs`).
#[path = "../../shim/src/logs.rs"]
pub mod shim_logs;
