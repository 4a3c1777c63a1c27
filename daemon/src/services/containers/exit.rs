//! An init exited (TaskExit, or what recovery found): record it, tell, tear down.

use super::*;

impl Containers {
    /// The shim reported the init's exit (TaskExit, or State at recovery).
    pub async fn task_exited(&self, id: &str, pid: u32, status: u32, exited_at: SystemTime) {
        let lock = self.lock_of(id);
        let _g = lock.lock().await;
        let Ok(Some(row)) = self.db().container(id) else { return };
        if !is_live(&row.status) || (pid != 0 && row.pid != pid as i64) {
            // An old exit (a previous run), or already recorded.
            return;
        }
        let finished = humantime::format_rfc3339_nanos(exited_at).to_string();
        let row = match self.db().update_container(id, |r| {
            r.status = "exited".into();
            r.exit_code = Some(status as i64);
            r.finished_at = Some(finished);
            r.pid = 0;
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(id, error = %e, "record exit");
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

    pub fn oom(&self, id: &str) {
        if let Ok(Some(row)) = self.db().container(id) {
            self.emit(&row, "oom", None);
        }
    }

    /// Marks a container whose shim vanished with no exit on disk.
    pub(super) async fn lost(&self, row: &ContainerRow) {
        let row = match self.db().update_container(&row.id, |r| {
            r.status = "dead".into();
            r.exit_code = None;
            r.exit_reason = Some("exit status unknown (shim lost)".into());
            r.finished_at = Some(now());
            r.pid = 0;
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(id = %row.id, error = %e, "record lost container");
                return;
            }
        };
        tracing::warn!(id = %row.id, name = %row.name, "shim lost: exit status unknown");
        self.teardown(&row.id).await;
        self.emit(&row, "die", None);
    }
}
