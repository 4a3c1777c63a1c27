//! Exits: the monitor takes every exit the reaper sees, finds its process
//! in the table, and the recorder records it in this order: drain the
//! process's output, write the init's exit file, move the process to
//! stopped and wake its waiters, then publish TaskExit until delivered.
//! Nothing on the way can drop or lag (see `reaper.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::events::TaskEvents;
use crate::exit_file::{self, Exit};
use crate::paths;
use crate::process::state::Verb;
use crate::process::table::ProcessTable;
use crate::process::{Process, ProcessId};
use crate::reaper::Subscription;

/// Background processes may hold the output pipes open: do not wait for
/// them forever before telling the exit.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ExitRecorder {
    bundle: PathBuf,
    events: Arc<TaskEvents>,
}

impl ExitRecorder {
    pub fn new(bundle: PathBuf, events: Arc<TaskEvents>) -> ExitRecorder {
        ExitRecorder { bundle, events }
    }

    /// Records the exit of every process of `table` that `exits` reports.
    pub fn monitor(self: &Arc<Self>, table: Arc<ProcessTable>, mut exits: Subscription) -> JoinHandle<()> {
        let recorder = self.clone();
        tokio::spawn(async move {
            while let Some(ev) = exits.recv().await {
                if let Some(p) = table.exited(ev.pid, ev.status) {
                    recorder.spawn_record(p, ev.pid, ev.status);
                }
            }
            tracing::warn!("the reaper is gone: no more exits are recorded");
        })
    }

    /// Records in the background: the process lock may be held by the verb
    /// that learned the pid, and the output may take a while to drain.
    pub fn spawn_record(self: &Arc<Self>, p: Arc<Process>, pid: i32, status: u32) -> JoinHandle<()> {
        let recorder = self.clone();
        tokio::spawn(async move { recorder.record(p, pid, status).await })
    }

