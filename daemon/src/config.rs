//! `/etc/rind/config.toml`: every setting optional; flags override it.
//!
//! ```toml
//! root = "/var/lib/rind"        # persistent: metadata, content, snapshots
//! state = "/run/rind"           # volatile: bundles, sockets
//! socket = "/run/rind/rind.sock"
//! shim = "/usr/local/bin/containerd-shim-rind-v2"
//! runtime = "rind-runtime"      # or runc, crun: any runc-compatible runtime
//! debug = false
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_PATH: &str = "/etc/rind/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
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
    fn missing_default_file_is_empty_but_named_file_must_exist() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("none.toml");
        assert_eq!(Config::load(&p, false).unwrap(), Config::default());
        assert!(Config::load(&p, true).unwrap_err().to_string().contains("none.toml"));
        std::fs::write(&p, "state = 3").unwrap();
        assert!(Config::load(&p, false).unwrap_err().to_string().contains("none.toml"));
    }
}
