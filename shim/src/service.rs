//! The shim v2 Task service: one container (the init) and its exec
//! processes. Runtime work goes through `runtime.rs`; exits come from the
//! reaper through `monitor_exits`, which records them (the init's on disk
//! first) and then publishes TaskExit.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::{EnumOrUnknown, Message, MessageField};
use containerd_shim_protos::shim::oci::Options;
use containerd_shim_protos::shim::shim::*;
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::topics;
use containerd_shim_protos::types::task::{ProcessInfo, Status};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use ttrpc::r#async::TtrpcContext;

use crate::events::{timestamp, Publisher};
use crate::exit_file::{self, Exit};
use crate::logs;
use crate::paths;
use crate::reaper::Reaper;
use crate::runtime::{Runtime, RuntimeError, Stdio3};

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} is not implemented by containerd-shim-rind-v2 yet")]
    Unimplemented(&'static str),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The one mapping from our errors to ttrpc status codes.
impl From<ShimError> for ttrpc::Error {
    fn from(e: ShimError) -> Self {
        let code = match &e {
            ShimError::NotFound(_) => ttrpc::Code::NOT_FOUND,
            ShimError::FailedPrecondition(_) => ttrpc::Code::FAILED_PRECONDITION,
            ShimError::InvalidArgument(_) => ttrpc::Code::INVALID_ARGUMENT,
            ShimError::Unimplemented(_) => ttrpc::Code::UNIMPLEMENTED,
            ShimError::Runtime(_) | ShimError::Io { .. } => ttrpc::Code::INTERNAL,
        };
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, e.to_string()))
    }
}

type Result<T> = std::result::Result<T, ShimError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PStatus {
    Created,
    Running,
    Paused,
    Stopped,
}

struct Proc {
    pid: i32,
    status: PStatus,
    exit: Option<Exit>,
    /// Set when the reaper saw the exit; `exit` follows once the output is drained.
    exiting: bool,
    /// Copies of the output the shim owns (log files), drained before the exit is told.
    io_tasks: Vec<tokio::task::JoinHandle<()>>,
    io: (String, String, String),
    terminal: bool,
    exited: Arc<Notify>,
    /// exec only: the OCI process JSON.
    spec: Option<Vec<u8>>,
    /// The pty master of a terminal process.
    console: Option<Arc<std::os::fd::OwnedFd>>,
    /// Ends the copy of stdin into the pty (CloseIO).
    stdin_closer: Option<crate::console::StdinCloser>,
    /// A writer the shim holds on the stdin fifo, so the process sees EOF
    /// only on CloseIO, not whenever a client (rindd, an attach) goes away.
    stdin_hold: Option<File>,
}

/// What starting a process with its stdio leaves to keep.
struct IoHandles {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    terminal: Option<Terminal>,
    stdin_hold: Option<File>,
}

impl Proc {
    fn new(io: (String, String, String), terminal: bool, spec: Option<Vec<u8>>) -> Proc {
        Proc {
            pid: 0,
            status: PStatus::Created,
            exit: None,
            exiting: false,
            io_tasks: Vec::new(),
            io,
            terminal,
            exited: Arc::new(Notify::new()),
            spec,
            console: None,
            stdin_closer: None,
            stdin_hold: None,
        }
    }
}

#[derive(Default)]
struct Tasks {
    init: Option<Proc>,
    execs: HashMap<String, Proc>,
    /// Exits of pids not yet recorded (a process can die before we learn its pid).
    unclaimed: HashMap<i32, u32>,
}

impl Tasks {
    fn get(&mut self, exec_id: &str) -> Result<&mut Proc> {
        let p = if exec_id.is_empty() { self.init.as_mut() } else { self.execs.get_mut(exec_id) };
        p.ok_or_else(|| ShimError::NotFound(if exec_id.is_empty() { "task".into() } else { format!("exec {exec_id}") }))
    }
}

/// What `delete` needs after the service is gone: which runtime ran the container.
#[derive(Debug, Serialize, Deserialize)]
pub struct RuntimeChoice {
    pub binary: PathBuf,
    pub root: PathBuf,
}

pub const RUNTIME_CHOICE_FILE: &str = "runtime.json";

