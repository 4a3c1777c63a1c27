//! A container's record on disk and its status, derived from the live process.
//!
//! Status is never stored: it is read from the init process (`/proc/<pid>/stat`,
//! checked against the recorded start time so a recycled pid is not mistaken for
//! the container), the start socket (present until `start`) and the freezer.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::cgroups::CgroupPaths;
use crate::paths;

pub const STATE_VERSION: u32 = 1;
pub const OCI_VERSION: &str = "1.2.0";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container id {0:?} is invalid: use letters, digits, '_', '-', '+' and '.'")]
    InvalidId(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    Exists(String),
    #[error("lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parse {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot {verb} container {id}: it is {status}")]
    BadStatus { verb: &'static str, id: String, status: Status },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

impl Status {
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    pub fn can_exec(self) -> bool {
        matches!(self, Status::Created | Status::Running)
    }
    /// Without `--force`, only a stopped container may be deleted, as the spec
    /// says; a created one too, since containerd deletes created-but-never-started
    /// tasks without `--force` (runc allows it).
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Stopped | Status::Created)
    }
}

/// What rind-runtime records about a container, in `<root>/<id>/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot (field 22 of /proc/pid/stat).
    pub pid_start: u64,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: CgroupPaths,
    #[serde(default)]
    pub use_terminal: bool,
    /// The namespaces of the container, as `/proc/<pid>/ns/<name>`-joinable types.
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The mounts a container without a mount namespace made in the
    /// runtime's (rootfs/host.rs), which delete undoes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_mounts: Vec<crate::rootfs::host::HostMount>,
}

pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_-+.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

/// An exclusive flock on a container directory; released on drop.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<Self, StateError> {
        let file = File::open(dir).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                StateError::NotFound(dir.file_name().unwrap_or_default().to_string_lossy().into())
            } else {
                StateError::Lock { path: dir.to_path_buf(), source }
            }
        })?;
        // SAFETY: flock on an fd we own; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(StateError::Lock { path: dir.to_path_buf(), source: io::Error::last_os_error() });
        }
        Ok(DirLock { _file: file })
    }
}

impl State {
    pub fn path(root: &Path, id: &str) -> PathBuf {
        paths::container_dir(root, id).join(paths::STATE_FILE)
    }

    pub fn load(root: &Path, id: &str) -> Result<State, StateError> {
        validate_id(id)?;
        let path = Self::path(root, id);
        let data = fs::read(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                StateError::NotFound(id.to_string())
            } else {
                StateError::Read { path: path.clone(), source }
            }
        })?;
        serde_json::from_slice(&data).map_err(|source| StateError::Parse { path, source })
    }

    pub fn save(&self, root: &Path) -> Result<(), StateError> {
        let path = Self::path(root, &self.id);
        // Serializing a struct of strings, ints and maps cannot fail.
        let data = serde_json::to_vec(self).expect("state serializes");
        atomic::write_file(&path, &data).map_err(|source| StateError::Write { path, source })
    }

    pub fn dir(&self, root: &Path) -> PathBuf {
        paths::container_dir(root, &self.id)
    }

    /// Whether the recorded init process is still the one we started and not a zombie.
    pub fn init_alive(&self) -> bool {
        match proc_stat(self.pid) {
            Some(stat) => stat.start_time == self.pid_start && !matches!(stat.state, 'Z' | 'X' | 'x'),
            None => false,
        }
    }

    pub fn status(&self, root: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.dir(root).join(paths::START_SOCKET).exists() {
            return Status::Created;
        }
        if self.cgroup.is_frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    /// The state handed to hooks.
    pub fn hook_state(&self, status: Status) -> crate::hooks::HookState {
        crate::hooks::HookState {
            oci_version: OCI_VERSION.into(),
            id: self.id.clone(),
            status: status.to_string(),
            pid: self.pid,
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// The state as the OCI spec and runc print it.
    pub fn oci_json(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped { 0 } else { self.pid };
        serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "status": status,
            "pid": pid,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "annotations": self.annotations,
            "owner": "",
        })
    }
}

pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Parses `/proc/<pid>/stat`: the command name may hold spaces and parentheses,
/// so fields are counted from the last ')'.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    let data = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&data)
}

fn parse_stat(data: &str) -> Option<ProcStat> {
    let rest = &data[data.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); start time is field 22.
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_stat_handles_parens_in_name() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.start_time, 12345);
    }

    #[test]
    fn proc_stat_of_self_is_running() {
        let s = proc_stat(std::process::id() as i32).unwrap();
        assert!(s.start_time > 0);
        assert!(proc_stat(0).is_none());
    }

    #[test]
    fn validate_id_rejects_paths() {
        assert!(validate_id("abc-1_2.x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_messages_print_their_cause_once() {
        let e = StateError::Read { path: "/run/x/state.json".into(), source: io::Error::from_raw_os_error(libc::EACCES) };
        let text = rind_common::error::chain(&e);
        assert_eq!(text, "read /run/x/state.json: Permission denied (os error 13)");
        let e = crate::rootfs::RootfsError::Mount { what: "proc".into(), target: "/r/proc".into(), source: nix::Error::EPERM };
        assert_eq!(rind_common::error::chain(&e).matches("EPERM").count(), 1, "{}", rind_common::error::chain(&e));
    }

    #[test]
    fn status_rules_match_spec() {
        assert!(Status::Created.can_start());
        assert!(!Status::Stopped.can_start());
        assert!(!Status::Stopped.can_kill());
        assert!(!Status::Running.can_delete());
        assert!(Status::Stopped.can_delete());
    }
}
