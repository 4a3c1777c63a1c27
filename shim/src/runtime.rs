//! The OCI runtime, driven through runc's command line (so rind-runtime,
//! runc or crun can stand in). Every command's exit comes from the reaper,
//! through the `Spawner` the runtime is given.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::reaper::Reaper;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("run {binary}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{binary} {verb}: {message}")]
    Failed { binary: String, verb: String, message: String },
}

impl RuntimeError {
    /// The runtime knows no such container: runc, crun and rind-runtime
    /// all say "container X does not exist" (containerd matches the same).
    pub fn is_gone(&self) -> bool {
        matches!(self, RuntimeError::Failed { message, .. } if message.contains("does not exist"))
    }
}

/// The stdio a runtime command hands on to the container (create, exec).
#[derive(Default)]
pub struct Stdio3 {
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

/// Which runtime ran the container, kept in the bundle for `delete` after
/// the shim is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeChoice {
    pub binary: PathBuf,
    pub root: PathBuf,
}

/// How a runtime command runs and its exit is awaited: the shim's reaper
/// owns waitpid, so the shim waits there; unit tests use std's own wait.
#[async_trait]
pub trait Spawner: Send + Sync {
    /// Spawns `cmd`, writes `input` to its stdin and reads its stdout when
    /// they are piped; returns its exit status (128 + signal when killed)
    /// and its stdout.
    async fn run(&self, cmd: Command, input: Option<Vec<u8>>) -> std::io::Result<(u32, Vec<u8>)>;
}

#[async_trait]
impl Spawner for Reaper {
    async fn run(&self, mut cmd: Command, input: Option<Vec<u8>>) -> std::io::Result<(u32, Vec<u8>)> {
        let mut exits = self.subscribe();
        let mut child = cmd.spawn()?;
        // Our copies of the stdio handed to the child close now.
        drop(cmd);
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
        Ok((exits.wait_for(pid).await.unwrap_or(255), out))
    }
}

pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    pub spawner: Arc<dyn Spawner>,
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
        let (status, out) = self.spawner.run(cmd, input).await.map_err(|source| RuntimeError::Spawn { binary: binary.clone(), source })?;
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

/// A spawner that waits with std, for unit tests that run `/bin/true` and
/// the like as the runtime (no reaper: it would reap other tests' children).
#[cfg(test)]
pub mod testing {
    use super::*;

    pub struct StdSpawner;

    #[async_trait]
    impl Spawner for StdSpawner {
        async fn run(&self, mut cmd: Command, input: Option<Vec<u8>>) -> std::io::Result<(u32, Vec<u8>)> {
            tokio::task::spawn_blocking(move || {
                let mut child = cmd.spawn()?;
                drop(cmd);
                if let (Some(data), Some(mut sin)) = (input, child.stdin.take()) {
                    let _ = sin.write_all(&data);
                }
                let out = child.wait_with_output()?;
                use std::os::unix::process::ExitStatusExt;
                let status = out.status.code().map_or_else(|| 128 + out.status.signal().unwrap_or(0) as u32, |c| c as u32);
                Ok((status, out.stdout))
            })
            .await
            .map_err(std::io::Error::other)?
        }
    }

    /// A runtime that is `binary`, with its root and log in `dir`.
    pub fn runtime(binary: &str, dir: &Path) -> Runtime {
        Runtime { binary: binary.into(), root: dir.join("root"), log: dir.join("log.json"), spawner: Arc::new(StdSpawner) }
    }

    /// A container "c" in namespace "ns" with its bundle in `dir`, whose
    /// runtime is `binary` (none yet: as before Create).
    pub fn container(dir: &Path, binary: Option<&str>) -> Arc<crate::container::Container> {
        let c = crate::container::Container::new(
            "ns".into(),
            "c".into(),
            dir.to_path_buf(),
            Arc::new(StdSpawner),
            crate::events::Publisher::new(String::new(), "ns".into()),
        );
        if let Some(b) = binary {
            c.set_runtime(Arc::new(runtime(b, dir)));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_reports_the_runtime_failure_with_its_status() {
        let d = tempfile::tempdir().unwrap();
        testing::runtime("/bin/true", d.path()).run(&["start".into(), "c".into()], Stdio3::default(), None).await.unwrap();
        let e = testing::runtime("/bin/false", d.path()).run(&["start".into(), "c".into()], Stdio3::default(), None).await.unwrap_err();
        assert_eq!(e.to_string(), "/bin/false start: exit status 1");
    }

    #[tokio::test]
    async fn output_returns_what_the_runtime_printed() {
        let d = tempfile::tempdir().unwrap();
        let out = testing::runtime("/bin/echo", d.path()).output(&["ps".into()]).await.unwrap();
        assert!(String::from_utf8(out).unwrap().ends_with("--log-format json ps\n"));
    }

    #[test]
    fn last_error_reads_json_log() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.json");
        std::fs::write(&p, "{\"level\":\"info\",\"msg\":\"a\"}\n{\"level\":\"error\",\"msg\":\"mount proc: denied\"}\nnot json\n").unwrap();
        assert_eq!(last_error(&p).as_deref(), Some("mount proc: denied"));
        assert_eq!(last_error(&d.path().join("none")), None);
    }
}
