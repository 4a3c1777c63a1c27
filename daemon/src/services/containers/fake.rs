//! Test doubles: a scriptable fake of the shim binary and its Task API that
//! records every call, and a `Containers` on a tempdir wired to it.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::result::Result;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::types::task::Status as TaskStatus;
use tempfile::TempDir;
use tokio::sync::{watch, Semaphore};

use super::*;
use crate::shims::{ShimLauncher, TaskApi};

/// What the fake shim of one container does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Running {
        pid: u32,
    },
    Paused {
        pid: u32,
    },
    /// The init exited; the shim is still there to say so.
    Stopped {
        pid: u32,
        status: u32,
        at: SystemTime,
    },
    /// Its socket does not answer: connecting fails.
    Unreachable,
    /// The shim answers, but knows no task.
    Empty,
}

/// A call the daemon made, in the order made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// The shim binary's `start`.
    Launch {
        id: String,
    },
    /// The shim binary's `delete`.
    BinaryDelete {
        id: String,
    },
    Connect {
        address: String,
    },
    Create {
        id: String,
        bundle: String,
    },
    Start {
        id: String,
        exec_id: String,
    },
    State {
        id: String,
    },
    Kill {
        id: String,
        signal: u32,
        all: bool,
    },
    Delete {
        id: String,
        exec_id: String,
    },
    Shutdown {
        id: String,
    },
    Other {
        call: &'static str,
        id: String,
    },
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    scripts: HashMap<String, Script>,
    /// Containers whose shim is up: connecting to it succeeds.
    alive: HashSet<String>,
    /// Set when the shim of a container goes (killed, or shut down): what
    /// its connections' `closed` waits for.
    closers: HashMap<String, watch::Sender<bool>>,
    /// Calls held until the test lets them go, by (call, container).
    gates: HashMap<(&'static str, String), Arc<Semaphore>>,
    /// What the shim binary's `delete` reports, by container.
    delete_reports: HashMap<String, (u32, Option<SystemTime>)>,
    /// Containers whose task Create fails, with the error's text.
    create_failures: HashMap<String, String>,
    next_pid: u32,
}

/// The fake shims of every container. Clones share their state.
#[derive(Clone, Default)]
pub struct FakeShims(Arc<Mutex<State>>);

/// The address the fake gives the shim of container `id`. Nothing listens
/// there, so nothing that probes the socket itself ever waits.
pub fn address(id: &str) -> String {
    format!("unix:///nonexistent/rind-fake/{id}")
}

fn id_of(address: &str) -> &str {
    address.rsplit('/').next().unwrap_or_default()
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).expect("time after the epoch");
    Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32, ..Default::default() }
}

fn not_found(call: &'static str, id: &str) -> ShimError {
    ShimError::Call { call, message: format!("task {id} not found"), not_found: true }
}

impl FakeShims {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("fake state")
    }

    fn record(&self, call: Call) {
        self.state().calls.push(call);
    }

    /// Scripts what the shim of container `id` says from now on.
    pub fn script(&self, id: &str, script: Script) {
        let mut st = self.state();
        if script == Script::Unreachable {
            st.alive.remove(id);
        } else {
            st.alive.insert(id.to_string());
        }
        st.scripts.insert(id.to_string(), script);
    }

    /// The shim of `id` dies (SIGKILL): its connections close, and nothing
    /// answers at its address any more.
    pub fn kill_shim(&self, id: &str) {
        let mut st = self.state();
        st.alive.remove(id);
        st.scripts.remove(id);
        if let Some(tx) = st.closers.remove(id) {
            tx.send_replace(true);
        }
    }

    /// The connections to the shim of `id` break; the shim lives on.
    pub fn drop_connections(&self, id: &str) {
        if let Some(tx) = self.state().closers.remove(id) {
            tx.send_replace(true);
        }
    }

    /// Whether the shim of `id` is up.
    pub fn alive(&self, id: &str) -> bool {
        self.state().alive.contains(id)
    }

    /// Holds `call` ("launch", "state") for `id` until the test adds a
    /// permit to the returned gate. The call is recorded (and a launched
    /// shim is up, a state answer decided) before it waits.
    pub fn gate(&self, call: &'static str, id: &str) -> Arc<Semaphore> {
        self.state().gates.entry((call, id.to_string())).or_insert_with(|| Arc::new(Semaphore::new(0))).clone()
    }

    async fn pass(&self, call: &'static str, id: &str) {
        let gate = self.state().gates.get(&(call, id.to_string())).cloned();
        if let Some(g) = gate {
            let _ = g.acquire().await;
        }
    }

    /// The shim binary's `delete` for `id` reports this exit.
    pub fn delete_reports(&self, id: &str, status: u32, at: SystemTime) {
        self.state().delete_reports.insert(id.to_string(), (status, Some(at)));
    }

    /// Task Create for `id` fails with this message (as a runtime's error
    /// for a command that cannot run).
    pub fn fail_create(&self, id: &str, message: &str) {
        self.state().create_failures.insert(id.to_string(), message.to_string());
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// How many calls `f` matches.
    pub fn count(&self, f: impl Fn(&Call) -> bool) -> usize {
        self.state().calls.iter().filter(|c| f(c)).count()
    }

    fn script_of(&self, id: &str) -> Option<Script> {
        self.state().scripts.get(id).copied()
    }
}

