//! At daemon start: what every shim says, and what has no owner.

use super::*;

impl Containers {
    /// At daemon start, before serving: find out what every shim says and
    /// clean what has no owner. Then every container goes to the loop.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        let rows = self.list()?;
        let mut set = tokio::task::JoinSet::new();
        for row in rows.clone() {
            let me = self.clone();
            set.spawn(async move { me.recover_one(row).await });
        }
        while set.join_next().await.is_some() {}
        // Bundles with no row: a create or remove cut short.
        let dir = self.paths.state.join("containers");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !rows.iter().any(|r| r.id == id) {
                    tracing::info!(id, "cleaning an orphaned bundle");
                    self.teardown(&id).await;
                }
            }
        }
        for row in self.list()? {
            self.kick(&row.id, true);
        }
        Ok(())
    }

    async fn recover_one(&self, row: ContainerRow) {
        let bundle = self.paths.bundle(&row.id);
        if !is_live(&row.status) {
            if bundle.exists() || row.shim_address.is_some() {
                self.teardown(&row.id).await;
            }
            return;
        }
        let shim = match &row.shim_address {
            Some(a) => tokio::time::timeout(Duration::from_secs(2), self.launcher.connect(a)).await.ok().and_then(|r| r.ok()),
            None => None,
        };
        if let Some(shim) = shim {
            match shim.state(&row.id, "").await {
                Ok(st) => {
                    use containerd_shim_protos::types::task::Status;
                    match st.status.enum_value_or_default() {
                        Status::RUNNING | Status::PAUSED | Status::PAUSING => {
                            let status = if st.status.enum_value_or_default() == Status::RUNNING { "running" } else { "paused" };
                            self.shims.lock().expect("shims").insert(row.id.clone(), shim);
                            let _ = self.db().update_container(&row.id, |r| r.status = status.into());
                            return;
                        }
                        Status::STOPPED => {
                            let at = st.exited_at.as_ref().map(crate::shims::to_system_time).unwrap_or_else(SystemTime::now);
                            self.shims.lock().expect("shims").insert(row.id.clone(), shim);
                            self.task_exited(&row.id, st.pid, st.exit_status, at).await;
                            return;
                        }
                        _ => {}
                    }
                }
                Err(e) => tracing::warn!(id = %row.id, error = %e, "shim state"),
            }
        }
        // The shim is gone. Its exit file, if it wrote one, is the truth.
        #[derive(Deserialize)]
        struct ExitFile {
            status: u32,
            exited_at: String,
        }
        let exit: Option<ExitFile> = std::fs::read(bundle.join("exit")).ok().and_then(|d| serde_json::from_slice(&d).ok());
        match exit {
            Some(e) => {
                let at = parse_time(&e.exited_at).unwrap_or_else(SystemTime::now);
                self.task_exited(&row.id, 0, e.status, at).await;
            }
            None => self.lost(&row).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{self, config, Call, Harness, Script};
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn rfc3339(t: SystemTime) -> String {
        humantime::format_rfc3339_nanos(t).to_string()
    }

    fn write_exit(bundle: &Path, status: u32, t: SystemTime) {
        let json = serde_json::json!({ "pid": 100, "status": status, "exited_at": rfc3339(t) });
        std::fs::write(bundle.join("exit"), json.to_string()).expect("write exit file");
    }

    #[tokio::test]
    async fn recover_keeps_running_when_the_shim_says_running() {
        let mut h = Harness::new();
        h.insert("a", "running", config("no"), |_| {});
        let bundle = h.bundle("a");
        h.shims.script("a", Script::Running { pid: 100 });
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!((row.status.as_str(), row.pid), ("running", 100));
        assert_eq!(row.shim_address, Some(fake::address("a")));
        assert!(h.containers.shim_for("a").is_ok(), "the shim is adopted");
        assert!(bundle.is_dir(), "a live container keeps its bundle");
        assert_eq!(h.shims.count(|c| matches!(c, Call::Delete { .. } | Call::BinaryDelete { .. } | Call::Shutdown { .. })), 0);
        let kicks = h.kicks();
        assert!(kicks.iter().all(|k| k.id == "a" && k.daemon_start) && kicks.len() == 1, "{kicks:?}");
    }

    #[tokio::test]
    async fn recover_marks_paused_when_the_shim_says_paused() {
        let h = Harness::new();
        h.insert("a", "running", config("no"), |_| {});
        h.bundle("a");
        h.shims.script("a", Script::Paused { pid: 100 });
        h.containers.recover().await.expect("recover");
        assert_eq!(h.row("a").expect("row").status, "paused");
        assert!(h.containers.shim_for("a").is_ok(), "the shim is adopted");
    }

    #[tokio::test]
    async fn recover_records_the_shims_exit_when_stopped() {
        let mut h = Harness::new();
        h.insert("a", "running", config("no"), |_| {});
        let bundle = h.bundle("a");
        let t = at(1_700_000_000, 123_456_789);
        h.shims.script("a", Script::Stopped { pid: 100, status: 3, at: t });
        let mut events = h.containers.events.subscribe();
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!(row.status, "exited");
        assert_eq!(row.exit_code, Some(3));
        assert_eq!(row.finished_at, Some(rfc3339(t)), "the shim's exit time, to the nanosecond");
        assert_eq!((row.pid, row.shim_address), (0, None));
        // Torn down through the shim that reported it: no cleanup behind its back.
        let calls = h.shims.calls();
        assert!(calls.contains(&Call::Delete { id: "a".into(), exec_id: String::new() }), "{calls:?}");
        assert!(calls.contains(&Call::Shutdown { id: "a".into() }), "{calls:?}");
        assert!(!calls.contains(&Call::BinaryDelete { id: "a".into() }), "{calls:?}");
        assert!(!bundle.exists(), "bundle removed");
        let die = events.try_recv().expect("an event");
        assert_eq!((die.action, die.exit_code), ("die", Some(3)));
        // The exit's own kick, then daemon start's.
        let kicks: Vec<bool> = h.kicks().into_iter().map(|k| k.daemon_start).collect();
        assert_eq!(kicks, [false, true]);
    }

    #[tokio::test]
    async fn recover_reads_the_exit_file_when_the_shim_is_unreachable() {
        let h = Harness::new();
        h.insert("a", "running", config("no"), |_| {});
        let bundle = h.bundle("a");
        let t = at(1_700_000_100, 987_654_321);
        write_exit(&bundle, 137, t);
        h.shims.script("a", Script::Unreachable);
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!((row.status.as_str(), row.exit_code), ("exited", Some(137)));
        assert_eq!(row.finished_at, Some(rfc3339(t)));
        assert_eq!(row.exit_reason, None);
        // With no shim to ask, the binary's `delete` cleans up.
        assert!(h.shims.calls().contains(&Call::BinaryDelete { id: "a".into() }));
        assert!(!bundle.exists(), "bundle removed");
    }

    #[tokio::test]
    async fn recover_reads_the_exit_file_when_the_shim_has_no_task() {
        let h = Harness::new();
        h.insert("a", "running", config("no"), |_| {});
        let bundle = h.bundle("a");
        write_exit(&bundle, 2, at(1_700_000_200, 5));
        // Nothing scripted: the shim answers, but knows no task "a".
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!((row.status.as_str(), row.exit_code), ("exited", Some(2)));
        assert_eq!(row.finished_at, Some(rfc3339(at(1_700_000_200, 5))));
    }

    #[tokio::test]
    async fn recover_marks_dead_when_the_shim_is_lost_without_an_exit() {
        let h = Harness::new();
        h.insert("a", "running", config("always"), |_| {});
        let bundle = h.bundle("a");
        h.shims.script("a", Script::Unreachable);
        // The binary's `delete` makes up an exit; rindd does not believe it.
        h.shims.delete_reports("a", 137, at(1_700_000_000, 0));
        let mut events = h.containers.events.subscribe();
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!(row.status, "dead");
        assert_eq!(row.exit_code, None, "exit status unknown, not a made-up one");
        assert_eq!(row.exit_reason.as_deref(), Some("exit status unknown (shim lost)"));
        assert!(row.finished_at.is_some());
        assert_eq!((row.pid, row.shim_address), (0, None));
        assert!(h.shims.calls().contains(&Call::BinaryDelete { id: "a".into() }));
        assert!(!bundle.exists(), "bundle removed");
        let die = events.try_recv().expect("an event");
        assert_eq!((die.action, die.exit_code), ("die", None));
    }

    #[tokio::test]
    async fn recover_marks_dead_when_a_live_row_has_no_shim_address() {
        let h = Harness::new();
        h.insert("a", "running", config("no"), |r| r.shim_address = None);
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!((row.status.as_str(), row.exit_code), ("dead", None));
        assert_eq!(h.shims.count(|c| matches!(c, Call::Connect { .. })), 0, "nothing to connect to");
    }

    #[tokio::test]
    async fn recover_cleans_orphan_bundles() {
        let mut h = Harness::new();
        let orphan = h.bundle("orphan");
        h.containers.recover().await.expect("recover");
        assert!(!orphan.exists(), "orphaned bundle removed");
        assert_eq!(h.shims.calls(), [Call::BinaryDelete { id: "orphan".into() }]);
        assert!(h.kicks().is_empty(), "no row, nothing to reconcile");
    }

    #[tokio::test]
    async fn recover_tears_down_leftovers_of_a_stopped_row() {
        let mut h = Harness::new();
        let t = SystemTime::now();
        h.insert("a", "exited", config("no"), |r| {
            fake::exited(1, t, Duration::from_secs(1))(r);
            r.shim_address = Some(fake::address("a"));
        });
        let bundle = h.bundle("a");
        // Its shim outlived a teardown cut short.
        h.shims.script("a", Script::Stopped { pid: 100, status: 1, at: t });
        h.containers.recover().await.expect("recover");
        let calls = h.shims.calls();
        assert!(calls.contains(&Call::Delete { id: "a".into(), exec_id: String::new() }), "{calls:?}");
        assert!(calls.contains(&Call::Shutdown { id: "a".into() }), "{calls:?}");
        assert!(!bundle.exists(), "bundle removed");
        let row = h.row("a").expect("row");
        assert_eq!((row.status.as_str(), row.exit_code, row.shim_address), ("exited", Some(1), None));
        assert_eq!(h.kicks().len(), 1);
    }

    #[tokio::test]
    async fn recover_runs_the_binary_delete_for_a_stopped_row_without_a_shim() {
        let h = Harness::new();
        h.insert("a", "exited", config("no"), fake::exited(0, SystemTime::now(), Duration::from_secs(1)));
        let bundle = h.bundle("a");
        h.containers.recover().await.expect("recover");
        assert_eq!(h.shims.calls(), [Call::BinaryDelete { id: "a".into() }]);
        assert!(!bundle.exists(), "bundle removed");
    }

    #[tokio::test]
    async fn recover_leaves_a_clean_stopped_row_alone() {
        let h = Harness::new();
        let before = h.insert("a", "created", config("no"), |_| {});
        h.containers.recover().await.expect("recover");
        assert!(h.shims.calls().is_empty());
        assert_eq!(h.row("a"), Some(before));
    }
}
