//! The shim v2 Task service over ttrpc: a thin adapter that turns each
//! request into a `Container` verb and its result into the response, and
//! maps errors to status codes in one place. The lifecycle (and the events
//! each verb publishes) is in `process/`, exits in `exits.rs`, stdio in
//! `stdio.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::{EnumOrUnknown, Message, MessageField};
use containerd_shim_protos::shim::oci::Options;
use containerd_shim_protos::shim::shim::*;
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::types::task::{ProcessInfo, Status};
use rind_common::error::chain;
use tokio::sync::Notify;
use ttrpc::r#async::TtrpcContext;

use crate::container::Container;
use crate::events::timestamp;
use crate::process::init::CreateOptions;
use crate::process::state::State;
use crate::process::{ProcessError, ProcessId};
use crate::rootfs::Mount;
use crate::stdio::{StdioConfig, StdioError};

/// The one mapping from our errors to ttrpc status codes. The message is
/// the whole chain of causes: the client sees nothing else.
impl From<ProcessError> for ttrpc::Error {
    fn from(e: ProcessError) -> Self {
        let code = match &e {
            e if e.is_not_found() => ttrpc::Code::NOT_FOUND,
            ProcessError::InState { .. }
            | ProcessError::InitOnly { .. }
            | ProcessError::AlreadyExists { .. }
            | ProcessError::NoTerminal { .. }
            | ProcessError::NotCreated
            | ProcessError::BadPid { .. }
            | ProcessError::Stats(_) => ttrpc::Code::FAILED_PRECONDITION,
            ProcessError::Stdio(StdioError::InvalidUri(_)) => ttrpc::Code::INVALID_ARGUMENT,
            ProcessError::Unimplemented(_) => ttrpc::Code::UNIMPLEMENTED,
            _ => ttrpc::Code::INTERNAL,
        };
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, chain(&e)))
    }
}

pub struct TaskService {
    container: Arc<Container>,
    pub shutdown: Arc<Notify>,
}

impl TaskService {
    pub fn new(container: Arc<Container>) -> Arc<TaskService> {
        Arc::new(TaskService { container, shutdown: Arc::new(Notify::new()) })
    }
}

fn task_status(s: State) -> EnumOrUnknown<Status> {
    EnumOrUnknown::new(match s {
        State::Created => Status::CREATED,
        State::Running => Status::RUNNING,
        State::Paused => Status::PAUSED,
        State::Stopped => Status::STOPPED,
        // Never reported: a deleted process is NOT_FOUND.
        State::Deleted => Status::UNKNOWN,
    })
}

fn create_options(req: &CreateTaskRequest) -> CreateOptions {
    let opts = req.options.as_ref().and_then(|a| Options::parse_from_bytes(&a.value).ok()).unwrap_or_default();
    CreateOptions {
        bundle: req.bundle.clone(),
        stdio: StdioConfig { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal },
        rootfs: req
            .rootfs
            .iter()
            .map(|m| Mount { kind: m.type_.clone(), source: m.source.clone(), target: m.target.clone(), options: m.options.clone() })
            .collect(),
        binary_name: opts.binary_name,
        root: opts.root,
        checkpoint: !req.checkpoint.is_empty(),
    }
}

