//! At daemon start: what every shim says, and what has no owner.

use super::*;

impl Containers {
    /// At daemon start, before serving: find out what every shim says and
    /// clean what has no owner. Then every container goes to the loop.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        let (rows, unreadable) = self.scan()?;
        let mut known: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        // A row that does not read is left alone, its shim and bundle too:
        // it may be a running container, and nothing is done on a guess.
        // The others are recovered; `rm -f` removes it.
        let mut all_known = true;
        for e in &unreadable {
            tracing::warn!(error = %rind_common::error::Chain(e), "not recovering an unreadable container: `rind rm -f` removes it");
            match e {
                StoreError::Corrupt { id, .. } => {
                    known.insert(id);
                }
                _ => all_known = false,
            }
        }
        let mut set = tokio::task::JoinSet::new();
        for row in rows.clone() {
            let me = self.clone();
            set.spawn(async move { me.recover_one(&row.id).await });
        }
        while set.join_next().await.is_some() {}
        // Bundles with no row: a create or remove cut short. A shim may run
        // for one all the same: teardown tries the socket it would have.
        // (Not when a row that does not read cannot even say its id.)
        let dir = self.paths.state.join("containers");
        let entries = if all_known { std::fs::read_dir(&dir).ok() } else { None };
        if let Some(entries) = entries {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !known.contains(id.as_str()) {
                    tracing::info!(id, "cleaning an orphaned bundle");
                    let lock = self.lock_of(&id);
                    let _g = lock.lock().await;
                    self.teardown(&id).await;
                }
            }
        }
        // Data with no row: a create or remove cut short (the row is
        // written after the data is made and deleted before it is removed).
        let dir = self.paths.root.join("containers");
        let entries = if all_known { std::fs::read_dir(&dir).ok() } else { None };
        for e in entries.into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().to_string();
            if !known.contains(id.as_str()) {
                tracing::info!(id, "removing the data of a container that has no row");
                if let Err(e) = self.remove_data(&id) {
                    tracing::warn!(id, error = %rind_common::error::Chain(&e), "remove orphaned container data");
                }
            }
        }
        if all_known {
            self.detach_orphans(&known).await;
        }
        for row in self.scan()?.0 {
            self.kick(&row.id, true);
        }
        Ok(())
    }

    /// Under the container's lock, from the first read to the last write:
    /// the events endpoint is already serving, and an exit that comes
    /// meanwhile is recorded after recovery, on the row recovery left.
    async fn recover_one(&self, id: &str) {
        let lock = self.lock_of(id);
        let _g = lock.lock().await;
        let Ok(Some(row)) = self.db().container(id) else { return };
        let bundle = self.paths.bundle(&row.id);
        if !row.status.is_live() {
            // Leftovers of a teardown cut short, or of a start cut short
            // before it recorded the run: its shim is at the address the
            // start recorded before it ran the shim.
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
                    use containerd_shim_protos::types::task::Status as TaskStatus;
                    match st.status.enum_value_or_default() {
                        TaskStatus::RUNNING | TaskStatus::PAUSED | TaskStatus::PAUSING => {
                            let status =
                                if st.status.enum_value_or_default() == TaskStatus::RUNNING { Status::Running } else { Status::Paused };
                            let _ = self.db().update_container(&row.id, |r| r.status = status);
                            self.adopt(&row.id, shim);
                            return;
                        }
                        TaskStatus::STOPPED => {
                            let at = st.exited_at.as_ref().map(crate::shims::to_system_time).unwrap_or_else(SystemTime::now);
                            self.shims.lock().expect("shims").insert(row.id.clone(), shim);
                            self.task_exited_locked(&row.id, st.pid, st.exit_status, at).await;
                            return;
                        }
                        _ => {}
                    }
                }
                Err(e) => tracing::warn!(id = %row.id, error = %rind_common::error::Chain(&e), "shim state"),
            }
        }
        // The shim is gone, or knows no task: its binary's `delete` says how
        // the init ended, if the shim recorded it.
        self.shim_gone(&row).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{self, config, until, Call, Harness, Script};
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn rfc3339(t: SystemTime) -> String {
        humantime::format_rfc3339_nanos(t).to_string()
    }

    /// What our shim keeps in its bundle; rindd must not read it.
    fn write_exit(bundle: &Path, status: u32, t: SystemTime) {
        let json = serde_json::json!({ "pid": 100, "status": status, "exited_at": rfc3339(t) });
        std::fs::write(bundle.join("exit"), json.to_string()).expect("write exit file");
    }

    #[tokio::test]
    async fn recover_keeps_running_when_the_shim_says_running() {
        let mut h = Harness::new();
        h.insert("a", Status::Running, config("no"), |_| {});
        let bundle = h.bundle("a");
        h.shims.script("a", Script::Running { pid: 100 });
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.pid), (Status::Running, 100));
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
        h.insert("a", Status::Running, config("no"), |_| {});
        h.bundle("a");
        h.shims.script("a", Script::Paused { pid: 100 });
        h.containers.recover().await.expect("recover");
        assert_eq!(h.row("a").expect("row").status, Status::Paused);
        assert!(h.containers.shim_for("a").is_ok(), "the shim is adopted");
    }

    #[tokio::test]
    async fn recover_records_the_shims_exit_when_stopped() {
        let mut h = Harness::new();
        h.insert("a", Status::Running, config("no"), |_| {});
        let bundle = h.bundle("a");
        let t = at(1_700_000_000, 123_456_789);
        h.shims.script("a", Script::Stopped { pid: 100, status: 3, at: t });
        let mut events = h.containers.events.subscribe();
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!(row.status, Status::Exited);
        assert_eq!(row.exit_code, Some(3));
        assert_eq!(row.finished_at, Some(t), "the shim's exit time, to the nanosecond");
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
    async fn recover_takes_the_exit_from_shim_delete_when_the_shim_is_unreachable() {
        let h = Harness::new();
        h.insert("a", Status::Running, config("no"), |_| {});
        let bundle = h.bundle("a");
        let t = at(1_700_000_100, 987_654_321);
        // The protocol's answer (DeleteResponse), not the shim's own files.
        h.shims.delete_reports("a", 3, t);
        write_exit(&bundle, 9, at(1_600_000_000, 0));
        h.shims.script("a", Script::Unreachable);
        let mut events = h.containers.events.subscribe();
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.exit_code), (Status::Exited, Some(3)));
        assert_eq!(row.finished_at, Some(t));
        assert_eq!(row.exit_reason, None);
        assert_eq!((row.pid, row.shim_address), (0, None));
        // With no shim to ask, the binary's `delete` cleans up, once.
        assert_eq!(h.shims.count(|c| *c == Call::BinaryDelete { id: "a".into() }), 1);
        assert!(!bundle.exists(), "bundle removed");
        let die = events.try_recv().expect("an event");
        assert_eq!((die.action, die.exit_code), ("die", Some(3)));
    }

    #[tokio::test]
    async fn recover_marks_dead_when_the_shim_has_no_task() {
        let h = Harness::new();
        h.insert("a", Status::Running, config("no"), |_| {});
        h.bundle("a");
        h.shims.script("a", Script::Empty);
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.exit_code), (Status::Dead, None));
        // The taskless shim is told to go; it cleaned up itself.
        assert!(h.shims.calls().contains(&Call::Shutdown { id: "a".into() }));
        assert!(!h.shims.alive("a"));
    }

    #[tokio::test]
    async fn recover_holds_the_lock_so_an_exit_meanwhile_is_kept() {
        let h = Harness::new();
        h.insert("a", Status::Running, config("no"), |_| {});
        h.bundle("a");
        h.shims.script("a", Script::Running { pid: 100 });
        // The shim answers "running"; the answer is on its way when the
        // init exits and the shim's TaskExit reaches the events endpoint.
        let gate = h.shims.gate("state", "a");
        let c = h.containers.clone();
        let recovery = tokio::spawn(async move { c.recover().await });
        until("recovery asks the shim", || h.shims.calls().contains(&Call::State { id: "a".into() })).await;
        let t = at(1_700_000_300, 7);
        let c = h.containers.clone();
        let exit = tokio::spawn(async move { c.task_exited("a", 100, 0, t).await });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        recovery.await.expect("join").expect("recover");
        exit.await.expect("join");
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.exit_code), (Status::Exited, Some(0)), "the exit is not overwritten by running");
        assert_eq!(row.finished_at, Some(t));
        assert!(h.containers.shim_for("a").is_err(), "its shim is torn down, not adopted");
        assert!(!h.shims.alive("a"));
    }

    #[tokio::test]
    async fn recover_tears_down_a_shim_whose_start_was_cut_short() {
        let h = Harness::new();
        // The intent recorded before the shim was run; the run never was.
        h.insert("a", Status::Created, config("no"), |r| {
            r.desired = Desired::Running;
            r.shim_address = Some(fake::address("a"));
        });
        let bundle = h.bundle("a");
        // rindd died after Task.Start, before it recorded the run.
        h.shims.script("a", Script::Running { pid: 100 });
        h.containers.recover().await.expect("recover");
        let calls = h.shims.calls();
        assert!(calls.contains(&Call::Kill { id: "a".into(), signal: libc::SIGKILL as u32, all: true }), "{calls:?}");
        assert!(calls.contains(&Call::Shutdown { id: "a".into() }), "{calls:?}");
        assert!(!h.shims.alive("a"), "no orphan shim");
        assert!(!bundle.exists(), "bundle removed");
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.shim_address), (Status::Created, None));
    }

    #[tokio::test]
    async fn recover_finds_a_shim_started_when_rindd_died() {
        let h = Harness::new();
        h.insert("a", Status::Created, config("no"), |_| {});
        let (gate, start) = h.start_held_at_launch("a").await;
        // While the shim binary's `start` runs, the address is already recorded.
        assert_eq!(h.row("a").expect("row").shim_address, Some(fake::address("a")));
        // rindd is killed: nothing after this point of start happens.
        start.abort();
        let _ = start.await;
        drop(gate);
        h.containers.recover().await.expect("recover");
        let calls = h.shims.calls();
        assert!(calls.contains(&Call::Connect { address: fake::address("a") }), "{calls:?}");
        assert!(calls.contains(&Call::Shutdown { id: "a".into() }), "{calls:?}");
        assert!(!h.shims.alive("a"), "no orphan shim");
        assert!(!h.containers.paths.bundle("a").exists());
    }

    #[tokio::test]
    async fn recover_marks_dead_when_the_shim_is_lost_without_an_exit() {
        let h = Harness::new();
        h.insert("a", Status::Running, config("always"), |_| {});
        let bundle = h.bundle("a");
        h.shims.script("a", Script::Unreachable);
        // The binary's `delete` makes up 137 with no time: rindd does not believe it.
        let mut events = h.containers.events.subscribe();
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!(row.status, Status::Dead);
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
        h.insert("a", Status::Running, config("no"), |r| r.shim_address = None);
        h.containers.recover().await.expect("recover");
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.exit_code), (Status::Dead, None));
        assert_eq!(h.shims.count(|c| matches!(c, Call::Connect { .. })), 0, "nothing to connect to");
    }

    #[tokio::test]
    async fn recover_leaves_an_unreadable_row_and_its_shim_alone() {
        let mut h = Harness::new();
        for id in ["a", "b"] {
            h.insert(id, Status::Running, config("always"), |_| {});
            h.bundle(id);
            h.shims.script(id, Script::Running { pid: 100 });
        }
        h.spoil("a", "desired", "sideways");
        h.containers.recover().await.expect("one bad row does not stop the daemon");
        assert!(h.containers.shim_for("b").is_ok(), "the other is recovered");
        // Not taken for an orphan bundle: its container may be running.
        assert!(h.containers.paths.bundle("a").is_dir());
        assert!(h.shims.alive("a"));
        let calls = h.shims.calls();
        assert!(!calls.contains(&Call::Connect { address: fake::address("a") }), "{calls:?}");
        assert!(
            !calls.iter().any(|c| matches!(c, Call::Kill { id, .. } | Call::Shutdown { id } | Call::BinaryDelete { id } if id == "a")),
            "{calls:?}"
        );
        let kicked: Vec<String> = h.kicks().into_iter().map(|k| k.id).collect();
        assert_eq!(kicked, ["b"]);
    }

    #[tokio::test]
    async fn recover_cleans_orphan_bundles() {
        let mut h = Harness::new();
        let orphan = h.bundle("orphan");
        h.containers.recover().await.expect("recover");
        assert!(!orphan.exists(), "orphaned bundle removed");
        // The socket a shim for it would have, then the binary's `delete`.
        assert_eq!(h.shims.calls(), [Call::Connect { address: fake::address("orphan") }, Call::BinaryDelete { id: "orphan".into() }]);
        assert!(h.kicks().is_empty(), "no row, nothing to reconcile");
    }

    #[tokio::test]
    async fn recover_removes_container_data_without_a_row() {
        let h = Harness::new();
        h.insert("kept", Status::Exited, config("no"), |_| {});
        let (kept, orphan) = (h.containers.paths.data("kept"), h.containers.paths.data("orphan"));
        for d in [&kept, &orphan] {
            std::fs::create_dir_all(d.join("upper")).expect("mkdir");
        }
        h.containers.recover().await.expect("recover");
        assert!(!orphan.exists(), "the data of a create or remove cut short is removed");
        assert!(kept.join("upper").is_dir(), "a container's own data is kept");
    }

    #[tokio::test]
    async fn recover_stops_the_shim_of_an_orphan_bundle() {
        let h = Harness::new();
        let orphan = h.bundle("orphan");
        h.shims.script("orphan", Script::Empty);
        h.containers.recover().await.expect("recover");
        assert!(!orphan.exists(), "orphaned bundle removed");
        assert!(h.shims.calls().contains(&Call::Shutdown { id: "orphan".into() }));
        assert!(!h.shims.alive("orphan"), "no orphan shim");
    }

    #[tokio::test]
    async fn recover_tears_down_leftovers_of_a_stopped_row() {
        let mut h = Harness::new();
        let t = SystemTime::now();
        h.insert("a", Status::Exited, config("no"), |r| {
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
        assert_eq!((row.status, row.exit_code, row.shim_address), (Status::Exited, Some(1), None));
        assert_eq!(h.kicks().len(), 1);
    }

    #[tokio::test]
    async fn recover_runs_the_binary_delete_for_a_stopped_row_without_a_shim() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("no"), fake::exited(0, SystemTime::now(), Duration::from_secs(1)));
        let bundle = h.bundle("a");
        h.containers.recover().await.expect("recover");
        assert_eq!(h.shims.calls(), [Call::Connect { address: fake::address("a") }, Call::BinaryDelete { id: "a".into() }]);
        assert!(!bundle.exists(), "bundle removed");
    }

    #[tokio::test]
    async fn recover_leaves_a_clean_stopped_row_alone() {
        let h = Harness::new();
        let before = h.insert("a", Status::Created, config("no"), |_| {});
        h.containers.recover().await.expect("recover");
        assert!(h.shims.calls().is_empty());
        assert_eq!(h.row("a"), Some(before));
    }
}
