//! Where rind-runtime keeps its state.
//!
//! ```text
//! <root>/                      (--root, default /run/rind-runtime)
//!   <id>/                      one directory per container; flock'd while a command works on it
//!     state.json               State, replaced atomically (schema version 1)
//!     start.sock               listening socket the created init waits on; gone once started
//! ```

use std::path::{Path, PathBuf};

pub const DEFAULT_ROOT: &str = "/run/rind-runtime";
pub const STATE_FILE: &str = "state.json";
pub const START_SOCKET: &str = "start.sock";
pub const CONFIG_FILE: &str = "config.json";
/// Where cgroup hierarchies are mounted on the host.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}
