//! rm [-f] and container prune.

use super::*;

impl Containers {
    /// Under the container's lock, check and act: a live container is
    /// killed and the lock let go while its exit is recorded; then the state
    /// is checked afresh, so a start that got in between is killed too, and
    /// no shim outlives its row.
    pub async fn remove(&self, id: &str, force: bool) -> Result<()> {
        let id = match self.get(id) {
            Ok(row) => row.id,
            Err(ContainerError::Store(StoreError::Corrupt { id, name, .. })) if force => return self.remove_unreadable(&id, &name).await,
            Err(e) => return Err(e),
        };
        let lock = self.lock_of(&id);
        let (row, _g) = loop {
            let g = lock.lock().await;
            let row = self.reread(&id)?;
            if !row.status.is_live() {
                break (row, g);
            }
            if !force {
                return Err(ContainerError::Conflict(format!(
                    "cannot remove container {}: it is {}: stop it first, or use --force",
                    row.name, row.status
                )));
            }
            self.db().update_container(&id, |r| r.desired = Desired::Stopped)?;
            let Ok(shim) = self.shim_of(&row) else {
                // No shim to ask: clean up after it now.
                self.shim_gone(&row).await;
                continue;
            };
            let _ = shim.kill(&row.id, "", libc::SIGKILL as u32, true).await;
            if row.status == Status::Paused {
                let _ = shim.resume(&row.id).await;
            }
            drop(g);
            if self.wait_stopped(&id, Some(Duration::from_secs(10))).await.is_err() {
                // Its shim does not answer: take it down regardless.
                let _g = lock.lock().await;
                if let Ok(now) = self.reread(&id) {
                    if now.status.is_live() && now.started_at == row.started_at {
                        self.lost(&now).await;
                    }
                }
            }
        };
        // The container is gone: its network's CNI DEL need not wait for the shim's.
        let config = Config::of(&row).ok();
        tokio::join!(self.teardown(&row.id), self.detach_network(&row.id, config.as_ref()));
        // The row goes first: data without a row (rindd killed in between)
        // is found and removed at the next start; a row without its data
        // would be a container that cannot run.
        self.db().delete_container(&row.id)?;
        self.remove_data(&row.id)?;
        self.locks.lock().expect("locks").remove(&row.id);
        // rm returns once the container's shim is gone too.
        self.await_retired(&row.id).await;
        // Its image may have gone before it (rmi --force): its layers go now.
        let image_gone = self.db().image(&row.image)?.is_none();
        if image_gone {
            // Off the async threads, and the store locked only to read its rows.
            let (root, content, store) = (self.paths.root.clone(), self.content.clone(), self.store.clone());
            match tokio::task::spawn_blocking(move || crate::services::images::collect_garbage_unlocked(&root, &content, &store)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(id = %row.id, error = %rind_common::error::Chain(&e), "collect image garbage"),
                Err(e) => tracing::warn!(id = %row.id, error = %rind_common::error::Chain(&e), "collect image garbage"),
            }
        }
        self.emit(&row, "destroy", None);
        Ok(())
    }

    /// `rm -f` of a container whose row does not read: whatever runs is
    /// torn down through the shim its bundle has (the row's address is
    /// unreadable, the derived one is the same), then the data and the row go.
    async fn remove_unreadable(&self, id: &str, name: &str) -> Result<()> {
        let lock = self.lock_of(id);
        let _g = lock.lock().await;
        tracing::warn!(id, name, "removing a container whose row does not read");
        self.teardown(id).await;
        self.detach_network(id, None).await;
        self.db().delete_container(id)?;
        self.remove_data(id)?;
        self.locks.lock().expect("locks").remove(id);
        self.await_retired(id).await;
        let _ = self.events.send(Event { time: SystemTime::now(), id: id.into(), name: name.into(), action: "destroy", exit_code: None });
        Ok(())
    }

    /// The container's persistent directory (upper dir, log, volumes).
    pub(super) fn remove_data(&self, id: &str) -> Result<()> {
        let data = self.paths.data(id);
        match std::fs::remove_dir_all(&data) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", &data)(e)),
            _ => Ok(()),
        }
    }

    pub async fn prune(&self) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        for row in self.list()? {
            if !row.status.is_live() {
                self.remove(&row.id, false).await?;
                gone.push(row.id);
            }
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{config, until, Call, Harness};
    use super::*;

    #[tokio::test]
    async fn rm_f_racing_start_kills_what_the_start_started() {
        let h = Harness::new();
        h.insert("a", Status::Created, config("no"), |_| {});
        // The start holds the lock while its shim comes up.
        let (gate, start) = h.start_held_at_launch("a").await;
        // rm -f read "created" before the start finished.
        let c = h.containers.clone();
        let rm = tokio::spawn(async move { c.remove("a", true).await });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        start.await.expect("join").expect("start");
        // The kill reaches the init; the shim reports its exit.
        let kill = Call::Kill { id: "a".into(), signal: libc::SIGKILL as u32, all: true };
        until("rm -f kills the container the start ran", || h.shims.calls().contains(&kill)).await;
        h.containers.task_exited("a", 1001, 137, SystemTime::now()).await;
        rm.await.expect("join").expect("rm -f");
        assert_eq!(h.row("a"), None);
        assert!(!h.shims.alive("a"), "no shim outlives its container");
        assert!(!h.containers.paths.bundle("a").exists());
    }

    #[tokio::test]
    async fn rm_f_removes_a_container_whose_row_does_not_read() {
        let h = Harness::new();
        h.insert("a", Status::Created, config("no"), |_| {});
        h.containers.start("a").await.expect("start");
        h.spoil("a", "status", "zombie");
        let e = h.containers.remove("a-name", false).await.expect_err("not without --force");
        assert!(e.to_string().contains("container a (a-name): bad status \"zombie\""), "{e}");
        assert!(h.shims.alive("a"));
        let mut events = h.containers.events.subscribe();
        h.containers.remove("a-name", true).await.expect("rm -f");
        assert!(h.containers.db().container("a").expect("the row is gone, not unreadable").is_none());
        // Its task is killed and its shim told to go, through the shim's own address.
        let calls = h.shims.calls();
        assert!(calls.contains(&Call::Kill { id: "a".into(), signal: libc::SIGKILL as u32, all: true }), "{calls:?}");
        assert!(calls.contains(&Call::Shutdown { id: "a".into() }), "{calls:?}");
        assert!(!h.shims.alive("a"), "no shim outlives its container");
        assert!(!h.containers.paths.bundle("a").exists() && !h.containers.paths.data("a").exists());
        let ev = events.try_recv().expect("an event");
        assert_eq!((ev.action, ev.name.as_str()), ("destroy", "a-name"));
    }

    #[tokio::test]
    async fn rm_without_force_refuses_a_running_container() {
        let h = Harness::new();
        h.insert("a", Status::Created, config("no"), |_| {});
        h.containers.start("a").await.expect("start");
        let e = h.containers.remove("a", false).await.expect_err("refused");
        assert!(e.to_string().contains("stop it first, or use --force"), "{e}");
        assert!(h.shims.alive("a"));
    }
}
