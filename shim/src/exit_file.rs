//! The init's exit status on disk, written atomically before anyone is told,
//! so it survives the daemon and can be read even if the shim dies later.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub pid: i32,
    pub status: u32,
    /// RFC 3339 with nanoseconds.
    pub exited_at: String,
}

impl Exit {
    pub fn now(pid: i32, status: u32) -> Exit {
        Exit { pid, status, exited_at: humantime::format_rfc3339_nanos(SystemTime::now()).to_string() }
    }

    pub fn time(&self) -> SystemTime {
        humantime::parse_rfc3339(&self.exited_at).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

pub fn write(path: &Path, exit: &Exit) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(exit).expect("exit serializes"))?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

pub fn read(path: &Path) -> Option<Exit> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("exit");
        let e = Exit::now(42, 137);
        write(&p, &e).unwrap();
        assert_eq!(read(&p).unwrap(), e);
        assert!(e.time() > SystemTime::UNIX_EPOCH);
        assert!(read(&d.path().join("none")).is_none());
    }
}
