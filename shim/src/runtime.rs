//! The OCI runtime, driven through runc's command line (so rind-runtime,
//! runc or crun can stand in). Every command's exit comes from the reaper.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::reaper::{self, Reaper};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("run {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{binary} {verb}: {message}")]
    Failed { binary: String, verb: String, message: String },
}

/// The stdio a runtime command hands on to the container (create, exec).
#[derive(Default)]
pub struct Stdio3 {
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    pub reaper: Arc<Reaper>,
}

fn stdio(f: Option<File>) -> Stdio {
    f.map(Stdio::from).unwrap_or_else(Stdio::null)
}

impl Runtime {
    /// Runs `args` with `io` (what is missing is /dev/null).
    pub async fn run(&self, args: &[String], io: Stdio3, input: Option<Vec<u8>>) -> Result<(), RuntimeError> {
        self.exec(args, io, input, false).await.map(drop)
    }

    /// Runs `args` and returns what it printed (ps, events --stats).
    pub async fn output(&self, args: &[String]) -> Result<Vec<u8>, RuntimeError> {
        self.exec(args, Stdio3::default(), None, true).await
    }

    /// The runtime's own error is read from its json log.
    async fn exec(&self, args: &[String], io: Stdio3, input: Option<Vec<u8>>, capture: bool) -> Result<Vec<u8>, RuntimeError> {
        let binary = self.binary.display().to_string();
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root).arg("--log").arg(&self.log).args(["--log-format", "json"]).args(args);
        cmd.stdin(if input.is_some() { Stdio::piped() } else { stdio(io.stdin) });
        cmd.stdout(if capture { Stdio::piped() } else { stdio(io.stdout) });
        cmd.stderr(stdio(io.stderr));
        let mut rx = self.reaper.subscribe();
        let mut child = cmd.spawn().map_err(|source| RuntimeError::Spawn { binary: binary.clone(), source })?;
        let pid = child.id() as i32;
        if let (Some(data), Some(mut sin)) = (input, child.stdin.take()) {
            let _ = sin.write_all(&data);
        }
        let out = match child.stdout.take() {
            Some(mut o) => tokio::task::spawn_blocking(move || {
                let mut buf = Vec::new();
                let _ = o.read_to_end(&mut buf);
                buf
            })
            .await
            .unwrap_or_default(),
            None => Vec::new(),
        };
        // Never waited on by std: the reaper owns waitpid.
        drop(child);
        let status = reaper::wait_for(&mut rx, pid).await.unwrap_or(255);
        if status != 0 {
            let verb = args.first().cloned().unwrap_or_default();
            return Err(RuntimeError::Failed {
                binary,
                verb,
                message: last_error(&self.log).unwrap_or_else(|| format!("exit status {status}")),
            });
        }
        Ok(out)
    }
}

/// The last error message in a json log (`{"level":"error","msg":…}`).
pub fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["level"] == "error" || v["level"] == "fatal").then(|| v["msg"].as_str().unwrap_or_default().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_reads_json_log() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.json");
        std::fs::write(&p, "{\"level\":\"info\",\"msg\":\"a\"}\n{\"level\":\"error\",\"msg\":\"mount proc: denied\"}\nnot json\n").unwrap();
        assert_eq!(last_error(&p).as_deref(), Some("mount proc: denied"));
        assert_eq!(last_error(&d.path().join("none")), None);
    }
}
