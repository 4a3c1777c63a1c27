//! Talking to shims: the shim v2 `start`/`delete` commands and a ttrpc Task
//! client. Nothing rind-specific: any shim v2 binary would do. The daemon
//! sees both through the [`ShimLauncher`] and [`TaskApi`] traits, so its
//! logic can be tested against a fake.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

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

/// Runs shims and connects to them: the shim v2 binary's `start` and
/// `delete` commands, and a Task client on a shim's address.
#[async_trait]
pub trait ShimLauncher: Send + Sync {
    /// `start`: launches the container's shim; returns its address.
    async fn start(&self, id: &str, bundle: &Path) -> Result<String, ShimError>;
    /// `delete`: cleans up after a shim that is gone and returns the exit
    /// it found in the bundle (or made up, if there was none).
    async fn delete(&self, id: &str, bundle: &Path) -> Result<(u32, Option<SystemTime>), ShimError>;
    /// A Task client on a running shim.
    async fn connect(&self, address: &str) -> Result<Arc<dyn TaskApi>, ShimError>;
}

/// The Task API of one connected shim (containerd's `task.v2.Task`).
#[async_trait]
pub trait TaskApi: Send + Sync {
    /// The address this client is connected to.
    fn address(&self) -> &str;
    /// Creates the task; returns the init's pid.
    async fn create(&self, req: api::CreateTaskRequest) -> Result<u32, ShimError>;
    async fn start(&self, id: &str, exec_id: &str) -> Result<u32, ShimError>;
    async fn state(&self, id: &str, exec_id: &str) -> Result<api::StateResponse, ShimError>;
    async fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<(), ShimError>;
    /// Waits without a deadline: a process may run for as long as it likes.
    async fn wait(&self, id: &str, exec_id: &str) -> Result<api::WaitResponse, ShimError>;
    async fn delete(&self, id: &str, exec_id: &str) -> Result<api::DeleteResponse, ShimError>;
    async fn exec(&self, req: api::ExecProcessRequest) -> Result<(), ShimError>;
    async fn pids(&self, id: &str) -> Result<Vec<u32>, ShimError>;
    async fn pause(&self, id: &str) -> Result<(), ShimError>;
    async fn resume(&self, id: &str) -> Result<(), ShimError>;
    async fn resize(&self, id: &str, exec_id: &str, width: u32, height: u32) -> Result<(), ShimError>;
    async fn close_stdin(&self, id: &str, exec_id: &str) -> Result<(), ShimError>;
    async fn stats(&self, id: &str) -> Result<Option<containerd_shim_protos::protobuf::well_known_types::any::Any>, ShimError>;
    /// Tells the shim to exit; a connection it closes as it goes is success.
    async fn shutdown(&self, id: &str) -> Result<(), ShimError>;
}

/// The shim v2 binary rindd runs, and where its shims publish events.
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
}