    async fn record(&self, p: Arc<Process>, pid: i32, status: u32) {
        let exit = Exit::now(pid, status);
        tracing::debug!(process = %p.id, pid, status, "exited");
        let copies = {
            let mut g = p.lock().await;
            g.reaped = true;
            std::mem::take(&mut g.io.tasks)
        };
        for h in copies {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, h).await;
        }
        {
            let mut g = p.lock().await;
            let next = match p.check(&g, Verb::Exit) {
                Ok(next) => next,
                // Deleted meanwhile (a created init that Delete killed): nobody is told.
                Err(e) => {
                    tracing::debug!(process = %p.id, pid, error = %e, "exit not recorded");
                    return;
                }
            };
            if p.id == ProcessId::Init {
                let path = self.bundle.join(paths::EXIT_FILE);
                if let Err(e) = exit_file::write(&path, &exit) {
                    tracing::error!(error = %e, path = %path.display(), "write exit file");
                }
            }
            p.record_exit(&mut g, next, exit.clone());
            self.events.exited(&p.id, &exit);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::events::Publisher;
    use crate::process::state::State;
    use crate::reaper::{ExitEvent, Reaper};
    use crate::stdio::StdioConfig;

    fn recorder(bundle: &std::path::Path) -> Arc<ExitRecorder> {
        let events = TaskEvents::new(Publisher::new(String::new(), "ns".into()), "c".into(), Arc::new(AtomicBool::new(false)));
        Arc::new(ExitRecorder::new(bundle.to_path_buf(), Arc::new(events)))
    }

    async fn running(table: &ProcessTable, id: ProcessId, pid: i32) -> Arc<Process> {
        let p = Arc::new(Process::new(id, StdioConfig::default(), Vec::new()));
        table.insert(p.clone()).unwrap();
        p.lock().await.state = State::Running;
        assert_eq!(table.begin_start().started(&p, pid), None);
        p
    }

    #[tokio::test]
    async fn record_writes_the_exit_file_before_waiters_wake() {
        let d = tempfile::tempdir().unwrap();
        let table = ProcessTable::default();
        let p = running(&table, ProcessId::Init, 10).await;
        let waiter = p.waiter();
        let file = d.path().join(paths::EXIT_FILE);
        let check = tokio::spawn(async move {
            let e = waiter.await.unwrap();
            (exit_file::read(&file), e)
        });
        recorder(d.path()).record(p.clone(), 10, 3).await;
        let (on_disk, told) = check.await.unwrap();
        assert_eq!(on_disk, Some(told.clone()), "the exit file was there when the waiter woke");
        assert_eq!((told.pid, told.status), (10, 3));
        assert_eq!(p.snapshot().await.unwrap().state, State::Stopped);
    }

    #[tokio::test]
    async fn record_of_a_deleted_process_tells_nobody() {
        let d = tempfile::tempdir().unwrap();
        let table = ProcessTable::default();
        let p = running(&table, ProcessId::Init, 10).await;
        p.lock().await.state = State::Deleted;
        recorder(d.path()).record(p.clone(), 10, 137).await;
        assert!(p.exit().is_none());
        assert!(!d.path().join(paths::EXIT_FILE).exists(), "Delete removed it; a late exit must not bring it back");
    }

    #[tokio::test]
    async fn record_waits_for_the_output_copies() {
        let d = tempfile::tempdir().unwrap();
        let table = ProcessTable::default();
        let p = running(&table, ProcessId::Exec("e1".into()), 10).await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let drained = Arc::new(AtomicBool::new(false));
        let flag = drained.clone();
        p.lock().await.io.tasks.push(tokio::spawn(async move {
            let _ = rx.await;
            flag.store(true, Ordering::SeqCst);
        }));
        let rec = recorder(d.path()).spawn_record(p.clone(), 10, 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(p.exit().is_none(), "told before the output was drained");
        tx.send(()).unwrap();
        rec.await.unwrap();
        assert!(drained.load(Ordering::SeqCst));
        assert_eq!(p.exit().map(|e| e.status), Some(0));
    }

    /// With the old broadcast channel (4096 slots) the monitor lagged behind
    /// such a flood, ended, and the exit below was never recorded.
    #[tokio::test]
    async fn monitor_records_an_exit_behind_a_flood_of_unknown_exits() {
        let d = tempfile::tempdir().unwrap();
        let reaper = Reaper::default();
        let table = Arc::new(ProcessTable::default());
        let p = running(&table, ProcessId::Exec("e1".into()), 42).await;
        let sub = reaper.subscribe();
        for pid in 1000..11000 {
            reaper.notify(ExitEvent { pid, status: 0 });
        }
        reaper.notify(ExitEvent { pid: 42, status: 9 });
        let _monitor = recorder(d.path()).monitor(table, sub);
        let exit = tokio::time::timeout(Duration::from_secs(10), p.waiter()).await.expect("the exit was lost").unwrap();
        assert_eq!(exit.status, 9);
    }

    #[tokio::test]
    async fn monitor_records_an_exit_that_arrived_before_the_pid_was_known() {
        let d = tempfile::tempdir().unwrap();
        let reaper = Reaper::default();
        let table = Arc::new(ProcessTable::default());
        let rec = recorder(d.path());
        let monitor = rec.monitor(table.clone(), reaper.subscribe());
        let p = Arc::new(Process::new(ProcessId::Exec("e1".into()), StdioConfig::default(), Vec::new()));
        table.insert(p.clone()).unwrap();
        // What an exec start does: open the window, run the runtime (the
        // process exits meanwhile), then learn the pid under the lock.
        let mut g = p.lock().await;
        let window = table.begin_start();
        reaper.notify(ExitEvent { pid: 77, status: 5 });
        // The monitor ends once it has read everything the reaper sent.
        drop(reaper);
        monitor.await.unwrap();
        g.state = State::Running;
        let early = window.started(&p, 77).expect("the early exit is kept");
        rec.spawn_record(p.clone(), 77, early);
        drop(window);
        drop(g);
        let exit = tokio::time::timeout(Duration::from_secs(10), p.waiter()).await.unwrap().unwrap();
        assert_eq!((exit.pid, exit.status), (77, 5));
    }
}
