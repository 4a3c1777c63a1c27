//! Images: content, layers and their unpacking into snapshots.

pub mod archive;
pub mod save;
pub mod unpack;

/// What `rind load` accepts; past a limit the load is refused and what it
/// brought is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed bytes of one layer (the whole tar stream, trailing data
    /// included): `max_layer_size` in /etc/rind/config.toml.
    pub max_layer_size: u64,
    /// Layers of one image. Docker's overlay2 stops at 125, because its 125
    /// `l/<26 chars>` lowerdirs fill overlayfs's one page of mount options;
    /// ours are `<n>/fs` relative to the snapshots dir (`snapshots.rs`), 256 of
    /// them take under 2.5 KiB while there are fewer than 100000 snapshots,
    /// which leaves the rest of the page to upperdir and workdir. overlayfs
    /// itself stacks up to 500 (OVL_MAX_STACK).
    pub max_layers: usize,
    /// manifest.json, index.json, OCI manifests, indexes and image configs:
    /// they are read whole into memory. containerd's resolver refuses
    /// manifests past 4 MiB (`MaxManifestSize` in remotes/docker), as
    /// registries do.
    pub max_json_size: u64,
}

impl Limits {
    pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;
    pub const MAX_LAYERS: usize = 256;
    pub const MAX_JSON_SIZE: u64 = 4 << 20;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_layer_size: Limits::DEFAULT_MAX_LAYER_SIZE, max_layers: Limits::MAX_LAYERS, max_json_size: Limits::MAX_JSON_SIZE }
    }
}
