//! Talking to shims: the shim v2 `start`/`delete` commands and a ttrpc Task
//! client. Nothing rind-specific: any shim v2 binary would do.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::{Client, TaskClient};

/// The containerd namespace rindd's containers live in.
pub const NAMESPACE: &str = "rind";
/// How long a call to a shim may take before rindd gives up on it: long,
/// since Create and Delete run the runtime, which a loaded machine slows.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("run {binary} {action}: {source}")]
    Spawn {
        binary: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{binary} {action} failed: {stderr}")]
    Failed { binary: String, action: &'static str, stderr: String },
    #[error("connect to shim {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: ttrpc::Error,
    },
    #[error("shim {call}: {message}")]
    Call { call: &'static str, message: String, not_found: bool },
    #[error("shim delete output: {0}")]
    Decode(String),
}

impl ShimError {
    /// The shim answered that the task or process does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ShimError::Call { not_found: true, .. })
    }
}

/// How to reach and run shims.
#[derive(Debug, Clone)]
pub struct ShimBinary {
    pub path: PathBuf,
    /// The events endpoint the shims publish to (TTRPC_ADDRESS).
    pub events: PathBuf,
    /// Another runc-compatible runtime for the shim to use, if any.
    pub runtime: Option<String>,
}

impl ShimBinary {
    fn command(&self, id: &str, bundle: &Path, action: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.path);
        cmd.args(["-namespace", NAMESPACE, "-id", id, "-address"])
            .arg(&self.events)
            .args(["-publish-binary", "", action])
            .current_dir(bundle)
            .env("TTRPC_ADDRESS", &self.events)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(r) = &self.runtime {
            cmd.env("RIND_SHIM_RUNTIME", r);
        }
        cmd
    }

    async fn run(&self, id: &str, bundle: &Path, action: &'static str) -> Result<Vec<u8>, ShimError> {
        let binary = self.path.display().to_string();
        let out = self.command(id, bundle, action).output().await.map_err(|source| ShimError::Spawn {
            binary: binary.clone(),
            action,
            source,
        })?;
        if !out.status.success() {
            return Err(ShimError::Failed { binary, action, stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() });
        }
        Ok(out.stdout)
    }

    /// `start`: the shim daemonises in its own session and prints its address.
    pub async fn start(&self, id: &str, bundle: &Path) -> Result<String, ShimError> {
        let out = self.run(id, bundle, "start").await?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// `delete`: cleans up after a shim that is gone (runtime state, mounts,
    /// cgroups) and returns the init's exit as the bundle recorded it.
    pub async fn delete(&self, id: &str, bundle: &Path) -> Result<(u32, Option<std::time::SystemTime>), ShimError> {
        let out = self.run(id, bundle, "delete").await?;
        let r = api::DeleteResponse::parse_from_bytes(&out).map_err(|e| ShimError::Decode(e.to_string()))?;
        Ok((r.exit_status, r.exited_at.as_ref().map(to_system_time)))
    }
}

pub fn to_system_time(t: &containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32)
}

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(CALL_TIMEOUT.as_nanos() as i64)
}

fn call_err(call: &'static str) -> impl FnOnce(ttrpc::Error) -> ShimError {
    move |e| {
        let (message, not_found) = match &e {
            ttrpc::Error::RpcStatus(s) => (s.message().to_string(), s.code() == ttrpc::Code::NOT_FOUND),
            other => (other.to_string(), false),
        };
        ShimError::Call { call, message, not_found }
    }
}

/// A connected shim.
#[derive(Clone)]
pub struct Shim {
    client: TaskClient,
    pub address: String,
}

impl Shim {
    pub async fn connect(address: &str) -> Result<Shim, ShimError> {
        let client = Client::connect(address).await.map_err(|source| ShimError::Connect { address: address.to_string(), source })?;
        Ok(Shim { client: TaskClient::new(client), address: address.to_string() })
    }

