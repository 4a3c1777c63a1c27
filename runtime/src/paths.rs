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

/// A unix socket path usable with bind(2) and connect(2) whatever its
/// length: sun_path holds 108 bytes, and engines give long roots (Docker's
/// `<exec-root>/runtime-runc/moby/<64-hex id>/start.sock` is over 110). A
/// long path goes through `/proc/self/fd/N/`, N an O_PATH handle on its
/// directory, held as long as the returned value lives.
pub struct SocketPath {
    pub path: PathBuf,
    _dir: Option<std::os::fd::OwnedFd>,
}

/// The longest path bind(2) takes (sun_path less its NUL).
const SUN_PATH_MAX: usize = 107;

impl SocketPath {
    pub fn new(path: &Path) -> std::io::Result<SocketPath> {
        use std::os::unix::ffi::OsStrExt;
        if path.as_os_str().as_bytes().len() <= SUN_PATH_MAX {
            return Ok(SocketPath { path: path.to_path_buf(), _dir: None });
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "a socket path needs a directory and a name"));
        };
        let fd = nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        let short = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))).join(name);
        Ok(SocketPath { path: short, _dir: Some(fd) })
    }
}

/// connect(2) to a unix socket at any path length.
pub fn connect(path: &Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    std::os::unix::net::UnixStream::connect(SocketPath::new(path)?.path)
}

/// bind(2) a unix socket at any path length.
pub fn bind(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    std::os::unix::net::UnixListener::bind(SocketPath::new(path)?.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_binds_and_connects_past_sun_path() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let sock = deep.join("start.sock");
        assert!(sock.as_os_str().len() > 108);
        let listen = SocketPath::new(&sock).unwrap();
        let l = std::os::unix::net::UnixListener::bind(&listen.path).unwrap();
        assert!(sock.exists(), "the socket is made where it was asked for");
        let connect = SocketPath::new(&sock).unwrap();
        std::os::unix::net::UnixStream::connect(&connect.path).unwrap();
        l.accept().unwrap();
    }

    #[test]
    fn socket_path_keeps_short_paths() {
        let p = Path::new("/run/x/start.sock");
        assert_eq!(SocketPath::new(p).unwrap().path, p);
    }
}
