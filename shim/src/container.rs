//! The one container a shim serves: its bundle, the runtime that runs it,
//! its processes and the exit recorder. The Task service calls the verbs
//! here; those of one process kind are in `process/init.rs` and
//! `process/exec.rs`, and this file sends each request to its kind.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use crate::events::{Publisher, TaskEvents};
use crate::exit_file::Exit;
use crate::exits::ExitRecorder;
use crate::process::state::State;
use crate::process::table::ProcessTable;
use crate::process::{ProcessError, ProcessId, Result, Snapshot};
use crate::reaper::Subscription;
use crate::runtime::{Runtime, Spawner};
use crate::stdio::StdioConfig;

pub struct Container {
    pub namespace: String,
    pub id: String,
    pub bundle: PathBuf,
    pub(crate) spawner: Arc<dyn Spawner>,
    /// Chosen by Create (the runc options, the environment, or rind-runtime).
    runtime: Mutex<Option<Arc<Runtime>>>,
    pub(crate) processes: Arc<ProcessTable>,
    pub(crate) events: Arc<TaskEvents>,
    pub(crate) exits: Arc<ExitRecorder>,
    /// The init was deleted: a TaskExit not delivered yet is no longer retried.
    pub(crate) deleted: Arc<AtomicBool>,
    pub(crate) rootfs_mounted: AtomicBool,
}

impl Container {
    pub fn new(namespace: String, id: String, bundle: PathBuf, spawner: Arc<dyn Spawner>, publisher: Arc<Publisher>) -> Arc<Container> {
        let deleted = Arc::new(AtomicBool::new(false));
        let events = Arc::new(TaskEvents::new(publisher, id.clone(), deleted.clone()));
        let exits = Arc::new(ExitRecorder::new(bundle.clone(), events.clone()));
        Arc::new(Container {
            namespace,
            id,
            bundle,
            spawner,
            runtime: Mutex::new(None),
            processes: Arc::new(ProcessTable::default()),
            events,
            exits,
            deleted,
            rootfs_mounted: AtomicBool::new(false),
        })
    }

    /// Records every exit on `exits` (subscribe before anything is spawned).
    pub fn monitor_exits(&self, exits: Subscription) -> tokio::task::JoinHandle<()> {
        self.exits.monitor(self.processes.clone(), exits)
    }

    pub(crate) fn runtime(&self) -> Result<Arc<Runtime>> {
        self.runtime.lock().unwrap_or_else(PoisonError::into_inner).clone().ok_or(ProcessError::NotCreated)
    }

    pub(crate) fn set_runtime(&self, runtime: Arc<Runtime>) {
        *self.runtime.lock().unwrap_or_else(PoisonError::into_inner) = Some(runtime);
    }

    /// Starts the created init or exec; returns its pid.
    pub async fn start(&self, id: &ProcessId) -> Result<i32> {
        match id {
            ProcessId::Init => self.start_init().await,
            ProcessId::Exec(e) => self.start_exec(e).await,
        }
    }

    /// Deletes a created or stopped process; returns its pid and exit.
    pub async fn delete(&self, id: &ProcessId) -> Result<(i32, Exit)> {
        match id {
            ProcessId::Init => self.delete_init().await,
            ProcessId::Exec(e) => self.delete_exec(e).await,
        }
    }

    pub async fn kill(&self, id: &ProcessId, signal: u32, all: bool) -> Result<()> {
        match id {
            ProcessId::Init => self.kill_init(signal, all).await,
            ProcessId::Exec(e) => self.kill_exec(e, signal).await,
        }
    }

    /// The process's state, pid and exit, with the stdio it was given.
    pub async fn state(&self, id: &ProcessId) -> Result<(Snapshot, StdioConfig)> {
        let p = self.processes.get(id)?;
        Ok((p.snapshot().await?, p.stdio.clone()))
    }

    /// Waits for the process's exit, however long that takes.
    pub async fn wait(&self, id: &ProcessId) -> Result<Exit> {
        let waiter = self.processes.get(id)?.waiter();
        waiter.await
    }

    pub async fn resize_pty(&self, id: &ProcessId, width: u32, height: u32) -> Result<()> {
        let p = self.processes.get(id)?;
        let g = p.lock().await;
        if g.state == State::Deleted {
            return Err(ProcessError::NotFound { process: id.clone() });
        }
        let console = g.io.console.clone().ok_or_else(|| ProcessError::NoTerminal { process: id.clone() })?;
        crate::console::resize(&console, width, height).map_err(|source| ProcessError::Io { op: "resize", path: "pty".into(), source })
    }

    pub async fn close_stdin(&self, id: &ProcessId) -> Result<()> {
        let p = self.processes.get(id)?;
        let mut g = p.lock().await;
        if g.state == State::Deleted {
            return Err(ProcessError::NotFound { process: id.clone() });
        }
        g.io.close_stdin();
        Ok(())
    }

    /// The container's pids, as the runtime lists them.
    pub async fn pids(&self) -> Result<Vec<u32>> {
        let out = self.runtime()?.output(&["ps".into(), "--format".into(), "json".into(), self.id.clone()]).await?;
        Ok(serde_json::from_slice(&out).unwrap_or_default())
    }

    /// The "data" of the runtime's stats event.
    pub async fn stats(&self) -> Result<serde_json::Value> {
        let out = self.runtime()?.output(&["events".into(), "--stats".into(), self.id.clone()]).await?;
        let v: serde_json::Value = serde_json::from_slice(&out).map_err(ProcessError::Stats)?;
        Ok(v["data"].clone())
    }

    /// The init's pid, 0 before Create.
    pub fn init_pid(&self) -> i32 {
        self.processes.init().map_or(0, |p| p.pid())
    }

    /// The shim may go once there is no init (never created, or deleted).
    pub fn can_shut_down(&self) -> bool {
        self.processes.init().is_none()
    }
}
