//! The processes of the one container a shim serves: the init and its execs.
//! Each `Process` has one lock, held across a whole verb (check the state,
//! act, record the new state), so verbs on one process serialise and the
//! second of two racing Deletes finds the first's result.
//!
//! - `state.rs`: the pure transition function.
//! - `table.rs`: processes by id and pid, and exits that beat their pid.
//! - `init.rs`, `exec.rs`: the verbs of each kind, on `Container`.

pub mod exec;
pub mod init;
pub mod state;
pub mod table;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Mutex, MutexGuard, OwnedMutexGuard};

use crate::exit_file::Exit;
use crate::rootfs::RootfsError;
use crate::runtime::RuntimeError;
use crate::stdio::{IoHandles, StdioConfig, StdioError};
use state::{Kind, Refusal, State, Verb};

/// Which process a request is about: containerd's empty exec id is the init.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProcessId {
    Init,
    Exec(String),
}

impl ProcessId {
    pub fn from_exec_id(exec_id: &str) -> ProcessId {
        if exec_id.is_empty() {
            ProcessId::Init
        } else {
            ProcessId::Exec(exec_id.to_string())
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            ProcessId::Init => Kind::Init,
            ProcessId::Exec(_) => Kind::Exec,
        }
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessId::Init => f.write_str("process init"),
            ProcessId::Exec(id) => write!(f, "exec {id}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{process} not found")]
    NotFound { process: ProcessId },
    #[error("{process} already exists")]
    AlreadyExists { process: ProcessId },
    #[error("cannot {verb} {process}: it is {state}")]
    InState { process: ProcessId, verb: Verb, state: State },
    #[error("cannot {verb} {process}: it is not the init")]
    InitOnly { process: ProcessId, verb: Verb },
    #[error("{process} was deleted before it exited")]
    DeletedBeforeExit { process: ProcessId },
    #[error("{process} has no terminal")]
    NoTerminal { process: ProcessId },
    #[error("the task was not created")]
    NotCreated,
    #[error("{0} is not implemented by containerd-shim-rind-v2 yet")]
    Unimplemented(&'static str),
    #[error("{path}: not a pid: {content:?}")]
    BadPid { path: PathBuf, content: String },
    #[error("runtime stats")]
    Stats(#[source] serde_json::Error),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Stdio(#[from] StdioError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
}

impl ProcessError {
    fn refused(process: &ProcessId, r: Refusal) -> ProcessError {
        match r {
            Refusal::InState { verb, state } => ProcessError::InState { process: process.clone(), verb, state },
            Refusal::InitOnly { verb } => ProcessError::InitOnly { process: process.clone(), verb },
        }
    }

    /// A deleted process, or a Kill of a stopped one (see `Refusal::is_not_found`).
    pub fn is_not_found(&self) -> bool {
        match self {
            ProcessError::NotFound { .. } | ProcessError::DeletedBeforeExit { .. } => true,
            ProcessError::InState { verb, state, .. } => Refusal::InState { verb: *verb, state: *state }.is_not_found(),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, ProcessError>;

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ProcessError + 'a {
    move |source| ProcessError::Io { op, path: path.display().to_string(), source }
}

/// What the process lock guards.
pub struct Inner {
    pub state: State,
    /// The reaper saw it exit; its output may still be draining before the
    /// exit is recorded, but its pid may already belong to someone else.
    pub reaped: bool,
    pub io: IoHandles,
}

/// One process: the init or an exec.
pub struct Process {
    pub id: ProcessId,
    pub stdio: StdioConfig,
    /// An exec's OCI process JSON (empty for the init).
    pub spec: Vec<u8>,
    /// Set once, under the lock, when the runtime has told it; read without.
    pid: AtomicI32,
    inner: Arc<Mutex<Inner>>,
    /// None until the exit is recorded (after the output is drained and,
    /// for the init, the exit file written). Waiters watch it: a watch
    /// keeps the last value, so a late or slow waiter cannot miss it.
    exit: watch::Sender<Option<Exit>>,
}

/// What State reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub pid: i32,
    pub state: State,
    pub exit: Option<Exit>,
}

impl Process {
    pub fn new(id: ProcessId, stdio: StdioConfig, spec: Vec<u8>) -> Process {
        Process {
            id,
            stdio,
            spec,
            pid: AtomicI32::new(0),
            inner: Arc::new(Mutex::new(Inner { state: State::Created, reaped: false, io: IoHandles::default() })),
            exit: watch::Sender::new(None),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
    }

    fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Ordering::SeqCst);
    }

    /// The process lock: hold it across a whole verb.
    pub async fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().await
    }

    /// The lock, for a guard that outlives the borrow (returned to a caller).
    pub async fn lock_owned(&self) -> OwnedMutexGuard<Inner> {
        self.inner.clone().lock_owned().await
    }

    /// The state `verb` leads to, or the error naming the current state. A
    /// reaped process is stopped to Kill even before its exit is recorded.
    pub fn check(&self, inner: &Inner, verb: Verb) -> Result<State> {
        let state = if verb == Verb::Kill && inner.reaped { State::Stopped } else { inner.state };
        state::next(self.id.kind(), state, verb).map_err(|r| ProcessError::refused(&self.id, r))
    }

    /// The state, under the lock: a verb in progress finishes first.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let g = self.lock().await;
        if g.state == State::Deleted {
            return Err(ProcessError::NotFound { process: self.id.clone() });
        }
        Ok(Snapshot { pid: self.pid(), state: g.state, exit: self.exit() })
    }

