//! Where the shim keeps things.
//!
//! ```text
//! /run/rind/s/<sha256(address/namespace/id)[..32]>   shim socket (sun_path is 108 bytes)
//! <bundle>/address        the socket's address, for a second `start` and for rindd
//! <bundle>/exit           {"pid","status","exited_at"} of the init, written before TaskExit
//! <bundle>/log.json       the runtime's log (json lines)
//! <bundle>/rootfs         where Create mounts the rootfs it is given
//! <bundle>/runtime.json   {"binary","root"}: the runtime that ran it, for `delete`
//! <bundle>/init.pid       the init's pid, written by the runtime's create
//! <bundle>/exec-<id>.json an exec's OCI process, while the runtime starts it
//! <bundle>/exec-<id>.pid  the exec's pid, written by the runtime's exec
//! ```

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const SOCKET_DIR: &str = "/run/rind/s";
pub const ADDRESS_FILE: &str = "address";
pub const EXIT_FILE: &str = "exit";
pub const RUNTIME_LOG: &str = "log.json";
pub const ROOTFS: &str = "rootfs";
pub const RUNTIME_CHOICE_FILE: &str = "runtime.json";
pub const INIT_PID_FILE: &str = "init.pid";
pub const DEFAULT_RUNTIME: &str = "rind-runtime";
/// Environment variable naming another runc-compatible runtime (runc, crun).
pub const RUNTIME_ENV: &str = "RIND_SHIM_RUNTIME";
/// Runtime state root per namespace, like the runc shim's /run/containerd/runc/<ns>.
pub const RUNTIME_ROOT: &str = "/run/rind/runtime";

/// The OCI process file and pid file of exec `id` in `bundle`.
pub fn exec_files(bundle: &Path, id: &str) -> (PathBuf, PathBuf) {
    (bundle.join(format!("exec-{id}.json")), bundle.join(format!("exec-{id}.pid")))
}

pub fn socket_path(dir: &Path, containerd_address: &str, namespace: &str, id: &str) -> PathBuf {
    let h = Sha256::digest(format!("{containerd_address}/{namespace}/{id}").as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    dir.join(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_is_short_and_stable() {
        let a = socket_path(Path::new(SOCKET_DIR), "/run/containerd/containerd.sock", "default", "x".repeat(64).as_str());
        assert_eq!(a, socket_path(Path::new(SOCKET_DIR), "/run/containerd/containerd.sock", "default", "x".repeat(64).as_str()));
        assert!(a.as_os_str().len() < 108);
        assert_ne!(a, socket_path(Path::new(SOCKET_DIR), "/other", "default", "x"));
    }
}