pub struct TaskService {
    pub namespace: String,
    pub id: String,
    pub bundle: PathBuf,
    reaper: Arc<Reaper>,
    runtime: Mutex<Option<Arc<Runtime>>>,
    publisher: Arc<Publisher>,
    tasks: Arc<Mutex<Tasks>>,
    deleted: Arc<AtomicBool>,
    rootfs_mounted: AtomicBool,
    pub shutdown: Arc<Notify>,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ShimError + 'a {
    move |source| ShimError::Io { op, path: path.display().to_string(), source }
}

/// A terminal process's pty master and the closer of its stdin copy.
type Terminal = (Arc<std::os::fd::OwnedFd>, Option<crate::console::StdinCloser>);

type Copy = (&'static str, std::os::fd::OwnedFd, logs::Target, Arc<Mutex<logs::LogFile>>);

/// The stdio handed to the runtime (fifos opened, pipes for files the shim
/// writes) and the copies to run once the process exists.
fn setup_stdio(stdin: &str, stdout: &str, stderr: &str, id: &str, namespace: &str) -> Result<(Stdio3, Vec<Copy>)> {
    if let Some(logs::Target::Binary { path, args }) = logs::parse_target(stdout).map_err(ShimError::InvalidArgument)? {
        let (out, err) = logs::start_binary_logger(&path, &args, id, namespace).map_err(io_err("start logger", &path))?;
        let stdin = match logs::parse_target(stdin).map_err(ShimError::InvalidArgument)? {
            Some(logs::Target::Fifo(p)) => open_fifo(&p.display().to_string(), false)?,
            _ => None,
        };
        // stderr goes to the same logger, as containerd's binary IO does.
        let _ = stderr;
        return Ok((Stdio3 { stdin, stdout: Some(out), stderr: Some(err) }, Vec::new()));
    }
    let mut copies: Vec<Copy> = Vec::new();
    let mut files: Vec<(PathBuf, Arc<Mutex<logs::LogFile>>)> = Vec::new();
    let mut out = |stream: &'static str, uri: &str| -> Result<Option<File>> {
        match logs::parse_target(uri).map_err(ShimError::InvalidArgument)? {
            None => Ok(None),
            Some(logs::Target::Fifo(p)) => open_fifo(&p.display().to_string(), true),
            Some(target) => {
                let (path, max_size, max_files) = match &target {
                    logs::Target::Cri { path, max_size, max_files } => (path.clone(), *max_size, *max_files),
                    logs::Target::Raw(path) => (path.clone(), 0, 1),
                    logs::Target::Fifo(_) | logs::Target::Binary { .. } => {
                        return Err(ShimError::InvalidArgument(format!("{uri}: a binary logger takes stdout and stderr together")))
                    }
                };
                // stdout and stderr naming one file share it.
                let file = match files.iter().find(|(p, _)| *p == path) {
                    Some((_, f)) => f.clone(),
                    None => {
                        let f = Arc::new(Mutex::new(logs::LogFile::open(&path, max_size, max_files).map_err(io_err("open log", &path))?));
                        files.push((path.clone(), f.clone()));
                        f
                    }
                };
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| ShimError::Io {
                    op: "create pipe for",
                    path: stream.into(),
                    source: e.into(),
                })?;
                copies.push((stream, r, target, file));
                Ok(Some(File::from(w)))
            }
        }
    };
    let stdout = out("stdout", stdout)?;
    let stderr = out("stderr", stderr)?;
    let stdin = match logs::parse_target(stdin).map_err(ShimError::InvalidArgument)? {
        None => None,
        Some(logs::Target::Fifo(p)) => open_fifo(&p.display().to_string(), false)?,
        Some(_) => return Err(ShimError::InvalidArgument(format!("stdin {stdin}: only a fifo can be stdin"))),
    };
    Ok((Stdio3 { stdin, stdout, stderr }, copies))
}

fn spawn_copies(copies: Vec<Copy>) -> Vec<tokio::task::JoinHandle<()>> {
    copies.into_iter().map(|(stream, fd, target, file)| tokio::spawn(logs::copy(stream, fd, target, file))).collect()
}

/// Opens a stdio fifo given by containerd.
fn open_fifo(path: &str, write: bool) -> Result<Option<File>> {
    let p = Path::new(path);
    let mut o = OpenOptions::new();
    if write {
        // The reader (ctr, rindd) is already there; if it is not, keep the pipe open ourselves.
        o.write(true).custom_flags(libc::O_NONBLOCK);
        let f = match o.open(p) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                OpenOptions::new().read(true).write(true).open(p).map_err(io_err("open", p))?
            }
            Err(e) => return Err(io_err("open", p)(e)),
        };
        clear_nonblock(&f);
        Ok(Some(f))
    } else {
        let f = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(p).map_err(io_err("open", p))?;
        clear_nonblock(&f);
        Ok(Some(f))
    }
}