#[async_trait]
impl Task for TaskService {
    #[tracing::instrument(skip_all, fields(exec_id = %req.exec_id))]
    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let (snap, stdio) = self.container.state(&ProcessId::from_exec_id(&req.exec_id)).await?;
        let mut r = StateResponse::new();
        r.id = if req.exec_id.is_empty() { self.container.id.clone() } else { req.exec_id.clone() };
        r.exec_id = req.exec_id.clone();
        r.bundle = self.container.bundle.display().to_string();
        r.pid = snap.pid as u32;
        r.status = task_status(snap.state);
        (r.stdin, r.stdout, r.stderr, r.terminal) = (stdio.stdin, stdio.stdout, stdio.stderr, stdio.terminal);
        if let Some(e) = &snap.exit {
            r.exit_status = e.status;
            r.exited_at = MessageField::some(timestamp(e.time()));
        }
        Ok(r)
    }

    #[tracing::instrument(skip_all, fields(id = %req.id))]
    async fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        let pid = self.container.create(create_options(&req)).await.inspect_err(|e| tracing::error!(error = %chain(e), "create"))?;
        let mut r = CreateTaskResponse::new();
        r.pid = pid as u32;
        Ok(r)
    }

    #[tracing::instrument(skip_all, fields(exec_id = %req.exec_id))]
    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let pid = self.container.start(&ProcessId::from_exec_id(&req.exec_id)).await?;
        if req.exec_id.is_empty() {
            // The container runs: from here the shim mostly waits.
            tokio::spawn(async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                crate::idle::shed_pages();
            });
        }
        let mut r = StartResponse::new();
        r.pid = pid as u32;
        Ok(r)
    }

    #[tracing::instrument(skip_all, fields(exec_id = %req.exec_id))]
    async fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let (pid, exit) = self.container.delete(&ProcessId::from_exec_id(&req.exec_id)).await?;
        let mut r = DeleteResponse::new();
        r.pid = pid as u32;
        r.exit_status = exit.status;
        r.exited_at = MessageField::some(timestamp(exit.time()));
        Ok(r)
    }

    async fn pids(&self, _ctx: &TtrpcContext, _req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let mut r = PidsResponse::new();
        r.processes = self
            .container
            .pids()
            .await?
            .into_iter()
            .map(|pid| {
                let mut pi = ProcessInfo::new();
                pi.pid = pid;
                pi
            })
            .collect();
        Ok(r)
    }

    #[tracing::instrument(skip_all)]
    async fn pause(&self, _ctx: &TtrpcContext, _req: PauseRequest) -> ttrpc::Result<Empty> {
        self.container.pause().await?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all)]
    async fn resume(&self, _ctx: &TtrpcContext, _req: ResumeRequest) -> ttrpc::Result<Empty> {
        self.container.resume().await?;
        Ok(Empty::new())
    }

    async fn checkpoint(&self, _ctx: &TtrpcContext, _req: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        Err(ProcessError::Unimplemented("checkpoint").into())
    }

    #[tracing::instrument(skip_all, fields(exec_id = %req.exec_id, signal = req.signal, all = req.all))]
    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        self.container.kill(&ProcessId::from_exec_id(&req.exec_id), req.signal, req.all).await?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(exec_id = %req.exec_id))]
    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        let stdio =
            StdioConfig { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal };
        let spec = req.spec.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        self.container.add_exec(&req.exec_id, stdio, spec).await?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(exec_id = %req.exec_id))]
    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        self.container.resize_pty(&ProcessId::from_exec_id(&req.exec_id), req.width, req.height).await?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(exec_id = %req.exec_id))]
    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        if req.stdin {
            self.container.close_stdin(&ProcessId::from_exec_id(&req.exec_id)).await?;
        }
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all)]
    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        self.container.update(req.resources.as_ref().map(|a| a.value.clone()).unwrap_or_default()).await?;
        Ok(Empty::new())
    }

    #[tracing::instrument(skip_all, fields(exec_id = %req.exec_id))]
    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let e = self.container.wait(&ProcessId::from_exec_id(&req.exec_id)).await?;
        let mut r = WaitResponse::new();
        r.exit_status = e.status;
        r.exited_at = MessageField::some(timestamp(e.time()));
        Ok(r)
    }

    async fn stats(&self, _ctx: &TtrpcContext, _req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let data = self.container.stats().await?;
        let v2 = nix::sys::statfs::statfs("/sys/fs/cgroup").is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        let mut r = StatsResponse::new();
        r.stats = MessageField::some(crate::metrics::to_metrics(&data, v2));
        Ok(r)
    }

    async fn connect(&self, _ctx: &TtrpcContext, _req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        let mut r = ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.task_pid = self.container.init_pid() as u32;
        r.version = env!("CARGO_PKG_VERSION").into();
        Ok(r)
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> ttrpc::Result<Empty> {
        if self.container.can_shut_down() {
            self.shutdown.notify_one();
        }
        Ok(Empty::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::state::Verb;

    fn status(e: ProcessError) -> (ttrpc::Code, String) {
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => (s.code(), s.message().to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_map_to_codes_that_name_the_state() {
        let (code, msg) = status(ProcessError::InState { process: ProcessId::Init, verb: Verb::Start, state: State::Stopped });
        assert_eq!((code, msg.as_str()), (ttrpc::Code::FAILED_PRECONDITION, "cannot start process init: it is stopped"));
        let (code, _) = status(ProcessError::InState { process: ProcessId::Init, verb: Verb::Delete, state: State::Deleted });
        assert_eq!(code, ttrpc::Code::NOT_FOUND);
        let (code, _) = status(ProcessError::InState { process: ProcessId::Exec("e".into()), verb: Verb::Kill, state: State::Stopped });
        assert_eq!(code, ttrpc::Code::NOT_FOUND, "kill of a finished process");
        let (code, msg) = status(ProcessError::NotFound { process: ProcessId::Exec("e1".into()) });
        assert_eq!((code, msg.as_str()), (ttrpc::Code::NOT_FOUND, "exec e1 not found"));
        assert_eq!(status(ProcessError::Stdio(StdioError::InvalidUri("x".into()))).0, ttrpc::Code::INVALID_ARGUMENT);
        assert_eq!(status(ProcessError::Unimplemented("checkpoint")).0, ttrpc::Code::UNIMPLEMENTED);
    }

    #[test]
    fn error_message_carries_the_cause_once() {
        let e = ProcessError::Io { op: "read", path: "/b/init.pid".into(), source: std::io::Error::from_raw_os_error(libc::ENOENT) };
        let (code, msg) = status(e);
        assert_eq!(code, ttrpc::Code::INTERNAL);
        assert_eq!(msg.matches("No such file").count(), 1, "{msg}");
        assert!(msg.starts_with("read /b/init.pid: "), "{msg}");
    }

    #[test]
    fn create_options_read_the_runc_options() {
        let mut req = CreateTaskRequest::new();
        req.stdout = "/fifo/out".into();
        req.terminal = true;
        let mut opts = Options::new();
        opts.binary_name = "/usr/sbin/runc".into();
        let mut any = containerd_shim_protos::protobuf::well_known_types::any::Any::new();
        any.value = opts.write_to_bytes().unwrap();
        req.options = MessageField::some(any);
        let o = create_options(&req);
        assert_eq!((o.binary_name.as_str(), o.stdio.stdout.as_str(), o.stdio.terminal), ("/usr/sbin/runc", "/fifo/out", true));
        assert!(!o.checkpoint);
    }
}
