//! The reconcile loop: restart policies with back-off.

use super::*;

impl Containers {
    /// The one loop that compares desired with actual state and acts: on
    /// daemon start for every container, then after every exit.
    pub async fn reconcile_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Kick>) {
        while let Some(k) = rx.recv().await {
            let me = self.clone();
            tokio::spawn(async move { me.reconcile(k).await });
        }
    }

    async fn reconcile(self: Arc<Self>, k: Kick) {
        let Ok(Some(row)) = self.db().container(&k.id) else { return };
        if is_live(&row.status) || row.status == "created" {
            return;
        }
        let c = Self::config(&row);
        let policy = c.policy();
        let stopped = restart::Stopped {
            by_user: row.desired == "stopped",
            exit_code: row.exit_code,
            restart_count: row.restart_count as u32,
            daemon_start: k.daemon_start,
        };
        if !restart::should_restart(policy, stopped) {
            if c.auto_remove {
                match self.remove(&row.id, false).await {
                    // Another kick for the same exit got there first.
                    Ok(()) | Err(ContainerError::NotFound(_)) => {}
                    Err(e) => tracing::warn!(id = %row.id, error = %e, "auto-remove"),
                }
            }
            return;
        }
        // A container that ran for a while starts its back-off afresh.
        let ran = match (row.started_at.as_deref().and_then(parse_time), row.finished_at.as_deref().and_then(parse_time)) {
            (Some(s), Some(f)) => f.duration_since(s).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let count = if ran >= restart::RESET_AFTER { 0 } else { row.restart_count as u32 };
        let delay = if k.daemon_start { Duration::ZERO } else { restart::backoff(count) };
        let lock = self.lock_of(&row.id);
        {
            // Claim this exit (another kick may carry the same one), and show
            // the back-off as docker does: "restarting".
            let _g = lock.lock().await;
            let Ok(Some(now_row)) = self.db().container(&row.id) else { return };
            if now_row.status != row.status || now_row.finished_at != row.finished_at {
                return;
            }
            if self.db().update_container(&row.id, |r| r.status = "restarting".into()).is_err() {
                return;
            }
        }
        tracing::info!(id = %row.id, name = %row.name, policy = policy.name(), delay_ms = delay.as_millis() as u64, "restarting");
        tokio::time::sleep(delay).await;
        let _g = lock.lock().await;
        // Anything the user did meanwhile wins: a start, a removal, a stop.
        let Ok(Some(now_row)) = self.db().container(&row.id) else { return };
        if now_row.status != "restarting" || now_row.finished_at != row.finished_at {
            return;
        }
        if now_row.desired == "stopped" && !k.daemon_start {
            let was = if row.status == "restarting" { "exited".to_string() } else { row.status.clone() };
            let _ = self.db().update_container(&row.id, |r| r.status = was);
            return;
        }
        if count == 0 && row.restart_count > 0 {
            let _ = self.db().update_container(&row.id, |r| r.restart_count = 0);
        }
        if k.daemon_start {
            let _ = self.db().update_container(&row.id, |r| r.desired = "running".into());
        }
        let latest = match self.db().container(&row.id) {
            Ok(Some(r)) => r,
            _ => return,
        };
        if let Err(e) = self.start_locked(latest, true).await {
            tracing::warn!(id = %row.id, error = %e, "restart failed");
            drop(_g);
            // Try again later, with a longer back-off.
            let _ = self.db().update_container(&row.id, |r| r.restart_count += 1);
            self.kick(&row.id, false);
        }
    }
}
