//! rindd's root and state dirs: an exclusive lock on each keeps a second
//! rindd out, and both trees are root-only (they hold secrets: env in
//! meta.db and config.json, container output in the logs).
//!
//! ```text
//! <root>/            0700
//!   rindd.lock       0600  flock(LOCK_EX) held while rindd runs; the holder's pid
//!   containers/      0700
//! <state>/           0711  (the API socket inside is 0660 for its group, as
//!                          containerd keeps /run/containerd 0711)
//!   rindd.lock       0600
//!   containers/      0700  bundles
//!   s/               0700  shim sockets
//!   runtime/         0700  the runtime's state (runc keeps /run/runc 0700)
//! ```

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "rindd.lock";
pub const ROOT_MODE: u32 = 0o700;
pub const STATE_MODE: u32 = 0o711;
pub const PRIVATE_DIR: u32 = 0o700;
pub const PRIVATE_FILE: u32 = 0o600;
/// The shim's sockets and the runtime's state, under the state dir (the shim
/// learns its state dir from `RIND_SHIM_STATE`).
pub const SHIM_SOCKETS: &str = "s";
pub const RUNTIME_STATE: &str = "runtime";
/// The longest state dir path whose shim sockets (`<state>/s/<32 hex>`) fit
/// in sun_path's 108 bytes, with its terminating NUL.
pub const MAX_STATE_LEN: usize = 108 - 1 - "/s/".len() - 32;

#[derive(Debug, thiserror::Error)]
pub enum DirsError {
    #[error("another rindd (pid {pid}) holds {path}: stop it first, or give this one its own --root and --state")]
    Held { path: PathBuf, pid: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--state {path}: {len} bytes is too long for the shims' sockets below it (at most {MAX_STATE_LEN})")]
    StateTooLong { path: PathBuf, len: usize },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DirsError + 'a {
    move |source| DirsError::Io { op, path: path.to_path_buf(), source }
}

/// An exclusive flock on `<dir>/rindd.lock`, released when dropped (or when
/// the process dies, however it dies).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Takes the lock on `dir` (which must exist) and writes our pid into it;
/// refuses, naming the holder's pid, when another process holds it.
pub fn lock(dir: &Path) -> Result<DirLock, DirsError> {
    let path = dir.join(LOCK_FILE);
    // O_CLOEXEC (std's default): shims and runtimes must not inherit the lock.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE)
        .open(&path)
        .map_err(io_err("open", &path))?;
    // SAFETY: flock on an fd we own; no memory involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io_err("lock", &path)(e));
        }
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(DirsError::Held { path, pid: if pid.is_empty() { "unknown".into() } else { pid.to_string() } });
    }
    file.set_len(0).map_err(io_err("truncate", &path))?;
    file.rewind().map_err(io_err("rewind", &path))?;
    writeln!(file, "{}", std::process::id()).map_err(io_err("write", &path))?;
    file.set_permissions(Permissions::from_mode(PRIVATE_FILE)).map_err(io_err("chmod", &path))?;
    Ok(DirLock { _file: file })
}

/// Creates `dir` (and its parents) with `mode`, or gives an existing one
/// that mode (a tree an older rindd made 0755).
pub fn private_dir(dir: &Path, mode: u32) -> Result<(), DirsError> {
    DirBuilder::new().recursive(true).mode(mode).create(dir).map_err(io_err("create", dir))?;
    std::fs::set_permissions(dir, Permissions::from_mode(mode)).map_err(io_err("chmod", dir))
}

/// The held locks on the root and state dirs.
#[derive(Debug)]
pub struct Locks {
    _held: Vec<DirLock>,
}

/// Creates the root and state dirs, locks both (a second rindd stops here,
/// before it touches anything), then makes the trees root-only.
pub fn prepare(root: &Path, state: &Path) -> Result<Locks, DirsError> {
    let len = state.as_os_str().len();
    if len > MAX_STATE_LEN {
        return Err(DirsError::StateTooLong { path: state.to_path_buf(), len });
    }
    DirBuilder::new().recursive(true).mode(ROOT_MODE).create(root).map_err(io_err("create", root))?;
    DirBuilder::new().recursive(true).mode(STATE_MODE).create(state).map_err(io_err("create", state))?;
    let mut held = vec![lock(root)?];
    // One dir given as both: flock conflicts with our own first lock.
    let same = std::fs::canonicalize(root).ok().zip(std::fs::canonicalize(state).ok()).is_some_and(|(a, b)| a == b);
    if !same {
        held.push(lock(state)?);
    }
    private_dir(root, ROOT_MODE)?;
    if !same {
        private_dir(state, STATE_MODE)?;
    }
    private_dir(&root.join("containers"), PRIVATE_DIR)?;
    for d in ["containers", SHIM_SOCKETS, RUNTIME_STATE] {
        private_dir(&state.join(d), PRIVATE_DIR)?;
    }
    Ok(Locks { _held: held })
}

/// Writes `data` to `path` readable by root only (a bundle's config.json
/// holds the container's environment).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(PRIVATE_FILE).open(path)?;
    f.set_permissions(Permissions::from_mode(PRIVATE_FILE))?;
    f.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn lock_refuses_a_second_holder_naming_the_first_pid() {
        let t = tempfile::tempdir().unwrap();
        let held = lock(t.path()).unwrap();
        let e = lock(t.path()).unwrap_err();
        let pid = std::process::id().to_string();
        assert!(matches!(&e, DirsError::Held { pid: p, .. } if *p == pid), "{e}");
        assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
        assert_eq!(std::fs::read_to_string(t.path().join(LOCK_FILE)).unwrap().trim(), pid);
        drop(held);
        lock(t.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn prepare_locks_both_dirs_and_makes_them_private() {
        let t = tempfile::tempdir().unwrap();
        let (root, state) = (t.path().join("lib"), t.path().join("run"));
        // An older rindd's tree: world-readable.
        std::fs::create_dir_all(root.join("containers")).unwrap();
        std::fs::set_permissions(&root, Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(root.join("containers"), Permissions::from_mode(0o755)).unwrap();
        let locks = prepare(&root, &state).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("containers")), 0o700);
        assert_eq!(mode(&state), 0o711);
        for d in ["containers", "s", "runtime"] {
            assert_eq!(mode(&state.join(d)), 0o700, "{d}");
        }
        assert_eq!(mode(&root.join(LOCK_FILE)), 0o600);
        assert!(matches!(prepare(&root, &t.path().join("other")), Err(DirsError::Held { .. })), "same root");
        assert!(matches!(prepare(&t.path().join("other"), &state), Err(DirsError::Held { .. })), "same state");
        drop(locks);
        drop(prepare(&root, &root).expect("one dir as both root and state"));
    }

    #[test]
    fn prepare_refuses_a_state_dir_too_long_for_shim_sockets() {
        let long = PathBuf::from(format!("/run/{}", "x".repeat(MAX_STATE_LEN)));
        assert!(matches!(prepare(Path::new("/nonexistent"), &long), Err(DirsError::StateTooLong { .. })));
    }

    #[test]
    fn write_private_is_root_only_even_over_an_old_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.json");
        std::fs::write(&p, "old, longer content").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"{}").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{}");
    }
}
