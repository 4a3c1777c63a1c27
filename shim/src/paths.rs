//! Where the shim keeps things. `<state>` is `$RIND_SHIM_STATE` (rindd
//! passes its own `--state`, so two rindd never share a socket or runtime
//! state), else /run/rind, which is what containerd's use gets.
//!
//! ```text
//! <state>/s/<sha256(address/namespace/id)[..32]>     shim socket (sun_path is 108 bytes); the dir is 0700
//! <state>/s/<pid>-<n>.console                        console sockets, while a terminal is set up
//! <state>/runtime/<namespace>/<id>/                  the runtime's state, unless the runc options name a root
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

pub const SOCKET_DIR: &str = rind_common::shim::SOCKET_DIR;
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
/// Environment variable naming the shim's state dir (rindd's `--state`).
pub const STATE_ENV: &str = "RIND_SHIM_STATE";

/// Where the shims' sockets are: `$RIND_SHIM_STATE/s`, else [`SOCKET_DIR`].
pub fn socket_dir() -> PathBuf {
    under_state(std::env::var_os(STATE_ENV), "s", SOCKET_DIR)
}

/// The runtime's state root (per namespace below it):
/// `$RIND_SHIM_STATE/runtime`, else [`RUNTIME_ROOT`].
pub fn runtime_root() -> PathBuf {
    under_state(std::env::var_os(STATE_ENV), "runtime", RUNTIME_ROOT)
}

fn under_state(state: Option<std::ffi::OsString>, name: &str, default: &str) -> PathBuf {
    match state.filter(|s| !s.is_empty()) {
        Some(s) => PathBuf::from(s).join(name),
        None => PathBuf::from(default),
    }
}

/// The OCI process file and pid file of exec `id` in `bundle`.
pub fn exec_files(bundle: &Path, id: &str) -> (PathBuf, PathBuf) {
    (bundle.join(format!("exec-{id}.json")), bundle.join(format!("exec-{id}.pid")))
}

/// rindd derives the same path (rind-common) and records it before it runs `start`.
pub fn socket_path(dir: &Path, containerd_address: &str, namespace: &str, id: &str) -> PathBuf {
    rind_common::shim::socket_path(dir, containerd_address, namespace, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_follow_the_state_env_else_the_defaults() {
        assert_eq!(under_state(None, "s", SOCKET_DIR), Path::new("/run/rind/s"));
        assert_eq!(under_state(Some("".into()), "runtime", RUNTIME_ROOT), Path::new("/run/rind/runtime"));
        assert_eq!(under_state(Some("/run/other".into()), "s", SOCKET_DIR), Path::new("/run/other/s"));
    }
}
