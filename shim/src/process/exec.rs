//! An exec's verbs: add (the Exec request, checked against the init's
//! state), start (the runtime's `exec --detach`), kill and delete. Each
//! holds the exec's lock across check, act, record and its event.

use std::sync::Arc;

use super::state::Verb;
use super::{io_err, read_pid, Process, ProcessError, ProcessId, Result};
use crate::container::Container;
use crate::exit_file::Exit;
use crate::paths;
use crate::stdio::{self, StdioConfig};

impl Container {
    /// Registers exec `exec_id` with its OCI process JSON; Start runs it.
    pub async fn add_exec(&self, exec_id: &str, stdio: StdioConfig, spec: Vec<u8>) -> Result<()> {
        let init = self.processes.get(&ProcessId::Init)?;
        let g = init.lock().await;
        init.check(&g, Verb::Exec)?;
        self.processes.insert(Arc::new(Process::new(ProcessId::Exec(exec_id.to_string()), stdio, spec)))?;
        self.events.exec_added(exec_id).await;
        drop(g);
        Ok(())
    }

    pub(crate) async fn start_exec(&self, exec_id: &str) -> Result<i32> {
        let p = self.processes.get(&ProcessId::Exec(exec_id.to_string()))?;
        let mut g = p.lock().await;
        let next = p.check(&g, Verb::Start)?;
        let runtime = self.runtime()?;
        let (spec_path, pid_path) = paths::exec_files(&self.bundle, exec_id);
        std::fs::write(&spec_path, &p.spec).map_err(io_err("write", &spec_path))?;
        let args = vec![
            "exec".into(),
            "--process".into(),
            spec_path.display().to_string(),
            "--detach".into(),
            "--pid-file".into(),
            pid_path.display().to_string(),
            self.id.clone(),
        ];
        let window = self.processes.begin_start();
        let r = stdio::run_with_io(&runtime, args, &p.stdio, &self.id, &self.namespace).await;
        let _ = std::fs::remove_file(&spec_path);
        let io = r?;
        let pid = read_pid(&pid_path)?;
        let _ = std::fs::remove_file(&pid_path);
        g.io = io;
        g.state = next;
        if let Some(status) = window.started(&p, pid) {
            self.exits.spawn_record(p.clone(), pid, status);
        }
        drop(window);
        self.events.started(&p.id, pid).await;
        Ok(pid)
    }

    pub(crate) async fn kill_exec(&self, exec_id: &str, signal: u32) -> Result<()> {
        let p = self.processes.get(&ProcessId::Exec(exec_id.to_string()))?;
        let g = p.lock().await;
        p.check(&g, Verb::Kill)?;
        let pid = p.pid();
        // SAFETY: kill(2) of the exec process we started and whose exit the
        // reaper has not seen (`check`), so the pid is still its own.
        if unsafe { libc::kill(pid, signal as i32) } != 0 {
            return Err(ProcessError::Io {
                op: "kill",
                path: format!("exec {exec_id} (pid {pid})"),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Deletes a created or stopped exec; returns its pid and exit.
    pub(crate) async fn delete_exec(&self, exec_id: &str) -> Result<(i32, Exit)> {
        let p = self.processes.get(&ProcessId::Exec(exec_id.to_string()))?;
        let mut g = p.lock().await;
        g.state = p.check(&g, Verb::Delete)?;
        self.processes.remove(&p);
        let pid = p.pid();
        Ok((pid, p.exit().unwrap_or_else(|| Exit::now(pid, 0))))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::process::state::State;
    use crate::runtime::testing;

    fn container(dir: &Path) -> Arc<Container> {
        testing::container(dir, Some("/bin/true"))
    }

    async fn with_init(dir: &Path, state: State) -> Arc<Container> {
        let c = container(dir);
        let init = Arc::new(Process::new(ProcessId::Init, StdioConfig::default(), Vec::new()));
        init.lock().await.state = state;
        c.processes.insert(init).unwrap();
        c
    }

    fn e1() -> ProcessId {
        ProcessId::Exec("e1".into())
    }

    #[tokio::test]
    async fn add_exec_follows_the_init_state() {
        let d = tempfile::tempdir().unwrap();
        let c = with_init(d.path(), State::Running).await;
        c.add_exec("e1", StdioConfig::default(), b"{}".to_vec()).await.unwrap();
        let e = c.add_exec("e1", StdioConfig::default(), Vec::new()).await.unwrap_err();
        assert_eq!(e.to_string(), "exec e1 already exists");
        let c = with_init(d.path(), State::Paused).await;
        let e = c.add_exec("e1", StdioConfig::default(), Vec::new()).await.unwrap_err();
        assert_eq!(e.to_string(), "cannot exec in process init: it is paused");
        let c = with_init(d.path(), State::Stopped).await;
        let e = c.add_exec("e1", StdioConfig::default(), Vec::new()).await.unwrap_err();
        assert_eq!(e.to_string(), "cannot exec in process init: it is stopped");
        let e = container(d.path()).add_exec("e1", StdioConfig::default(), Vec::new()).await.unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }

    #[tokio::test]
    async fn delete_exec_twice_at_once_the_second_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        let c = with_init(d.path(), State::Running).await;
        c.add_exec("e1", StdioConfig::default(), Vec::new()).await.unwrap();
        let id = e1();
        let (a, b) = tokio::join!(c.delete(&id), c.delete(&id));
        assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
        let second = if a.is_ok() { b } else { a };
        assert!(second.unwrap_err().is_not_found());
        assert!(c.delete(&e1()).await.unwrap_err().is_not_found());
        assert!(c.state(&e1()).await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn kill_of_a_created_exec_is_refused_not_sent_to_pid_0() {
        let d = tempfile::tempdir().unwrap();
        let c = with_init(d.path(), State::Running).await;
        c.add_exec("e1", StdioConfig::default(), Vec::new()).await.unwrap();
        let e = c.kill(&e1(), 9, false).await.unwrap_err();
        assert_eq!(e.to_string(), "cannot kill exec e1: it is created");
        assert!(!e.is_not_found());
    }

    #[tokio::test]
    async fn delete_of_a_running_exec_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let c = with_init(d.path(), State::Running).await;
        c.add_exec("e1", StdioConfig::default(), Vec::new()).await.unwrap();
        c.processes.get(&e1()).unwrap().lock().await.state = State::Running;
        assert_eq!(c.delete(&e1()).await.unwrap_err().to_string(), "cannot delete exec e1: it is running");
        assert!(c.state(&e1()).await.is_ok());
    }

    #[tokio::test]
    async fn deleting_the_init_ends_an_exec_wait_with_not_found() {
        let d = tempfile::tempdir().unwrap();
        let c = with_init(d.path(), State::Created).await;
        c.add_exec("e1", StdioConfig::default(), Vec::new()).await.unwrap();
        let wait = {
            let c = c.clone();
            tokio::spawn(async move { c.wait(&e1()).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        c.delete(&ProcessId::Init).await.unwrap();
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), wait).await.expect("the wait hangs").unwrap();
        assert!(r.unwrap_err().is_not_found());
    }
}