#[async_trait]
impl ShimLauncher for FakeShims {
    fn address(&self, id: &str) -> String {
        address(id)
    }

    async fn start(&self, id: &str, _bundle: &Path) -> Result<String, ShimError> {
        self.record(Call::Launch { id: id.to_string() });
        {
            // A new shim: nothing is scripted until the task is created.
            let mut st = self.state();
            st.scripts.remove(id);
            st.alive.insert(id.to_string());
            st.closers.remove(id);
        }
        self.pass("launch", id).await;
        Ok(address(id))
    }

    async fn delete(&self, id: &str, _bundle: &Path) -> Result<(u32, Option<SystemTime>), ShimError> {
        self.record(Call::BinaryDelete { id: id.to_string() });
        // With no exit recorded, the real `delete` makes up SIGKILL's status
        // and gives no time.
        Ok(self.state().delete_reports.get(id).copied().unwrap_or((128 + libc::SIGKILL as u32, None)))
    }

    async fn connect(&self, address: &str) -> Result<Arc<dyn TaskApi>, ShimError> {
        self.record(Call::Connect { address: address.to_string() });
        let id = id_of(address).to_string();
        let mut st = self.state();
        if !st.alive.contains(&id) {
            return Err(ShimError::Connect { address: address.to_string(), source: std::io::ErrorKind::ConnectionRefused.into() });
        }
        let closed = st.closers.entry(id).or_insert_with(|| watch::channel(false).0).subscribe();
        Ok(Arc::new(FakeTask { shims: self.clone(), address: address.to_string(), closed }))
    }
}

/// A connection to one fake shim.
struct FakeTask {
    shims: FakeShims,
    address: String,
    closed: watch::Receiver<bool>,
}

impl FakeTask {
    fn other(&self, call: &'static str, id: &str) -> Result<(), ShimError> {
        self.shims.record(Call::Other { call, id: id.to_string() });
        match self.shims.script_of(id) {
            Some(Script::Running { .. } | Script::Paused { .. } | Script::Stopped { .. }) => Ok(()),
            _ => Err(not_found(call, id)),
        }
    }
}

#[async_trait]
impl TaskApi for FakeTask {
    fn address(&self) -> &str {
        &self.address
    }

    async fn create(&self, req: api::CreateTaskRequest) -> Result<u32, ShimError> {
        self.shims.record(Call::Create { id: req.id.clone(), bundle: req.bundle.clone() });
        let mut st = self.shims.state();
        if let Some(message) = st.create_failures.get(&req.id).cloned() {
            return Err(ShimError::Call { call: "create", message, not_found: false });
        }
        st.next_pid += 1;
        let pid = 1000 + st.next_pid;
        st.scripts.insert(req.id, Script::Running { pid });
        Ok(pid)
    }

    async fn start(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        self.shims.record(Call::Start { id: id.to_string(), exec_id: exec_id.to_string() });
        match self.shims.script_of(id) {
            Some(Script::Running { pid } | Script::Paused { pid }) => Ok(pid),
            _ => Err(not_found("start", id)),
        }
    }

