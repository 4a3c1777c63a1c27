//! Watching shims: each connected shim's connection is watched, so a shim
//! that dies while rindd runs is noticed at once, and its container is
//! marked as recovery marks it after a restart.

use super::*;

impl Containers {
    /// Makes `shim` the container's shim (under its lock) and watches it.
    pub(super) fn adopt(&self, id: &str, shim: Arc<dyn TaskApi>) {
        let watched = Arc::downgrade(&shim);
        let closed = shim.closed();
        self.shims.lock().expect("shims").insert(id.to_string(), shim);
        let me = self.me.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            closed.await;
            if let Some(me) = me.upgrade() {
                me.shim_closed(&id, &watched).await;
            }
        });
    }

    /// The connection to a shim of container `id` ended. If that shim is
    /// still the container's (not told to go by a teardown, not replaced by
    /// a new start), it died.
    async fn shim_closed(&self, id: &str, watched: &std::sync::Weak<dyn TaskApi>) {
        let lock = self.lock_of(id);
        let _g = lock.lock().await;
        {
            let mut shims = self.shims.lock().expect("shims");
            if !shims.get(id).is_some_and(|s| std::ptr::addr_eq(Arc::as_ptr(s), watched.as_ptr())) {
                return;
            }
            shims.remove(id);
        }
        let row = match self.db().container(id) {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(id, error = %rind_common::error::Chain(&e), "shim died: its container's row does not read");
                return;
            }
        };
        // Only our connection broke, not the shim: it answers a new one.
        if let Some(a) = row.shim_address.as_deref().filter(|_| row.status.is_live()) {
            if let Ok(Ok(shim)) = tokio::time::timeout(Duration::from_secs(1), self.launcher.connect(a)).await {
                if shim.state(id, "").await.is_ok() {
                    tracing::info!(id, "reconnected to the shim");
                    self.adopt(id, shim);
                    return;
                }
            }
        }
        tracing::warn!(id, name = %row.name, "shim died");
        if !row.status.is_live() {
            self.teardown(id).await;
            return;
        }
        if !self.shim_gone(&row).await {
            // An exit recorded kicks the loop itself; a lost one here.
            self.kick(id, false);
        }
    }

    /// The container's shim is gone (under its lock): the shim binary's
    /// `delete` cleans up after it and reports the init's exit, if the shim
    /// recorded one; otherwise the container is dead, its exit unknown.
    /// True if the exit was known.
    pub(super) async fn shim_gone(&self, row: &ContainerRow) -> bool {
        match self.teardown(&row.id).await {
            Some((status, Some(at))) => {
                self.task_exited_locked(&row.id, 0, status, at).await;
                true
            }
            _ => {
                self.lost(row).await;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{config, until, Call, Harness, Script};
    use super::*;

    /// Waits (yielding: time stands still) until `id` is no longer live.
    async fn wait_not_live(h: &Harness, id: &str) -> ContainerRow {
        for _ in 0..1000 {
            if let Some(r) = h.row(id).filter(|r| !r.status.is_live()) {
                return r;
            }
            tokio::task::yield_now().await;
        }
        panic!("{id} stayed live: {:?}", h.row(id));
    }

    #[tokio::test]
    async fn a_killed_shim_marks_its_container_dead_at_once() {
        let mut h = Harness::new();
        h.insert("a", Status::Created, config("no"), |_| {});
        h.containers.start("a").await.expect("start");
        let mut events = h.containers.events.subscribe();
        h.shims.kill_shim("a");
        let row = wait_not_live(&h, "a").await;
        assert_eq!((row.status, row.exit_code), (Status::Dead, None));
        assert_eq!(row.exit_reason.as_deref(), Some("exit status unknown (shim lost)"));
        assert_eq!((row.pid, row.shim_address), (0, None));
        assert!(h.containers.shim_for("a").is_err(), "no shim to call");
        assert!(h.shims.calls().contains(&Call::BinaryDelete { id: "a".into() }), "cleaned by the shim binary's delete");
        assert!(!h.containers.paths.bundle("a").exists(), "bundle removed");
        assert_eq!(events.recv().await.expect("an event").action, "die");
        let kicks = h.kicks();
        assert!(kicks.iter().any(|k| k.id == "a" && !k.daemon_start), "the loop decides on a restart: {kicks:?}");
        // Stop and rm now answer for a container that is not running.
        h.containers.stop("a", None).await.expect("stop");
        h.containers.remove("a", false).await.expect("rm");
    }

    #[tokio::test]
    async fn a_killed_shim_that_recorded_the_exit_reports_it() {
        let h = Harness::new();
        h.insert("a", Status::Created, config("no"), |_| {});
        h.containers.start("a").await.expect("start");
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 42);
        h.shims.delete_reports("a", 3, t);
        h.shims.kill_shim("a");
        let row = wait_not_live(&h, "a").await;
        assert_eq!((row.status, row.exit_code), (Status::Exited, Some(3)));
        assert_eq!(row.finished_at, Some(t));
    }

    #[tokio::test]
    async fn a_broken_connection_to_a_live_shim_is_made_again() {
        let h = Harness::new();
        h.insert("a", Status::Created, config("no"), |_| {});
        h.containers.start("a").await.expect("start");
        h.shims.drop_connections("a");
        until("a new connection", || h.shims.count(|c| matches!(c, Call::Connect { .. })) == 2).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(h.row("a").expect("row").status, Status::Running);
        assert!(h.containers.shim_for("a").is_ok());
        assert_eq!(h.shims.count(|c| matches!(c, Call::BinaryDelete { .. })), 0, "nothing cleaned behind the shim's back");
        // The new connection is watched as the first was.
        h.shims.kill_shim("a");
        assert_eq!(wait_not_live(&h, "a").await.status, Status::Dead);
    }

    #[tokio::test]
    async fn a_shim_told_to_go_is_not_a_lost_one() {
        let h = Harness::new();
        h.insert("a", Status::Created, config("no"), |_| {});
        h.containers.start("a").await.expect("start");
        h.shims.script("a", Script::Stopped { pid: 1001, status: 0, at: SystemTime::now() });
        // The exit tears down: Delete, then Shutdown closes the connection.
        h.containers.task_exited("a", 1001, 0, SystemTime::now()).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.exit_code), (Status::Exited, Some(0)));
        assert_eq!(h.shims.count(|c| matches!(c, Call::BinaryDelete { .. })), 0);
    }
}
