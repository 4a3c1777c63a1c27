//! Where a rind shim listens. The shim binds its socket there and rindd
//! records the same address before it starts the shim, so a shim is never
//! running at an address nobody wrote down.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The shims' sockets (short paths: sun_path is 108 bytes).
pub const SOCKET_DIR: &str = "/run/rind/s";

/// The socket of the shim of container `id` in `namespace`, started with
/// `-address containerd_address`: `<dir>/<sha256(address/namespace/id)[..16] in hex>`.
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