    async fn state(&self, id: &str, _exec_id: &str) -> Result<api::StateResponse, ShimError> {
        self.shims.record(Call::State { id: id.to_string() });
        // Decided now, delivered once the gate (if any) opens: an answer in flight.
        let answer = self.shims.script_of(id);
        self.shims.pass("state", id).await;
        let (status, pid, exit_status, exited_at) = match answer {
            Some(Script::Running { pid }) => (TaskStatus::RUNNING, pid, 0, None),
            Some(Script::Paused { pid }) => (TaskStatus::PAUSED, pid, 0, None),
            Some(Script::Stopped { pid, status, at }) => (TaskStatus::STOPPED, pid, status, Some(timestamp(at))),
            _ => return Err(not_found("state", id)),
        };
        Ok(api::StateResponse {
            id: id.to_string(),
            status: status.into(),
            pid,
            exit_status,
            exited_at: exited_at.into(),
            ..Default::default()
        })
    }

    async fn kill(&self, id: &str, _exec_id: &str, signal: u32, all: bool) -> Result<(), ShimError> {
        self.shims.record(Call::Kill { id: id.to_string(), signal, all });
        match self.shims.script_of(id) {
            Some(Script::Running { pid } | Script::Paused { pid }) => {
                if signal == libc::SIGKILL as u32 {
                    let at = SystemTime::now();
                    self.shims.state().scripts.insert(id.to_string(), Script::Stopped { pid, status: 128 + signal, at });
                }
                Ok(())
            }
            _ => Err(not_found("kill", id)),
        }
    }

    async fn wait(&self, id: &str, _exec_id: &str) -> Result<api::WaitResponse, ShimError> {
        self.shims.record(Call::Other { call: "wait", id: id.to_string() });
        match self.shims.script_of(id) {
            Some(Script::Stopped { status, at, .. }) => {
                Ok(api::WaitResponse { exit_status: status, exited_at: Some(timestamp(at)).into(), ..Default::default() })
            }
            _ => Err(ShimError::Call { call: "wait", message: "the fake cannot wait for a live task".into(), not_found: false }),
        }
    }

    async fn delete(&self, id: &str, exec_id: &str) -> Result<api::DeleteResponse, ShimError> {
        self.shims.record(Call::Delete { id: id.to_string(), exec_id: exec_id.to_string() });
        let mut st = self.shims.state();
        match st.scripts.get(id).copied() {
            Some(Script::Stopped { pid, status, at }) => {
                st.scripts.remove(id);
                Ok(api::DeleteResponse { pid, exit_status: status, exited_at: Some(timestamp(at)).into(), ..Default::default() })
            }
            // As the real shim: a live init is not deleted.
            Some(Script::Running { .. } | Script::Paused { .. }) => Err(ShimError::Call {
                call: "delete",
                message: format!("cannot delete process init of {id}: it is running"),
                not_found: false,
            }),
            _ => Err(not_found("delete", id)),
        }
    }

    async fn exec(&self, req: api::ExecProcessRequest) -> Result<(), ShimError> {
        self.other("exec", &req.id)
    }

    async fn pids(&self, id: &str) -> Result<Vec<u32>, ShimError> {
        self.other("pids", id)?;
        Ok(Vec::new())
    }

    async fn pause(&self, id: &str) -> Result<(), ShimError> {
        self.other("pause", id)
    }

    async fn resume(&self, id: &str) -> Result<(), ShimError> {
        self.other("resume", id)
    }

    async fn resize(&self, id: &str, _exec_id: &str, _width: u32, _height: u32) -> Result<(), ShimError> {
        self.other("resize", id)
    }

    async fn close_stdin(&self, id: &str, _exec_id: &str) -> Result<(), ShimError> {
        self.other("close stdin", id)
    }

    async fn stats(&self, id: &str) -> Result<Option<Any>, ShimError> {
        self.other("stats", id)?;
        Ok(None)
    }

    async fn shutdown(&self, id: &str) -> Result<(), ShimError> {
        self.shims.record(Call::Shutdown { id: id.to_string() });
        // As the real shim: it goes only once it has no init.
        let mut st = self.shims.state();
        if matches!(st.scripts.get(id), None | Some(Script::Empty)) {
            st.alive.remove(id);
            st.scripts.remove(id);
            if let Some(tx) = st.closers.remove(id) {
                tx.send_replace(true);
            }
        }
        Ok(())
    }

    fn closed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let mut rx = self.closed.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|closed| *closed).await;
        })
    }
}

/// `Containers` over a tempdir (root and state dirs, a real SQLite store)
/// with fake shims.
pub struct Harness {
    pub shims: FakeShims,
    pub containers: Arc<Containers>,
    pub kicks: mpsc::UnboundedReceiver<Kick>,
    _dir: TempDir,
}