#[async_trait]
impl ShimLauncher for ShimBinary {
    /// The shim daemonises in its own session and prints its address.
    async fn start(&self, id: &str, bundle: &Path) -> Result<String, ShimError> {
        let out = self.run(id, bundle, "start").await?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Cleans runtime state, mounts and cgroups; the exit is the bundle's.
    async fn delete(&self, id: &str, bundle: &Path) -> Result<(u32, Option<SystemTime>), ShimError> {
        let out = self.run(id, bundle, "delete").await?;
        let r = api::DeleteResponse::parse_from_bytes(&out).map_err(|e| ShimError::Decode(e.to_string()))?;
        Ok((r.exit_status, r.exited_at.as_ref().map(to_system_time)))
    }

    async fn connect(&self, address: &str) -> Result<Arc<dyn TaskApi>, ShimError> {
        Ok(Arc::new(Shim::connect(address).await?))
    }
}

pub fn to_system_time(t: &containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp) -> SystemTime {
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

/// A connected shim: a ttrpc Task client.
#[derive(Clone)]
pub struct Shim {
    client: TaskClient,
    address: String,
}

impl Shim {
    async fn connect(address: &str) -> Result<Shim, ShimError> {
        let client = Client::connect(address).await.map_err(|source| ShimError::Connect { address: address.to_string(), source })?;
        Ok(Shim { client: TaskClient::new(client), address: address.to_string() })
    }
}

#[async_trait]
impl TaskApi for Shim {
    fn address(&self) -> &str {
        &self.address
    }

    async fn create(&self, req: api::CreateTaskRequest) -> Result<u32, ShimError> {
        Ok(self.client.create(ctx(), &req).await.map_err(call_err("create"))?.pid)
    }

    async fn start(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        let req = api::StartRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        Ok(self.client.start(ctx(), &req).await.map_err(call_err("start"))?.pid)
    }

    async fn state(&self, id: &str, exec_id: &str) -> Result<api::StateResponse, ShimError> {
        let req = api::StateRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        self.client.state(ctx(), &req).await.map_err(call_err("state"))
    }

    async fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<(), ShimError> {
        let req = api::KillRequest { id: id.into(), exec_id: exec_id.into(), signal, all, ..Default::default() };
        self.client.kill(ctx(), &req).await.map_err(call_err("kill"))?;
        Ok(())
    }

    async fn wait(&self, id: &str, exec_id: &str) -> Result<api::WaitResponse, ShimError> {
        let req = api::WaitRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        self.client.wait(ttrpc::context::with_timeout(0), &req).await.map_err(call_err("wait"))
    }

    async fn delete(&self, id: &str, exec_id: &str) -> Result<api::DeleteResponse, ShimError> {
        let req = api::DeleteRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        self.client.delete(ctx(), &req).await.map_err(call_err("delete"))
    }

    async fn exec(&self, req: api::ExecProcessRequest) -> Result<(), ShimError> {
        self.client.exec(ctx(), &req).await.map_err(call_err("exec"))?;
        Ok(())
    }

    async fn pids(&self, id: &str) -> Result<Vec<u32>, ShimError> {
        let req = api::PidsRequest { id: id.into(), ..Default::default() };
        Ok(self.client.pids(ctx(), &req).await.map_err(call_err("pids"))?.processes.iter().map(|p| p.pid).collect())
    }

    async fn pause(&self, id: &str) -> Result<(), ShimError> {
        let req = api::PauseRequest { id: id.into(), ..Default::default() };
        self.client.pause(ctx(), &req).await.map_err(call_err("pause"))?;
        Ok(())
    }

    async fn resume(&self, id: &str) -> Result<(), ShimError> {
        let req = api::ResumeRequest { id: id.into(), ..Default::default() };
        self.client.resume(ctx(), &req).await.map_err(call_err("resume"))?;
        Ok(())
    }

    async fn resize(&self, id: &str, exec_id: &str, width: u32, height: u32) -> Result<(), ShimError> {
        let req = api::ResizePtyRequest { id: id.into(), exec_id: exec_id.into(), width, height, ..Default::default() };
        self.client.resize_pty(ctx(), &req).await.map_err(call_err("resize"))?;
        Ok(())
    }

    async fn close_stdin(&self, id: &str, exec_id: &str) -> Result<(), ShimError> {
        let req = api::CloseIORequest { id: id.into(), exec_id: exec_id.into(), stdin: true, ..Default::default() };
        self.client.close_io(ctx(), &req).await.map_err(call_err("close io"))?;
        Ok(())
    }

    async fn stats(&self, id: &str) -> Result<Option<containerd_shim_protos::protobuf::well_known_types::any::Any>, ShimError> {
        let req = api::StatsRequest { id: id.into(), ..Default::default() };
        Ok(self.client.stats(ctx(), &req).await.map_err(call_err("stats"))?.stats.into_option())
    }

    async fn shutdown(&self, id: &str) -> Result<(), ShimError> {
        let req = api::ShutdownRequest { id: id.into(), now: true, ..Default::default() };
        // The shim may close the connection as it goes: that is success.
        match self.client.shutdown(ttrpc::context::with_timeout(2_000_000_000), &req).await {
            Ok(_) | Err(ttrpc::Error::RemoteClosed) | Err(ttrpc::Error::LocalClosed) => Ok(()),
            Err(e) => Err(call_err("shutdown")(e)),
        }
    }
}
