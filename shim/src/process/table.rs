//! Processes by id, and by pid for the exit monitor. A process can exit
//! before the runtime has told its pid (a short exec): while a start is in
//! progress, exits of unknown pids are kept, and the start claims its own
//! when it learns the pid (containerd's runc shim does the same with its
//! exit subscriptions around each start). Outside a start an unknown pid is
//! an orphan or a runtime command, and its exit is not kept: a stale exit
//! must not be claimed by a later process that reuses the pid.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Process, ProcessError, ProcessId, Result};

#[derive(Default)]
pub struct ProcessTable {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    init: Option<Arc<Process>>,
    execs: HashMap<String, Arc<Process>>,
    /// Live processes by pid, until their exit is seen.
    pids: HashMap<i32, Arc<Process>>,
    /// How many starts are in progress.
    starting: usize,
    /// Exits of unknown pids seen while `starting > 0`.
    early: HashMap<i32, u32>,
}

/// A start in progress (see the module doc). Dropping it ends the start.
pub struct StartWindow<'a> {
    table: &'a ProcessTable,
}

impl ProcessTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under this lock panics; a poisoned table is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, id: &ProcessId) -> Result<Arc<Process>> {
        let t = self.lock();
        let p = match id {
            ProcessId::Init => t.init.clone(),
            ProcessId::Exec(e) => t.execs.get(e).cloned(),
        };
        p.ok_or_else(|| ProcessError::NotFound { process: id.clone() })
    }

    pub fn init(&self) -> Option<Arc<Process>> {
        self.lock().init.clone()
    }

    pub fn insert(&self, p: Arc<Process>) -> Result<()> {
        let mut t = self.lock();
        let slot = match &p.id {
            ProcessId::Init => &mut t.init,
            ProcessId::Exec(e) => {
                if t.execs.contains_key(e) {
                    return Err(ProcessError::AlreadyExists { process: p.id.clone() });
                }
                t.execs.insert(e.clone(), p);
                return Ok(());
            }
        };
        if slot.is_some() {
            return Err(ProcessError::AlreadyExists { process: ProcessId::Init });
        }
        *slot = Some(p);
        Ok(())
    }

    /// Forgets `p` (if it is still the one under its id) and its pid.
    pub fn remove(&self, p: &Arc<Process>) {
        let mut t = self.lock();
        let slot = match &p.id {
            ProcessId::Init => t.init.as_ref(),
            ProcessId::Exec(e) => t.execs.get(e),
        };
        if slot.is_some_and(|q| Arc::ptr_eq(q, p)) {
            match &p.id {
                ProcessId::Init => t.init = None,
                ProcessId::Exec(e) => drop(t.execs.remove(e)),
            }
        }
        t.pids.retain(|_, q| !Arc::ptr_eq(q, p));
    }

    /// Forgets every process: the init was deleted, and its execs with it.
    pub fn clear(&self) {
        let mut t = self.lock();
        t.init = None;
        t.execs.clear();
        t.pids.clear();
    }

    /// Opens a start: from here until the window drops, unknown exits are kept.
    pub fn begin_start(&self) -> StartWindow<'_> {
        self.lock().starting += 1;
        StartWindow { table: self }
    }

    /// The reaper saw `pid` exit: its process if it is live, once. An
    /// unknown pid's exit is kept for a start in progress.
    pub fn exited(&self, pid: i32, status: u32) -> Option<Arc<Process>> {
        let mut t = self.lock();
        if let Some(p) = t.pids.remove(&pid) {
            return Some(p);
        }
        if t.starting > 0 {
            t.early.insert(pid, status);
        }
        None
    }
}

impl StartWindow<'_> {
    /// The runtime told `p`'s pid: record it, and return its exit status if
    /// the reaper saw it exit already.
    pub fn started(&self, p: &Arc<Process>, pid: i32) -> Option<u32> {
        p.set_pid(pid);
        let mut t = self.table.lock();
        if let Some(status) = t.early.remove(&pid) {
            return Some(status);
        }
        t.pids.insert(pid, p.clone());
        None
    }
}