/// A writer on a stdin fifo (opened read-write: it never blocks), or None
/// when there is no stdin fifo.
fn hold_fifo(uri: &str) -> Result<Option<File>> {
    match logs::parse_target(uri).map_err(ShimError::InvalidArgument)? {
        Some(logs::Target::Fifo(p)) => Ok(Some(OpenOptions::new().read(true).write(true).open(&p).map_err(io_err("open", &p))?)),
        _ => Ok(None),
    }
}

fn clear_nonblock(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFL/F_SETFL on an fd we own.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
    }
}

/// Mounts the rootfs containerd hands us (one overlay or bind mount) at <bundle>/rootfs.
fn mount_rootfs(mounts: &[containerd_shim_protos::types::mount::Mount], target: &Path) -> Result<bool> {
    use nix::mount::MsFlags;
    let Some(m) = mounts.first() else { return Ok(false) };
    std::fs::create_dir_all(target).map_err(io_err("create", target))?;
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in &m.options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => {}
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data.push(other.to_string()),
        }
    }
    let data = data.join(",");
    let fstype = (!m.type_.is_empty() && m.type_ != "bind").then_some(m.type_.as_str());
    nix::mount::mount(Some(m.source.as_str()), target, fstype, flags, (!data.is_empty()).then_some(data.as_str()))
        .map_err(|e| ShimError::Io { op: "mount rootfs on", path: target.display().to_string(), source: e.into() })?;
    Ok(true)
}

impl TaskService {
    pub fn new(namespace: String, id: String, bundle: PathBuf, reaper: Arc<Reaper>, publisher: Arc<Publisher>) -> Arc<TaskService> {
        Arc::new(TaskService {
            namespace,
            id,
            bundle,
            reaper,
            runtime: Mutex::new(None),
            publisher,
            tasks: Arc::new(Mutex::new(Tasks::default())),
            deleted: Arc::new(AtomicBool::new(false)),
            rootfs_mounted: AtomicBool::new(false),
            shutdown: Arc::new(Notify::new()),
        })
    }

    fn runtime(&self) -> Result<Arc<Runtime>> {
        self.runtime.lock().expect("lock").clone().ok_or_else(|| ShimError::FailedPrecondition("the task was not created".into()))
    }