    pub fn exit(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }

    /// Moves to the state `Exit` leads to and tells the waiters. The caller
    /// holds the lock and checked the transition.
    pub(crate) fn record_exit(&self, inner: &mut Inner, next: State, exit: Exit) {
        inner.state = next;
        self.exit.send_replace(Some(exit));
    }

    /// Waits for the exit without keeping the process (and its lock) alive:
    /// a process deleted before it exited ends the wait with NOT_FOUND.
    pub fn waiter(&self) -> impl std::future::Future<Output = Result<Exit>> + Send + 'static {
        let mut rx = self.exit.subscribe();
        let process = self.id.clone();
        async move {
            match rx.wait_for(Option::is_some).await {
                Ok(e) => e.clone().ok_or(ProcessError::DeletedBeforeExit { process }),
                Err(_) => Err(ProcessError::DeletedBeforeExit { process }),
            }
        }
    }
}

/// Reads the pid file a runtime verb wrote.
pub(crate) fn read_pid(path: &Path) -> Result<i32> {
    let s = std::fs::read_to_string(path).map_err(io_err("read", path))?;
    s.trim().parse().map_err(|_| ProcessError::BadPid { path: path.to_path_buf(), content: s })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: &str) -> Process {
        Process::new(ProcessId::Exec(id.into()), StdioConfig::default(), Vec::new())
    }

    #[test]
    fn process_id_of_an_empty_exec_id_is_the_init() {
        assert_eq!(ProcessId::from_exec_id(""), ProcessId::Init);
        assert_eq!(ProcessId::from_exec_id("e1"), ProcessId::Exec("e1".into()));
        assert_eq!(ProcessId::Init.to_string(), "process init");
    }

    #[tokio::test]
    async fn check_names_the_process_and_its_state() {
        let p = Process::new(ProcessId::Init, StdioConfig::default(), Vec::new());
        let mut g = p.lock().await;
        g.state = State::Stopped;
        let e = p.check(&g, Verb::Start).unwrap_err();
        assert_eq!(e.to_string(), "cannot start process init: it is stopped");
        assert!(!e.is_not_found());
        assert!(p.check(&g, Verb::Kill).unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn check_of_kill_after_the_reaper_saw_the_exit_is_not_found() {
        let p = exec("e1");
        let mut g = p.lock().await;
        g.state = State::Running;
        assert_eq!(p.check(&g, Verb::Kill).unwrap(), State::Running);
        g.reaped = true;
        let e = p.check(&g, Verb::Kill).unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }

    #[tokio::test]
    async fn waiter_returns_an_exit_recorded_before_or_after_it() {
        let p = exec("e1");
        let w = p.waiter();
        {
            let mut g = p.lock().await;
            p.record_exit(&mut g, State::Stopped, Exit::now(9, 3));
        }
        assert_eq!(w.await.unwrap().status, 3);
        assert_eq!(p.waiter().await.unwrap().status, 3, "a late waiter");
    }

    #[tokio::test]
    async fn waiter_of_a_process_dropped_before_it_exited_is_not_found() {
        let p = exec("e1");
        let w = p.waiter();
        drop(p);
        assert!(w.await.unwrap_err().is_not_found());
    }

    #[test]
    fn read_pid_refuses_what_is_not_a_pid() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pid");
        std::fs::write(&f, "123\n").unwrap();
        assert_eq!(read_pid(&f).unwrap(), 123);
        std::fs::write(&f, "abc").unwrap();
        assert!(matches!(read_pid(&f), Err(ProcessError::BadPid { .. })));
    }
}
