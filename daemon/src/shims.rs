//! Talking to shims: the shim v2 `start`/`delete` commands and a ttrpc Task
//! client. Nothing rind-specific: any shim v2 binary would do. The daemon
//! sees both through the [`ShimLauncher`] and [`TaskApi`] traits, so its
//! logic can be tested against a fake.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::{Client, TaskClient};

/// The containerd namespace rindd's containers live in.
pub const NAMESPACE: &str = "rind";
/// How long a call to a shim may take before rindd gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Calls that run the runtime (create, start, delete, exec, pause, resume):
/// a loaded machine slows a runtime's fork, namespaces and mounts many times
/// over (a create took over 60 s in the emulated guest under a CPU hog), and
/// containerd sets no deadline on them at all. A shim that dies meanwhile is
/// noticed through its closed connection, not this.
const RUNTIME_CALL_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("run {binary} {action}")]
    Spawn {
        binary: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{binary} {action} failed: {stderr}")]
    Failed { binary: String, action: &'static str, stderr: String },
    #[error("connect to shim {address}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
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
    /// Where the shim of container `id` listens once started: known before
    /// `start`, so it can be recorded before the shim exists.
    fn address(&self, id: &str) -> String;
    /// `start`: launches the container's shim; returns its address.
    async fn start(&self, id: &str, bundle: &Path) -> Result<String, ShimError>;
    /// `delete`: cleans up after a shim that is gone and returns the init's
    /// exit status and time from its DeleteResponse. No time means the shim
    /// had no record of the exit: the status is made up (the runc shim and
    /// ours say 137), and rindd does not believe it.
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
    /// Resolves once this connection to the shim is gone: the shim exited or
    /// was killed (the kernel closes its end), or the client was dropped.
    /// Independent of `self`, so a watcher need not keep the client alive.
    fn closed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// The shim v2 binary rindd runs, and where its shims publish events.
#[derive(Debug, Clone)]
pub struct ShimBinary {
    pub path: PathBuf,
    /// The events endpoint the shims publish to (TTRPC_ADDRESS).
    pub events: PathBuf,
    /// Another runc-compatible runtime for the shim to use, if any.
    pub runtime: Option<String>,
    /// rindd's state dir, which the shim keeps its sockets (`s/`) and the
    /// runtime's state (`runtime/`) under (RIND_SHIM_STATE): two rindd with
    /// their own `--state` share neither.
    pub state: PathBuf,
}

impl ShimBinary {
    /// Where our shim puts its sockets (RIND_SHIM_STATE tells it `state`);
    /// the name in it is `rind_common::shim::socket_path`'s, as the shim's.
    fn socket_dir(&self) -> PathBuf {
        self.state.join("s")
    }

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
        cmd.env("RIND_SHIM_STATE", &self.state);
        if action == "start" {
            // `start` dies with rindd: a rindd killed while `start` runs leaves
            // either no shim or one listening at the address it recorded,
            // never one that comes up after the next rindd looked for it.
            // The shim server it forks does not inherit this (prctl(2)).
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: prctl and getppid are async-signal-safe; nothing else
            // runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // rindd died before the prctl: it cannot fire any more.
                    if libc::getppid() != parent {
                        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                    }
                    Ok(())
                });
            }
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
    fn address(&self, id: &str) -> String {
        let events = self.events.display().to_string();
        format!("unix://{}", rind_common::shim::socket_path(&self.socket_dir(), &events, NAMESPACE, id).display())
    }

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

fn runtime_ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(RUNTIME_CALL_TIMEOUT.as_nanos() as i64)
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
    /// True once the connection ended (see [`Watched`]).
    closed: watch::Receiver<bool>,
}

impl Shim {
    async fn connect(address: &str) -> Result<Shim, ShimError> {
        let err = |source| ShimError::Connect { address: address.to_string(), source };
        let path = address.strip_prefix("unix://").unwrap_or(address);
        let stream = tokio::net::UnixStream::connect(path).await.map_err(err)?;
        let (tx, closed) = watch::channel(false);
        let socket = ttrpc::r#async::transport::Socket::new(Watched { stream, closed: tx });
        Ok(Shim { client: TaskClient::new(Client::new(socket)), address: address.to_string(), closed })
    }
}