impl Harness {
    /// Starts `id` in a task that holds the container's lock, and returns
    /// once its shim is up but the shim binary's `start` has not answered
    /// (held by the returned gate: add a permit to let it go on).
    pub async fn start_held_at_launch(&self, id: &str) -> (Arc<Semaphore>, tokio::task::JoinHandle<Result<ContainerRow, ContainerError>>) {
        let gate = self.shims.gate("launch", id);
        let c = self.containers.clone();
        let owned = id.to_string();
        let start = tokio::spawn(async move { c.start(&owned).await });
        until("the shim is up", || self.shims.alive(id)).await;
        (gate, start)
    }

    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths { root: dir.path().join("root"), state: dir.path().join("state") };
        let content = Arc::new(ContentStore::open(&paths.root.join("content")).expect("content store"));
        let store = Arc::new(Mutex::new(Store::open(&paths.root.join("meta.db")).expect("metadata store")));
        let shims = FakeShims::default();
        let (containers, kicks) = Containers::new(paths, store, content, Arc::new(shims.clone()));
        Harness { shims, containers, kicks, _dir: dir }
    }

    /// Inserts container `id` (named `<id>-name`) with this status and run
    /// config; `edit` changes the row before it is stored.
    pub fn insert(&self, id: &str, status: Status, config: Config, edit: impl FnOnce(&mut ContainerRow)) -> ContainerRow {
        let mut row = ContainerRow {
            id: id.into(),
            name: format!("{id}-name"),
            image: "busybox:latest".into(),
            spec: "{}".into(),
            // Started by the user (it exited on its own), unless never started.
            desired: if status == Status::Created { Desired::Stopped } else { Desired::Running },
            restart_policy: config.restart,
            bundle: self.containers.paths.bundle(id).display().to_string(),
            shim_address: status.is_live().then(|| address(id)),
            created: SystemTime::now(),
            exit_code: None,
            finished_at: None,
            exit_reason: None,
            config: serde_json::to_string(&config).expect("config serializes"),
            status,
            pid: if status.is_live() { 100 } else { 0 },
            started_at: None,
            restart_count: 0,
            oom_killed: false,
        };
        edit(&mut row);
        self.containers.db().insert_container(&row).expect("insert container");
        std::fs::create_dir_all(self.containers.paths.data(id)).expect("data dir");
        row
    }

    /// Leaves a bundle for `id` on disk, as a shim run leaves it.
    pub fn bundle(&self, id: &str) -> PathBuf {
        let b = self.containers.paths.bundle(id);
        std::fs::create_dir_all(b.join("rootfs")).expect("bundle");
        std::fs::write(b.join("config.json"), "{}").expect("config.json");
        b
    }

    /// Writes `value` into a column of `id`'s row behind the store's back
    /// (a hand edit, a downgrade, a bad disk).
    pub fn spoil(&self, id: &str, column: &str, value: &str) {
        let conn = rusqlite::Connection::open(self.containers.paths.root.join("meta.db")).expect("open meta.db");
        let sql = format!("UPDATE containers SET {column} = ?1 WHERE id = ?2");
        assert_eq!(conn.execute(&sql, [value, id]).expect("spoil the row"), 1, "no row {id}");
    }

    pub fn row(&self, id: &str) -> Option<ContainerRow> {
        self.containers.db().container(id).expect("read container")
    }

    /// The kicks sent so far.
    pub fn kicks(&mut self) -> Vec<Kick> {
        std::iter::from_fn(|| self.kicks.try_recv().ok()).collect()
    }
}

/// A run config with this restart policy.
pub fn config(restart: &str) -> Config {
    let restart = restart.parse().expect("a restart policy");
    Config { image: "busybox:latest".into(), restart, stop_signal: "SIGTERM".into(), ..Default::default() }
}

/// An exited row's fields: exit code, finish time, and a start time
/// `ran` before it.
pub fn exited(code: i64, finished: SystemTime, ran: std::time::Duration) -> impl FnOnce(&mut ContainerRow) {
    move |r| {
        r.exit_code = Some(code);
        r.finished_at = Some(finished);
        r.started_at = Some(finished - ran);
    }
}

/// Yields (paused time stands still) until `f` holds; fails the test after
/// a thousand turns of the scheduler.
pub async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never: {what}");
}
