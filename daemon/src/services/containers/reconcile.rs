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
        // A row that does not read is never given a policy by default: the
        // loop leaves it as it is, and says why.
        let (row, c) = match self.row_and_config(&k.id) {
            Ok(Some(rc)) => rc,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(id = %k.id, error = %rind_common::error::Chain(&e), "not reconciling an unreadable container");
                return;
            }
        };
        if row.status.is_live() || row.status == Status::Created {
            return;
        }
        let policy = row.restart_policy;
        let stopped = restart::Stopped {
            by_user: row.desired == Desired::Stopped,
            exit_code: row.exit_code,
            restart_count: row.restart_count as u32,
            daemon_start: k.daemon_start,
        };
        if !restart::should_restart(policy, stopped) {
            if policy != Policy::No {
                // Said once per decision: tests wait on it rather than on time.
                tracing::info!(id = %row.id, name = %row.name, policy = policy.name(), "not restarting");
            }
            if c.auto_remove {
                match self.remove(&row.id, false).await {
                    // Another kick for the same exit got there first.
                    Ok(()) | Err(ContainerError::NotFound(_)) => {}
                    Err(e) => tracing::warn!(id = %row.id, error = %rind_common::error::Chain(&e), "auto-remove"),
                }
            }
            return;
        }
        // A container that ran for a while starts its back-off afresh.
        let ran = match (row.started_at, row.finished_at) {
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
            if self.db().update_container(&row.id, |r| r.status = Status::Restarting).is_err() {
                return;
            }
        }
        tracing::info!(id = %row.id, name = %row.name, policy = policy.name(), delay_ms = delay.as_millis() as u64, "restarting");
        tokio::time::sleep(delay).await;
        let _g = lock.lock().await;
        // Anything the user did meanwhile wins: a start, a removal, a stop.
        let Ok(Some(now_row)) = self.db().container(&row.id) else { return };
        if now_row.status != Status::Restarting || now_row.finished_at != row.finished_at {
            return;
        }
        if now_row.desired == Desired::Stopped && !k.daemon_start {
            tracing::info!(id = %row.id, name = %row.name, policy = policy.name(), "not restarting: stopped during the back-off");
            let was = if row.status == Status::Restarting { Status::Exited } else { row.status };
            let _ = self.db().update_container(&row.id, |r| r.status = was);
            return;
        }
        if count == 0 && row.restart_count > 0 {
            let _ = self.db().update_container(&row.id, |r| r.restart_count = 0);
        }
        if k.daemon_start {
            let _ = self.db().update_container(&row.id, |r| r.desired = Desired::Running);
        }
        let latest = match self.db().container(&row.id) {
            Ok(Some(r)) => r,
            _ => return,
        };
        if let Err(e) = self.start_locked(latest, true).await {
            tracing::warn!(id = %row.id, error = %rind_common::error::Chain(&e), "restart failed");
            drop(_g);
            // Try again later, with a longer back-off.
            let _ = self.db().update_container(&row.id, |r| r.restart_count += 1);
            self.kick(&row.id, false);
        }
    }

    fn row_and_config(&self, id: &str) -> Result<Option<(ContainerRow, Config)>> {
        let Some(row) = self.db().container(id)? else { return Ok(None) };
        let c = Self::config(&row)?;
        Ok(Some((row, c)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{self, config, exited, Call, Harness};
    use super::*;
    use tokio::time::Instant;

    /// A short run: the back-off is not reset.
    const SHORT: Duration = Duration::from_secs(1);

    fn kick(id: &str, daemon_start: bool) -> Kick {
        Kick { id: id.into(), daemon_start }
    }

    fn launches(h: &Harness) -> usize {
        h.shims.count(|c| matches!(c, Call::Launch { .. }))
    }

    /// Reconciles `id` once; returns how long (paused time) it took.
    async fn reconcile(h: &Harness, id: &str, daemon_start: bool) -> Duration {
        let t0 = Instant::now();
        h.containers.clone().reconcile(kick(id, daemon_start)).await;
        t0.elapsed()
    }

    /// Paused time moves only to the next timer, rounded up to the
    /// timer wheel's millisecond.
    fn assert_waited(elapsed: Duration, delay: Duration) {
        assert!(elapsed >= delay && elapsed <= delay + Duration::from_millis(1), "waited {elapsed:?}, not {delay:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_leaves_policy_no_exited() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("no"), exited(1, SystemTime::now(), SHORT));
        assert_eq!(reconcile(&h, "a", false).await, Duration::ZERO);
        assert_eq!(h.row("a").expect("row").status, Status::Exited);
        assert_eq!(launches(&h), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_restarts_always_after_the_backoff() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("always"), exited(0, SystemTime::now(), SHORT));
        let mut events = h.containers.events.subscribe();
        assert_waited(reconcile(&h, "a", false).await, restart::backoff(0));
        let row = h.row("a").expect("row");
        assert_eq!(row.status, Status::Running);
        assert_eq!(row.restart_count, 1);
        assert_eq!((row.exit_code, row.finished_at), (None, None), "the last exit is cleared");
        assert_eq!(row.pid, 1001, "the pid the shim's Create returned");
        assert_eq!(row.shim_address, Some(fake::address("a")));
        let bundle = h.containers.paths.bundle("a").display().to_string();
        assert_eq!(
            h.shims.calls(),
            [
                Call::Launch { id: "a".into() },
                Call::Connect { address: fake::address("a") },
                Call::Create { id: "a".into(), bundle },
                Call::Start { id: "a".into(), exec_id: String::new() },
            ]
        );
        assert_eq!(events.try_recv().expect("an event").action, "start");
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_restarts_on_failure_while_retries_remain() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("on-failure:2"), |r| {
            exited(1, SystemTime::now(), SHORT)(r);
            r.restart_count = 1;
        });
        assert_waited(reconcile(&h, "a", false).await, restart::backoff(1));
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.restart_count), (Status::Running, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_gives_up_on_failure_when_retries_are_used() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("on-failure:2"), |r| {
            exited(1, SystemTime::now(), SHORT)(r);
            r.restart_count = 2;
        });
        reconcile(&h, "a", false).await;
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.exit_code, row.restart_count), (Status::Exited, Some(1), 2));
        assert_eq!(launches(&h), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_leaves_on_failure_exited_on_success() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("on-failure"), exited(0, SystemTime::now(), SHORT));
        reconcile(&h, "a", false).await;
        assert_eq!(h.row("a").expect("row").status, Status::Exited);
        assert_eq!(launches(&h), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_restarts_on_failure_when_the_shim_was_lost() {
        let h = Harness::new();
        h.insert("a", Status::Dead, config("on-failure"), |r| {
            r.finished_at = Some(SystemTime::now());
            r.exit_reason = Some("exit status unknown (shim lost)".into());
        });
        reconcile(&h, "a", false).await;
        assert_eq!(h.row("a").expect("row").status, Status::Running);
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_restarts_unless_stopped_after_its_own_exit() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("unless-stopped"), exited(0, SystemTime::now(), SHORT));
        reconcile(&h, "a", false).await;
        assert_eq!(h.row("a").expect("row").status, Status::Running);
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_leaves_user_stopped_containers_stopped() {
        for policy in ["always", "unless-stopped", "on-failure"] {
            let h = Harness::new();
            h.insert("a", Status::Exited, config(policy), |r| {
                exited(137, SystemTime::now(), SHORT)(r);
                r.desired = Desired::Stopped;
            });
            reconcile(&h, "a", false).await;
            assert_eq!(h.row("a").expect("row").status, Status::Exited, "{policy}");
            assert_eq!(launches(&h), 0, "{policy}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_backoff_doubles_with_the_restart_count() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("always"), |r| {
            exited(1, SystemTime::now(), SHORT)(r);
            r.restart_count = 3;
        });
        let elapsed = reconcile(&h, "a", false).await;
        assert_eq!(restart::backoff(3), Duration::from_millis(800));
        assert_waited(elapsed, restart::backoff(3));
        assert_eq!(h.row("a").expect("row").restart_count, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_backoff_resets_after_a_long_run() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("always"), |r| {
            exited(1, SystemTime::now(), restart::RESET_AFTER + SHORT)(r);
            r.restart_count = 5;
        });
        assert_waited(reconcile(&h, "a", false).await, restart::backoff(0));
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.restart_count), (Status::Running, 1), "counted afresh");
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_shows_restarting_during_the_backoff() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("always"), exited(1, SystemTime::now(), SHORT));
        let task = tokio::spawn(h.containers.clone().reconcile(kick("a", false)));
        wait_for_status(&h, "a", Status::Restarting).await;
        // Time stands still while this task is busy: the back-off is not over.
        assert_eq!(launches(&h), 0);
        task.await.expect("reconcile");
        assert_eq!(h.row("a").expect("row").status, Status::Running);
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_lets_a_stop_during_the_backoff_win() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("always"), exited(1, SystemTime::now(), SHORT));
        let task = tokio::spawn(h.containers.clone().reconcile(kick("a", false)));
        wait_for_status(&h, "a", Status::Restarting).await;
        h.containers.stop("a", None).await.expect("stop");
        task.await.expect("reconcile");
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.desired, row.exit_code), (Status::Exited, Desired::Stopped, Some(1)));
        assert_eq!(launches(&h), 0, "not restarted");
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_lets_a_removal_during_the_backoff_win() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("always"), exited(1, SystemTime::now(), SHORT));
        let task = tokio::spawn(h.containers.clone().reconcile(kick("a", false)));
        wait_for_status(&h, "a", Status::Restarting).await;
        h.containers.remove("a", false).await.expect("remove");
        task.await.expect("reconcile");
        assert_eq!(h.row("a"), None);
        assert_eq!(launches(&h), 0, "not restarted");
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_restarts_once_for_two_kicks_of_one_exit() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("always"), exited(1, SystemTime::now(), SHORT));
        let c = &h.containers;
        tokio::join!(c.clone().reconcile(kick("a", false)), c.clone().reconcile(kick("a", false)));
        assert_eq!(launches(&h), 1);
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.restart_count), (Status::Running, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_retries_a_failed_restart_with_a_longer_backoff() {
        let mut h = Harness::new();
        h.insert("a", Status::Exited, config("always"), exited(1, SystemTime::now(), SHORT));
        h.shims.fail_create("a", "exec: \"nope\": executable file not found in $PATH");
        reconcile(&h, "a", false).await;
        let row = h.row("a").expect("row");
        assert_eq!(row.status, Status::Exited);
        assert_eq!(row.exit_code, Some(127), "docker's code for a command not found");
        assert_eq!(row.exit_reason.as_deref(), Some("shim create: exec: \"nope\": executable file not found in $PATH"));
        assert_eq!((row.pid, row.shim_address), (0, None));
        assert!(!h.containers.paths.bundle("a").exists(), "the failed start is torn down");
        assert!(h.shims.calls().contains(&Call::Shutdown { id: "a".into() }), "its shim is told to go");
        assert_eq!(row.restart_count, 1, "the next back-off is longer");
        let kicks = h.kicks();
        assert!(kicks.len() == 1 && kicks[0].id == "a" && !kicks[0].daemon_start, "{kicks:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_removes_auto_remove_containers_after_exit() {
        let h = Harness::new();
        let c = Config { auto_remove: true, ..config("no") };
        h.insert("a", Status::Exited, c, exited(0, SystemTime::now(), SHORT));
        let data = h.containers.paths.data("a");
        assert!(data.is_dir());
        let mut events = h.containers.events.subscribe();
        reconcile(&h, "a", false).await;
        assert_eq!(h.row("a"), None);
        assert!(!data.exists(), "its data is gone too");
        assert_eq!(events.try_recv().expect("an event").action, "destroy");
        assert_eq!(launches(&h), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_never_takes_an_unreadable_policy_for_no() {
        let h = Harness::new();
        let c = Config { auto_remove: true, ..config("no") };
        h.insert("a", Status::Exited, c, exited(1, SystemTime::now(), SHORT));
        h.spoil("a", "restart_policy", "sometimes");
        reconcile(&h, "a", false).await;
        assert_eq!(launches(&h), 0, "not restarted on a guess");
        assert!(h.containers.paths.data("a").is_dir(), "nor auto-removed as policy no would");
        assert!(matches!(h.containers.db().container("a"), Err(StoreError::Corrupt { .. })), "the row is left as it was");
    }

    #[tokio::test(start_paused = true)]
    async fn reconcile_leaves_live_and_created_containers_alone() {
        let h = Harness::new();
        h.insert("r", Status::Running, config("always"), |_| {});
        h.insert("c", Status::Created, config("always"), |_| {});
        reconcile(&h, "r", true).await;
        reconcile(&h, "c", true).await;
        assert_eq!(h.row("r").expect("row").status, Status::Running);
        assert_eq!(h.row("c").expect("row").status, Status::Created);
        assert!(h.shims.calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn daemon_start_restarts_always_at_once_even_if_user_stopped() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("always"), |r| {
            exited(137, SystemTime::now(), SHORT)(r);
            r.desired = Desired::Stopped;
        });
        assert_eq!(reconcile(&h, "a", true).await, Duration::ZERO, "no back-off at daemon start");
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.desired), (Status::Running, Desired::Running));
    }

    #[tokio::test(start_paused = true)]
    async fn daemon_start_leaves_user_stopped_unless_stopped_alone() {
        let h = Harness::new();
        h.insert("a", Status::Exited, config("unless-stopped"), |r| {
            exited(137, SystemTime::now(), SHORT)(r);
            r.desired = Desired::Stopped;
        });
        reconcile(&h, "a", true).await;
        let row = h.row("a").expect("row");
        assert_eq!((row.status, row.desired), (Status::Exited, Desired::Stopped));
        assert_eq!(launches(&h), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn daemon_start_restarts_what_recover_found_exited() {
        let mut h = Harness::new();
        let stopped = |r: &mut ContainerRow| {
            exited(137, SystemTime::now(), SHORT)(r);
            r.desired = Desired::Stopped;
        };
        h.insert("always", Status::Exited, config("always"), stopped);
        h.insert("unless", Status::Exited, config("unless-stopped"), stopped);
        // Died while rindd was down: its shim is gone, having recorded exit 1.
        h.insert("onfail", Status::Running, config("on-failure"), |_| {});
        h.bundle("onfail");
        h.shims.delete_reports("onfail", 1, SystemTime::now());
        h.shims.script("onfail", fake::Script::Unreachable);
        h.containers.recover().await.expect("recover");
        for k in h.kicks() {
            h.containers.clone().reconcile(k).await;
        }
        let status = |id| h.row(id).expect("row").status;
        assert_eq!(status("always"), Status::Running);
        assert_eq!(status("unless"), Status::Exited);
        assert_eq!(status("onfail"), Status::Running);
        assert_eq!(launches(&h), 2);
    }

    /// Yields (time stands still meanwhile) until `id` has this status.
    async fn wait_for_status(h: &Harness, id: &str, status: Status) {
        for _ in 0..1000 {
            if h.row(id).is_some_and(|r| r.status == status) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("{id} never became {status}: {:?}", h.row(id));
    }
}