/// The socket under a shim's ttrpc client, which says when the connection
/// ends. ttrpc's reader always has a read pending, so a shim's death (the
/// kernel closes its end: EOF or ECONNRESET) is seen at once, with no call
/// in flight; and when the client is dropped, so is the sender.
struct Watched {
    stream: tokio::net::UnixStream,
    closed: watch::Sender<bool>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.stream).poll_read(cx, buf);
        let ended = match &r {
            // Nothing read into room for something: end of file.
            Poll::Ready(Ok(())) => buf.filled().len() == before && buf.remaining() > 0,
            Poll::Ready(Err(_)) => true,
            Poll::Pending => false,
        };
        if ended {
            me.closed.send_replace(true);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Err(_))) {
            me.closed.send_replace(true);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[async_trait]
impl TaskApi for Shim {
    fn address(&self) -> &str {
        &self.address
    }

    async fn create(&self, req: api::CreateTaskRequest) -> Result<u32, ShimError> {
        Ok(self.client.create(runtime_ctx(), &req).await.map_err(call_err("create"))?.pid)
    }

    async fn start(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        let req = api::StartRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        Ok(self.client.start(runtime_ctx(), &req).await.map_err(call_err("start"))?.pid)
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
        self.client.delete(runtime_ctx(), &req).await.map_err(call_err("delete"))
    }

    async fn exec(&self, req: api::ExecProcessRequest) -> Result<(), ShimError> {
        self.client.exec(runtime_ctx(), &req).await.map_err(call_err("exec"))?;
        Ok(())
    }

    async fn pids(&self, id: &str) -> Result<Vec<u32>, ShimError> {
        let req = api::PidsRequest { id: id.into(), ..Default::default() };
        Ok(self.client.pids(ctx(), &req).await.map_err(call_err("pids"))?.processes.iter().map(|p| p.pid).collect())
    }

    async fn pause(&self, id: &str) -> Result<(), ShimError> {
        let req = api::PauseRequest { id: id.into(), ..Default::default() };
        self.client.pause(runtime_ctx(), &req).await.map_err(call_err("pause"))?;
        Ok(())
    }

    async fn resume(&self, id: &str) -> Result<(), ShimError> {
        let req = api::ResumeRequest { id: id.into(), ..Default::default() };
        self.client.resume(runtime_ctx(), &req).await.map_err(call_err("resume"))?;
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

    fn closed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let mut rx = self.closed.clone();
        // Err: the sender is gone with the connection; closed all the same.
        Box::pin(async move {
            let _ = rx.wait_for(|closed| *closed).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ttrpc server that answers nothing, on a socket in `dir`.
    fn listener(dir: &Path) -> (std::os::unix::net::UnixListener, String) {
        let path = dir.join("shim.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        (l, format!("unix://{}", path.display()))
    }

    #[tokio::test]
    async fn closed_resolves_when_the_shim_end_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (l, address) = listener(dir.path());
        let shim = Shim::connect(&address).await.expect("connect");
        let (peer, _) = l.accept().expect("accept");
        let closed = shim.closed();
        assert!(!*shim.closed.borrow(), "open while the shim holds its end");
        // The shim dies: the kernel closes its end of the connection.
        drop(peer);
        closed.await;
        assert!(*shim.closed.borrow());
    }

    #[tokio::test]
    async fn closed_resolves_when_the_client_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (l, address) = listener(dir.path());
        let shim = Shim::connect(&address).await.expect("connect");
        let _peer = l.accept().expect("accept");
        let closed = shim.closed();
        drop(shim);
        closed.await;
    }

    #[test]
    fn address_is_the_socket_the_shim_binds() {
        let b = ShimBinary { path: "/x/shim".into(), events: "/run/rind/events.sock".into(), runtime: None, state: "/run/rind".into() };
        let sock = rind_common::shim::socket_path(Path::new(rind_common::shim::SOCKET_DIR), "/run/rind/events.sock", NAMESPACE, "abc");
        assert_eq!(b.address("abc"), format!("unix://{}", sock.display()));
        assert_ne!(b.address("abc"), b.address("abd"));
    }
}