    /// Records every exit the reaper sees; the init's goes to disk before TaskExit.
    pub fn monitor_exits(self: &Arc<Self>) {
        let mut rx = self.reaper.subscribe();
        let svc = self.clone();
        tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                let found = {
                    let mut t = svc.tasks.lock().expect("lock");
                    let live = |p: &Proc| p.pid == ev.pid && p.exit.is_none() && !p.exiting;
                    if t.init.as_ref().is_some_and(live) {
                        Some(String::new())
                    } else if let Some(id) = t.execs.iter().find(|(_, p)| live(p)).map(|(id, _)| id.clone()) {
                        Some(id)
                    } else {
                        if t.unclaimed.len() < 1024 {
                            t.unclaimed.insert(ev.pid, ev.status);
                        }
                        None
                    }
                };
                if let Some(exec_id) = found {
                    svc.exited(exec_id, ev.pid, ev.status);
                }
            }
        });
    }

    /// A process exited: drain its output, record the exit (the init's on
    /// disk first), wake waiters, then publish TaskExit until delivered.
    fn exited(&self, exec_id: String, pid: i32, status: u32) {
        let exit = Exit::now(pid, status);
        let io_tasks = {
            let mut t = self.tasks.lock().expect("lock");
            let Ok(p) = t.get(&exec_id) else { return };
            p.exiting = true;
            std::mem::take(&mut p.io_tasks)
        };
        let tasks = self.tasks.clone();
        let (bundle, id, publisher, deleted) = (self.bundle.clone(), self.id.clone(), self.publisher.clone(), self.deleted.clone());
        tokio::spawn(async move {
            // Background processes may hold the pipes open; do not wait for them forever.
            for h in io_tasks {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), h).await;
            }
            if exec_id.is_empty() {
                let path = bundle.join(paths::EXIT_FILE);
                if let Err(e) = exit_file::write(&path, &exit) {
                    tracing::error!(error = %e, path = %path.display(), "write exit file");
                }
            }
            {
                let mut t = tasks.lock().expect("lock");
                let Ok(p) = t.get(&exec_id) else { return };
                p.exit = Some(exit.clone());
                p.status = PStatus::Stopped;
                p.exited.notify_waiters();
            }
            let mut ev = TaskExit::new();
            ev.container_id = id.clone();
            ev.id = if exec_id.is_empty() { id } else { exec_id };
            ev.pid = pid as u32;
            ev.exit_status = status;
            ev.exited_at = MessageField::some(timestamp(exit.time()));
            publisher.publish_until(topics::TASK_EXIT_EVENT_TOPIC, ev, move || deleted.load(Ordering::SeqCst));
        });
    }

    /// Records a pid; an exit that already happened is applied at once.
    fn set_pid(&self, exec_id: &str, pid: i32, status: PStatus, handles: IoHandles) -> Result<()> {
        let mut t = self.tasks.lock().expect("lock");
        let early = t.unclaimed.remove(&pid);
        let p = t.get(exec_id)?;
        p.pid = pid;
        p.status = status;
        p.io_tasks = handles.tasks;
        p.stdin_hold = handles.stdin_hold;
        if let Some((master, closer)) = handles.terminal {
            p.console = Some(master);
            p.stdin_closer = closer;
        }
        drop(t);
        if let Some(code) = early {
            self.exited(exec_id.to_string(), pid, code);
        }
        Ok(())
    }

    fn read_pid(path: &Path) -> Result<i32> {
        let s = std::fs::read_to_string(path).map_err(io_err("read", path))?;
        s.trim().parse().map_err(|_| ShimError::FailedPrecondition(format!("{}: not a pid: {s:?}", path.display())))
    }

    async fn do_create(&self, req: &CreateTaskRequest) -> Result<i32> {
        if !req.checkpoint.is_empty() {
            return Err(ShimError::Unimplemented("restore from checkpoint"));
        }
        let opts = req.options.as_ref().and_then(|a| Options::parse_from_bytes(&a.value).ok()).unwrap_or_default();
        // The runc options' BinaryName wins; then the shim's environment; then rind-runtime.
        let binary = match (opts.binary_name.is_empty(), std::env::var_os(paths::RUNTIME_ENV)) {
            (false, _) => PathBuf::from(&opts.binary_name),
            (true, Some(b)) => PathBuf::from(b),
            (true, None) => PathBuf::from(paths::DEFAULT_RUNTIME),
        };
        let root = if opts.root.is_empty() {
            Path::new(paths::RUNTIME_ROOT).join(&self.namespace)
        } else {
            PathBuf::from(&opts.root).join(&self.namespace)
        };
        let choice = RuntimeChoice { binary: binary.clone(), root: root.clone() };
        let choice_path = self.bundle.join(RUNTIME_CHOICE_FILE);
        std::fs::write(&choice_path, serde_json::to_vec(&choice).expect("serializes")).map_err(io_err("write", &choice_path))?;
        let runtime = Arc::new(Runtime { binary, root, log: self.bundle.join(paths::RUNTIME_LOG), reaper: self.reaper.clone() });
        *self.runtime.lock().expect("lock") = Some(runtime.clone());
        let mounted = mount_rootfs(&req.rootfs, &self.bundle.join("rootfs"))?;
        self.rootfs_mounted.store(mounted, Ordering::SeqCst);
        self.tasks.lock().expect("lock").init =
            Some(Proc::new((req.stdin.clone(), req.stdout.clone(), req.stderr.clone()), req.terminal, None));
        let result = async {
            let pid_file = self.bundle.join("init.pid");
            let args = vec![
                "create".into(),
                "--bundle".into(),
                self.bundle.display().to_string(),
                "--pid-file".into(),
                pid_file.display().to_string(),
                self.id.clone(),
            ];
            let io = (req.stdin.clone(), req.stdout.clone(), req.stderr.clone());
            let handles = self.run_with_io(&runtime, args, &io, req.terminal).await?;
            let pid = Self::read_pid(&pid_file)?;
            self.set_pid("", pid, PStatus::Created, handles)?;
            self.watch_oom(pid);
            Ok(pid)
        }
        .await;
        if result.is_err() {
            self.tasks.lock().expect("lock").init = None;
            self.unmount_rootfs();
        }
        result
    }

    /// Publishes TaskOOM for every OOM kill in the container's memory cgroup.
    fn watch_oom(&self, pid: i32) {
        let Some((dir, v2)) = crate::oom::memory_cgroup(pid) else { return };
        let (publisher, id) = (self.publisher.clone(), self.id.clone());
        tokio::spawn(async move {
            let publish = |publisher: Arc<Publisher>, id: String| {
                tokio::spawn(async move {
                    let mut ev = TaskOOM::new();
                    ev.container_id = id;
                    publisher.publish(topics::TASK_OOM_EVENT_TOPIC, ev).await;
                });
            };
            if let Err(e) = crate::oom::watch(dir, v2, || publish(publisher.clone(), id.clone())).await {
                tracing::warn!(error = %e, "watch for OOM kills");
            }
        });
    }

    /// Runs a runtime verb that starts a process (create, exec) with its stdio:
    /// fifos and log pipes, or a terminal whose master comes back over a
    /// console socket. Returns the output copies and the pty master.
    async fn run_with_io(
        &self,
        runtime: &Runtime,
        mut args: Vec<String>,
        io: &(String, String, String),
        terminal: bool,
    ) -> Result<IoHandles> {
        let stdin_hold = hold_fifo(&io.0)?;
        if !terminal {
            let (stdio, copies) = setup_stdio(&io.0, &io.1, &io.2, &self.id, &self.namespace)?;
            runtime.run(&args, stdio, None).await?;
            return Ok(IoHandles { tasks: spawn_copies(copies), terminal: None, stdin_hold });
        }
        let stdin = match logs::parse_target(&io.0).map_err(ShimError::InvalidArgument)? {
            None => None,
            Some(logs::Target::Fifo(p)) => open_fifo(&p.display().to_string(), false)?,
            Some(_) => return Err(ShimError::InvalidArgument(format!("stdin {}: only a fifo can be stdin", io.0))),
        };
        // The pty's output goes to a fifo, or through a pipe into a log file.
        let (stdout, log_copies) = match logs::parse_target(&io.1).map_err(ShimError::InvalidArgument)? {
            Some(logs::Target::Fifo(p)) => (open_fifo(&p.display().to_string(), true)?, Vec::new()),
            Some(logs::Target::Binary { .. }) => {
                return Err(ShimError::InvalidArgument(format!("{}: a terminal's output goes to a fifo or a file", io.1)))
            }
            _ => {
                let (stdio, copies) = setup_stdio("", &io.1, "", &self.id, &self.namespace)?;
                (stdio.stdout, copies)
            }
        };
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        // A short path: sun_path holds 108 bytes, bundle paths can be longer.
        let path = Path::new(paths::SOCKET_DIR).join(format!("{}-{}.console", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        let sock = crate::console::ConsoleSocket::bind(&path).map_err(io_err("listen on", &path))?;
        let receiving = tokio::task::spawn_blocking(move || sock.receive());
        let id = args.pop().unwrap_or_default();
        args.extend(["--console-socket".into(), path.display().to_string(), id]);
        if let Err(e) = runtime.run(&args, Stdio3::default(), None).await {
            // Unblock the accept: nobody else will connect now.
            let _ = std::os::unix::net::UnixStream::connect(&path);
            let _ = receiving.await;
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
        let master = receiving
            .await
            .map_err(|e| ShimError::FailedPrecondition(format!("console socket: {e}")))?
            .map_err(io_err("receive pty master from", &path))?;
        let (copy, closer) = crate::console::spawn_copies(&master, stdin, stdout).map_err(io_err("copy pty of", &path))?;
        let join = tokio::task::spawn_blocking(move || {
            let _ = copy.join();
        });
        let mut tasks = spawn_copies(log_copies);
        tasks.push(join);
        Ok(IoHandles { tasks, terminal: Some((Arc::new(master), closer)), stdin_hold })
    }

    fn unmount_rootfs(&self) {
        if self.rootfs_mounted.swap(false, Ordering::SeqCst) {
            let _ = nix::mount::umount2(&self.bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        }
    }

    async fn do_start(&self, exec_id: &str) -> Result<i32> {
        let runtime = self.runtime()?;
        if exec_id.is_empty() {
            let pid = {
                let mut t = self.tasks.lock().expect("lock");
                let p = t.get("")?;
                if p.status != PStatus::Created {
                    return Err(ShimError::FailedPrecondition(format!("cannot start task {}: it is not created", self.id)));
                }
                p.pid
            };
            runtime.run(&["start".into(), self.id.clone()], Stdio3::default(), None).await?;
            let mut t = self.tasks.lock().expect("lock");
            let p = t.get("")?;
            if p.status == PStatus::Created {
                p.status = PStatus::Running;
            }
            return Ok(pid);
        }
        let (spec, io, terminal) = {
            let mut t = self.tasks.lock().expect("lock");
            let p = t.get(exec_id)?;
            if p.status != PStatus::Created {
                return Err(ShimError::FailedPrecondition(format!("exec {exec_id} was already started")));
            }
            (p.spec.clone().unwrap_or_default(), p.io.clone(), p.terminal)
        };
        let spec_path = self.bundle.join(format!("exec-{exec_id}.json"));
        let pid_path = self.bundle.join(format!("exec-{exec_id}.pid"));
        std::fs::write(&spec_path, &spec).map_err(io_err("write", &spec_path))?;
        let args = vec![
            "exec".into(),
            "--process".into(),
            spec_path.display().to_string(),
            "--detach".into(),
            "--pid-file".into(),
            pid_path.display().to_string(),
            self.id.clone(),
        ];
        let r = self.run_with_io(&runtime, args, &io, terminal).await;
        let _ = std::fs::remove_file(&spec_path);
        let handles = r?;
        let pid = Self::read_pid(&pid_path)?;
        let _ = std::fs::remove_file(&pid_path);
        self.set_pid(exec_id, pid, PStatus::Running, handles)?;
        Ok(pid)
    }

    async fn do_delete(&self, exec_id: &str) -> Result<(i32, Exit)> {
        if !exec_id.is_empty() {
            let mut t = self.tasks.lock().expect("lock");
            let p = t.get(exec_id)?;
            if p.status != PStatus::Stopped && p.status != PStatus::Created {
                return Err(ShimError::FailedPrecondition(format!("cannot delete exec {exec_id}: it is running")));
            }
            let p = t.execs.remove(exec_id).expect("found above");
            return Ok((p.pid, p.exit.unwrap_or_else(|| Exit::now(p.pid, 0))));
        }
        let runtime = self.runtime()?;
        let (pid, status) = {
            let mut t = self.tasks.lock().expect("lock");
            let p = t.get("")?;
            (p.pid, p.status)
        };
        if matches!(status, PStatus::Running | PStatus::Paused) {
            return Err(ShimError::FailedPrecondition(format!("cannot delete task {}: it is running", self.id)));
        }
        runtime.run(&["delete".into(), "--force".into(), self.id.clone()], Stdio3::default(), None).await?;
        self.unmount_rootfs();
        let exit = {
            let mut t = self.tasks.lock().expect("lock");
            let p = t.init.take().expect("found above");
            t.execs.clear();
            p.exit.unwrap_or_else(|| Exit::now(pid, 137))
        };
        self.deleted.store(true, Ordering::SeqCst);
        // The namespace's runtime root goes with its last container.
        let _ = std::fs::remove_dir(&runtime.root);
        let _ = std::fs::remove_file(self.bundle.join(paths::EXIT_FILE));
        Ok((pid, exit))
    }

    async fn wait_exit(&self, exec_id: &str) -> Result<Exit> {
        loop {
            let notify = {
                let mut t = self.tasks.lock().expect("lock");
                let p = t.get(exec_id)?;
                if let Some(e) = &p.exit {
                    return Ok(e.clone());
                }
                p.exited.clone()
            };
            let notified = notify.notified();
            // Re-check after registering, so an exit between the two is not missed.
            {
                let mut t = self.tasks.lock().expect("lock");
                if let Some(e) = &t.get(exec_id)?.exit {
                    return Ok(e.clone());
                }
            }
            notified.await;
        }
    }

    async fn publish<M: containerd_shim_protos::protobuf::MessageFull>(&self, topic: &str, m: M) {
        self.publisher.publish(topic, m).await;
    }
}

fn task_status(s: PStatus) -> EnumOrUnknown<Status> {
    EnumOrUnknown::new(match s {
        PStatus::Created => Status::CREATED,
        PStatus::Running => Status::RUNNING,
        PStatus::Paused => Status::PAUSED,
        PStatus::Stopped => Status::STOPPED,
    })
}

#[async_trait]
impl Task for TaskService {
    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        let mut t = self.tasks.lock().expect("lock");
        let p = t.get(&req.exec_id)?;
        let mut r = StateResponse::new();
        r.id = if req.exec_id.is_empty() { self.id.clone() } else { req.exec_id.clone() };
        r.exec_id = req.exec_id.clone();
        r.bundle = self.bundle.display().to_string();
        r.pid = p.pid as u32;
        r.status = task_status(p.status);
        (r.stdin, r.stdout, r.stderr) = p.io.clone();
        r.terminal = p.terminal;
        if let Some(e) = &p.exit {
            r.exit_status = e.status;
            r.exited_at = MessageField::some(timestamp(e.time()));
        }
        Ok(r)
    }

    async fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        let pid = self.do_create(&req).await.inspect_err(|e| tracing::error!(error = %e, "create"))?;
        let mut ev = TaskCreate::new();
        ev.container_id = self.id.clone();
        ev.bundle = req.bundle.clone();
        ev.rootfs = req.rootfs.clone();
        let mut io = TaskIO::new();
        (io.stdin, io.stdout, io.stderr, io.terminal) = (req.stdin.clone(), req.stdout.clone(), req.stderr.clone(), req.terminal);
        ev.io = MessageField::some(io);
        ev.pid = pid as u32;
        self.publish(topics::TASK_CREATE_EVENT_TOPIC, ev).await;
        let mut r = CreateTaskResponse::new();
        r.pid = pid as u32;
        Ok(r)
    }

    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let pid = self.do_start(&req.exec_id).await?;
        if req.exec_id.is_empty() {
            // The container runs: from here the shim mostly waits.
            tokio::spawn(async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                crate::idle::shed_pages();
            });
        }
        if req.exec_id.is_empty() {
            let mut ev = TaskStart::new();
            ev.container_id = self.id.clone();
            ev.pid = pid as u32;
            self.publish(topics::TASK_START_EVENT_TOPIC, ev).await;
        } else {
            let mut ev = TaskExecStarted::new();
            ev.container_id = self.id.clone();
            ev.exec_id = req.exec_id.clone();
            ev.pid = pid as u32;
            self.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, ev).await;
        }
        let mut r = StartResponse::new();
        r.pid = pid as u32;
        Ok(r)
    }

    async fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let (pid, exit) = self.do_delete(&req.exec_id).await?;
        let mut r = DeleteResponse::new();
        r.pid = pid as u32;
        r.exit_status = exit.status;
        r.exited_at = MessageField::some(timestamp(exit.time()));
        if req.exec_id.is_empty() {
            let mut ev = TaskDelete::new();
            ev.container_id = self.id.clone();
            ev.pid = pid as u32;
            ev.exit_status = exit.status;
            ev.exited_at = r.exited_at.clone();
            self.publish(topics::TASK_DELETE_EVENT_TOPIC, ev).await;
        }
        Ok(r)
    }

    async fn pids(&self, _ctx: &TtrpcContext, _req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        let out =
            self.runtime()?.output(&["ps".into(), "--format".into(), "json".into(), self.id.clone()]).await.map_err(ShimError::from)?;
        let pids: Vec<u32> = serde_json::from_slice(&out).unwrap_or_default();
        let mut r = PidsResponse::new();
        r.processes = pids
            .into_iter()
            .map(|pid| {
                let mut pi = ProcessInfo::new();
                pi.pid = pid;
                pi
            })
            .collect();
        Ok(r)
    }

    async fn pause(&self, _ctx: &TtrpcContext, _req: PauseRequest) -> ttrpc::Result<Empty> {
        self.runtime()?.run(&["pause".into(), self.id.clone()], Stdio3::default(), None).await.map_err(ShimError::from)?;
        self.tasks.lock().expect("lock").get("")?.status = PStatus::Paused;
        let mut ev = TaskPaused::new();
        ev.container_id = self.id.clone();
        self.publish(topics::TASK_PAUSED_EVENT_TOPIC, ev).await;
        Ok(Empty::new())
    }

    async fn resume(&self, _ctx: &TtrpcContext, _req: ResumeRequest) -> ttrpc::Result<Empty> {
        self.runtime()?.run(&["resume".into(), self.id.clone()], Stdio3::default(), None).await.map_err(ShimError::from)?;
        self.tasks.lock().expect("lock").get("")?.status = PStatus::Running;
        let mut ev = TaskResumed::new();
        ev.container_id = self.id.clone();
        self.publish(topics::TASK_RESUMED_EVENT_TOPIC, ev).await;
        Ok(Empty::new())
    }

    async fn checkpoint(&self, _ctx: &TtrpcContext, _req: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        Err(ShimError::Unimplemented("checkpoint").into())
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        let (pid, status) = {
            let mut t = self.tasks.lock().expect("lock");
            let p = t.get(&req.exec_id)?;
            (p.pid, p.status)
        };
        if status == PStatus::Stopped {
            return Err(ShimError::NotFound("process already finished".into()).into());
        }
        if req.exec_id.is_empty() {
            let mut args = vec!["kill".to_string()];
            if req.all {
                args.push("--all".into());
            }
            args.extend([self.id.clone(), req.signal.to_string()]);
            self.runtime()?.run(&args, Stdio3::default(), None).await.map_err(ShimError::from)?;
        } else {
            // SAFETY: kill(2) of the exec process we started and have not seen exit.
            if unsafe { libc::kill(pid, req.signal as i32) } != 0 {
                return Err(ShimError::Io {
                    op: "kill",
                    path: format!("exec {} (pid {pid})", req.exec_id),
                    source: std::io::Error::last_os_error(),
                }
                .into());
            }
        }
        Ok(Empty::new())
    }

    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        {
            let mut t = self.tasks.lock().expect("lock");
            if t.execs.contains_key(&req.exec_id) {
                return Err(ShimError::FailedPrecondition(format!("exec {} already exists", req.exec_id)).into());
            }
            let spec = req.spec.as_ref().map(|a| a.value.clone());
            t.execs.insert(req.exec_id.clone(), Proc::new((req.stdin.clone(), req.stdout.clone(), req.stderr.clone()), req.terminal, spec));
        }
        let mut ev = TaskExecAdded::new();
        ev.container_id = self.id.clone();
        ev.exec_id = req.exec_id.clone();
        self.publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, ev).await;
        Ok(Empty::new())
    }

    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        let console = self.tasks.lock().expect("lock").get(&req.exec_id)?.console.clone();
        let console = console.ok_or_else(|| ShimError::FailedPrecondition("the process has no terminal".into()))?;
        crate::console::resize(&console, req.width, req.height).map_err(|e| ShimError::Io {
            op: "resize",
            path: "pty".into(),
            source: e,
        })?;
        Ok(Empty::new())
    }

    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        // Drop the writer the shim holds: without a terminal the container then
        // sees EOF once the clients' writers close; with one, stop the pty copy.
        let mut t = self.tasks.lock().expect("lock");
        let p = t.get(&req.exec_id)?;
        if req.stdin {
            p.stdin_hold = None;
            if let Some(c) = p.stdin_closer.take() {
                c.close();
            }
        }
        Ok(Empty::new())
    }

    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let data = req.resources.as_ref().map(|a| a.value.clone()).unwrap_or_default();
        let args = vec!["update".into(), "--resources".into(), "-".into(), self.id.clone()];
        self.runtime()?.run(&args, Stdio3::default(), Some(data)).await.map_err(ShimError::from)?;
        Ok(Empty::new())
    }

    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let e = self.wait_exit(&req.exec_id).await?;
        let mut r = WaitResponse::new();
        r.exit_status = e.status;
        r.exited_at = MessageField::some(timestamp(e.time()));
        Ok(r)
    }

    async fn stats(&self, _ctx: &TtrpcContext, _req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let out = self.runtime()?.output(&["events".into(), "--stats".into(), self.id.clone()]).await.map_err(ShimError::from)?;
        let v: serde_json::Value =
            serde_json::from_slice(&out).map_err(|e| ShimError::FailedPrecondition(format!("runtime stats: {e}")))?;
        let v2 = nix::sys::statfs::statfs("/sys/fs/cgroup").is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        let mut r = StatsResponse::new();
        r.stats = MessageField::some(crate::metrics::to_metrics(&v["data"], v2));
        Ok(r)
    }

    async fn connect(&self, _ctx: &TtrpcContext, _req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        let mut r = ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.task_pid = self.tasks.lock().expect("lock").init.as_ref().map_or(0, |p| p.pid as u32);
        r.version = env!("CARGO_PKG_VERSION").into();
        Ok(r)
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> ttrpc::Result<Empty> {
        if self.tasks.lock().expect("lock").init.is_none() {
            self.shutdown.notify_one();
        }
        Ok(Empty::new())
    }
}
