//! An init exited (TaskExit, or what recovery found): record it, tell, tear down.

use super::*;

impl Containers {
    /// The shim reported the init's exit (TaskExit, or State at recovery).
    pub async fn task_exited(&self, id: &str, pid: u32, status: u32, exited_at: SystemTime) {
        let lock = self.lock_of(id);
        let _g = lock.lock().await;
        self.task_exited_locked(id, pid, status, exited_at).await;
    }

    /// The same, under the container's lock (pid 0: any run's exit).
    pub(super) async fn task_exited_locked(&self, id: &str, pid: u32, status: u32, exited_at: SystemTime) {
        let row = match self.db().container(id) {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(id, status, error = %rind_common::error::Chain(&e), "record exit");
                return;
            }
        };
        if !row.status.is_live() || (pid != 0 && row.pid != pid as i64) {
            // An old exit (a previous run), or already recorded.
            return;
        }
        let row = match self.db().update_container(id, |r| {
            r.status = Status::Exited;
            r.exit_code = Some(status as i64);
            r.finished_at = Some(exited_at);
            r.pid = 0;
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(id, error = %rind_common::error::Chain(&e), "record exit");
                return;
            }
        };
        tracing::info!(id, name = %row.name, status, "container exited");
        // Waiters learn at once (the log is complete: the shim drains it
        // before it reports); the loop acts only once the shim is gone.
        self.emit(&row, "die", Some(status as i64));
        self.teardown(id).await;
        self.kick(id, false);
    }

    /// The shim saw an OOM kill in the container's memory cgroup (TaskOOM):
    /// recorded until the next start, which resets it (Docker's State.OOMKilled).
    pub fn oom(&self, id: &str) {
        let recorded = self.db().update_container(id, |r| r.oom_killed = true);
        match recorded {
            Ok(row) => self.emit(&row, "oom", None),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => tracing::error!(id, error = %rind_common::error::Chain(&e), "record oom"),
        }
    }

    /// Marks a container whose shim vanished with no exit recorded (under
    /// its lock).
    pub(super) async fn lost(&self, row: &ContainerRow) {
        let row = match self.db().update_container(&row.id, |r| {
            r.status = Status::Dead;
            r.exit_code = None;
            r.exit_reason = Some("exit status unknown (shim lost)".into());
            r.finished_at = Some(SystemTime::now());
            r.pid = 0;
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(id = %row.id, error = %rind_common::error::Chain(&e), "record lost container");
                return;
            }
        };
        tracing::warn!(id = %row.id, name = %row.name, "shim lost: exit status unknown");
        self.teardown(&row.id).await;
        self.emit(&row, "die", None);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{config, Harness};
    use super::*;

    #[tokio::test]
    async fn oom_is_recorded_until_the_next_start() {
        let h = Harness::new();
        h.insert("a", Status::Running, config("no"), |_| {});
        let mut events = h.containers.events.subscribe();
        h.containers.oom("a");
        assert_eq!(events.try_recv().expect("an event").action, "oom");
        h.containers.task_exited("a", 100, 137, SystemTime::now()).await;
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.exit_code, row.oom_killed), (Status::Exited, Some(137), true), "the exit keeps it");
        h.containers.start("a").await.expect("start");
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.oom_killed), (Status::Running, false), "a new run starts without it");
        h.containers.oom("gone");
    }
}
