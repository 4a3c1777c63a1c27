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
            Some(a) => tokio::time::timeout(Duration::from_secs(2), Shim::connect(a)).await.ok().and_then(|r| r.ok()),
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