    pub async fn create(&self, req: api::CreateTaskRequest) -> Result<u32, ShimError> {
        Ok(self.client.create(ctx(), &req).await.map_err(call_err("create"))?.pid)
    }

    pub async fn start(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        let req = api::StartRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        Ok(self.client.start(ctx(), &req).await.map_err(call_err("start"))?.pid)
    }

    pub async fn state(&self, id: &str, exec_id: &str) -> Result<api::StateResponse, ShimError> {
        let req = api::StateRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        self.client.state(ctx(), &req).await.map_err(call_err("state"))
    }

    pub async fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<(), ShimError> {
        let req = api::KillRequest { id: id.into(), exec_id: exec_id.into(), signal, all, ..Default::default() };
        self.client.kill(ctx(), &req).await.map_err(call_err("kill"))?;
        Ok(())
    }

    /// Waits without a deadline: a process may run for as long as it likes.
    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<api::WaitResponse, ShimError> {
        let req = api::WaitRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        self.client.wait(ttrpc::context::with_timeout(0), &req).await.map_err(call_err("wait"))
    }

    pub async fn delete(&self, id: &str, exec_id: &str) -> Result<api::DeleteResponse, ShimError> {
        let req = api::DeleteRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        self.client.delete(ctx(), &req).await.map_err(call_err("delete"))
    }

    pub async fn exec(&self, req: api::ExecProcessRequest) -> Result<(), ShimError> {
        self.client.exec(ctx(), &req).await.map_err(call_err("exec"))?;
        Ok(())
    }

    pub async fn pids(&self, id: &str) -> Result<Vec<u32>, ShimError> {
        let req = api::PidsRequest { id: id.into(), ..Default::default() };
        Ok(self.client.pids(ctx(), &req).await.map_err(call_err("pids"))?.processes.iter().map(|p| p.pid).collect())
    }

    pub async fn pause(&self, id: &str) -> Result<(), ShimError> {
        let req = api::PauseRequest { id: id.into(), ..Default::default() };
        self.client.pause(ctx(), &req).await.map_err(call_err("pause"))?;
        Ok(())
    }

    pub async fn resume(&self, id: &str) -> Result<(), ShimError> {
        let req = api::ResumeRequest { id: id.into(), ..Default::default() };
        self.client.resume(ctx(), &req).await.map_err(call_err("resume"))?;
        Ok(())
    }

    pub async fn resize(&self, id: &str, exec_id: &str, width: u32, height: u32) -> Result<(), ShimError> {
        let req = api::ResizePtyRequest { id: id.into(), exec_id: exec_id.into(), width, height, ..Default::default() };
        self.client.resize_pty(ctx(), &req).await.map_err(call_err("resize"))?;
        Ok(())
    }

    pub async fn close_stdin(&self, id: &str, exec_id: &str) -> Result<(), ShimError> {
        let req = api::CloseIORequest { id: id.into(), exec_id: exec_id.into(), stdin: true, ..Default::default() };
        self.client.close_io(ctx(), &req).await.map_err(call_err("close io"))?;
        Ok(())
    }

    pub async fn stats(&self, id: &str) -> Result<Option<containerd_shim_protos::protobuf::well_known_types::any::Any>, ShimError> {
        let req = api::StatsRequest { id: id.into(), ..Default::default() };
        Ok(self.client.stats(ctx(), &req).await.map_err(call_err("stats"))?.stats.into_option())
    }

    pub async fn shutdown(&self, id: &str) -> Result<(), ShimError> {
        let req = api::ShutdownRequest { id: id.into(), now: true, ..Default::default() };
        // The shim may close the connection as it goes: that is success.
        match self.client.shutdown(ttrpc::context::with_timeout(2_000_000_000), &req).await {
            Ok(_) | Err(ttrpc::Error::RemoteClosed) | Err(ttrpc::Error::LocalClosed) => Ok(()),
            Err(e) => Err(call_err("shutdown")(e)),
        }
    }
}
