//! `/etc/rind/config.toml`: every setting optional; flags override it.
//!
//! ```toml
//! root = "/var/lib/rind"        # persistent: metadata, content, snapshots
//! state = "/run/rind"           # volatile: bundles, sockets
//! socket = "/run/rind/rind.sock"
//! shim = "/usr/local/bin/containerd-shim-rind-v2"
//! runtime = "rind-runtime"      # or runc, crun: any runc-compatible runtime
//! debug = false
//! max_layer_size = "64GiB"      # uncompressed, per image layer: `load` refuses larger
//! max_concurrent_downloads = 3  # layers a pull downloads at once
//! certs_dir = "/etc/rind/certs.d"  # HOST[:PORT]/ca.crt, client.cert, client.key (docker's layout)
//! registry_timeout = 60         # seconds a registry may stay silent before its request fails
//! # bridge = "none"            # no networks: containers get --network none (docker's -b none)
//! bridge_subnet = "172.30.0.0/16"  # the default network's, when rindd first writes it
//! cni_plugin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]
//!
//! [registries."docker.io"]
//! mirrors = ["http://127.0.0.1:5000"]  # tried in order before the registry itself
//! insecure = false              # plain HTTP / unverified TLS allowed (always for localhost, 127.0.0.0/8)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_PATH: &str = "/etc/rind/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub root: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub shim: Option<PathBuf>,
    pub runtime: Option<String>,
    pub debug: Option<bool>,
    pub max_layer_size: Option<ByteSize>,
    pub max_concurrent_downloads: Option<usize>,
    pub certs_dir: Option<PathBuf>,
    pub registry_timeout: Option<u64>,
    pub bridge: Option<String>,
    pub bridge_subnet: Option<String>,
    pub cni_plugin_dirs: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub registries: std::collections::BTreeMap<String, RegistryConfig>,
}

/// One registry host's table: `[registries."HOST[:PORT]"]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    #[serde(default)]
    pub mirrors: Vec<String>,
    #[serde(default)]
    pub insecure: bool,
}

/// A size in bytes: a number, or a string with a binary unit as Docker
/// reads them ("512MiB", "64G", "1 TiB").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}: want a number and a unit, as \"64GiB\""))?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            _ => return Err(format!("invalid size {s:?}: the unit is one of B, KiB, MiB, GiB, TiB")),
        };
        n.checked_mul(1 << shift).map(ByteSize).ok_or_else(|| format!("invalid size {s:?}: too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Config {
    /// Reads `path`; a missing file is an empty config only when it is the
    /// default path (a file named with --config must exist).
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(s) => Config::parse(&s).map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
        }
    }

    pub fn parse(s: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_settings_and_refuse_unknown_keys() {
        let c = Config::parse("root = \"/r\"\nruntime = \"runc\"\ndebug = true\n").unwrap();
        assert_eq!(c.root.as_deref(), Some(Path::new("/r")));
        assert_eq!(c.runtime.as_deref(), Some("runc"));
        assert_eq!(c.debug, Some(true));
        let e = Config::parse("rot = \"/r\"").unwrap_err().to_string();
        assert!(e.contains("rot"), "{e}");
    }

    #[test]
    fn sizes_are_bytes_or_binary_units() {
        for (text, want) in [("512", 512), ("1KiB", 1024), ("64GiB", 64 << 30), ("64G", 64 << 30), ("2 mb", 2 << 20), ("1TiB", 1 << 40)] {
            assert_eq!(text.parse::<ByteSize>().unwrap(), ByteSize(want), "{text}");
        }
        for bad in ["", "GiB", "1.5GiB", "-1", "3 parsecs", "99999999999TiB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
        let c = Config::parse("max_layer_size = \"1GiB\"").unwrap();
        assert_eq!(c.max_layer_size, Some(ByteSize(1 << 30)));
        assert_eq!(Config::parse("max_layer_size = 4096").unwrap().max_layer_size, Some(ByteSize(4096)));
        let e = Config::parse("max_layer_size = \"lots\"").unwrap_err().to_string();
        assert!(e.contains("lots"), "{e}");
    }

    #[test]
    fn missing_default_file_is_empty_but_named_file_must_exist() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("none.toml");
        assert_eq!(Config::load(&p, false).unwrap(), Config::default());
        assert!(Config::load(&p, true).unwrap_err().to_string().contains("none.toml"));
        std::fs::write(&p, "state = 3").unwrap();
        assert!(Config::load(&p, false).unwrap_err().to_string().contains("none.toml"));
    }

    #[test]
    fn error_chain_names_the_cause_once() {
        let t = tempfile::tempdir().unwrap();
        let text = rind_common::error::chain(&Config::load(&t.path().join("none.toml"), true).unwrap_err());
        assert!(text.starts_with("read ") && text.contains("none.toml: "), "{text}");
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
    }
}