impl Drop for StartWindow<'_> {
    fn drop(&mut self) {
        let mut t = self.table.lock();
        t.starting -= 1;
        if t.starting == 0 {
            t.early.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stdio::StdioConfig;

    fn process(id: ProcessId) -> Arc<Process> {
        Arc::new(Process::new(id, StdioConfig::default(), Vec::new()))
    }

    fn exec(id: &str) -> Arc<Process> {
        process(ProcessId::Exec(id.into()))
    }

    #[test]
    fn exited_finds_a_started_process_once() {
        let t = ProcessTable::default();
        let p = exec("e1");
        t.insert(p.clone()).unwrap();
        assert_eq!(t.begin_start().started(&p, 100), None);
        assert!(t.exited(100, 0).is_some_and(|q| Arc::ptr_eq(&q, &p)));
        assert!(t.exited(100, 0).is_none(), "a pid's exit is its process's once");
        assert_eq!(p.pid(), 100);
    }

    #[test]
    fn started_claims_an_exit_that_arrived_before_the_pid_was_known() {
        let t = ProcessTable::default();
        let p = exec("e1");
        t.insert(p.clone()).unwrap();
        let w = t.begin_start();
        assert!(t.exited(100, 3).is_none(), "the pid is not known yet");
        assert_eq!(w.started(&p, 100), Some(3));
        drop(w);
        assert!(t.exited(100, 0).is_none(), "a claimed exit does not leave the pid live");
    }

    #[test]
    fn exits_outside_a_start_are_not_kept_for_a_later_process() {
        let t = ProcessTable::default();
        let p = exec("e1");
        t.insert(p.clone()).unwrap();
        assert!(t.exited(100, 1).is_none());
        assert_eq!(t.begin_start().started(&p, 100), None, "a stale exit of a reused pid");
    }

    #[test]
    fn early_exits_are_forgotten_when_the_last_start_ends() {
        let t = ProcessTable::default();
        let (a, b) = (exec("a"), exec("b"));
        let wa = t.begin_start();
        let wb = t.begin_start();
        t.exited(100, 5);
        t.exited(200, 6);
        assert_eq!(wa.started(&a, 100), Some(5));
        drop(wa);
        assert_eq!(wb.started(&b, 200), Some(6), "another start's exit stays while it runs");
        drop(wb);
        t.exited(300, 7);
        assert_eq!(t.begin_start().started(&a, 300), None);
    }

    #[test]
    fn insert_refuses_a_second_init_or_exec_id() {
        let t = ProcessTable::default();
        t.insert(process(ProcessId::Init)).unwrap();
        t.insert(exec("e1")).unwrap();
        assert!(matches!(t.insert(process(ProcessId::Init)), Err(ProcessError::AlreadyExists { .. })));
        let e = t.insert(exec("e1")).unwrap_err();
        assert_eq!(e.to_string(), "exec e1 already exists");
    }

    #[test]
    fn remove_forgets_the_process_and_its_pid_but_not_a_newer_one() {
        let t = ProcessTable::default();
        let old = exec("e1");
        t.insert(old.clone()).unwrap();
        t.begin_start().started(&old, 100);
        t.remove(&old);
        assert!(t.get(&ProcessId::Exec("e1".into())).is_err_and(|e| e.is_not_found()));
        assert!(t.exited(100, 0).is_none());
        let new = exec("e1");
        t.insert(new.clone()).unwrap();
        t.remove(&old);
        assert!(t.get(&ProcessId::Exec("e1".into())).is_ok());
    }

    #[test]
    fn clear_forgets_the_init_and_every_exec() {
        let t = ProcessTable::default();
        let init = process(ProcessId::Init);
        t.insert(init.clone()).unwrap();
        t.insert(exec("e1")).unwrap();
        t.begin_start().started(&init, 1);
        t.clear();
        assert!(t.init().is_none());
        assert!(t.get(&ProcessId::Exec("e1".into())).is_err());
        assert!(t.exited(1, 0).is_none());
    }
}
