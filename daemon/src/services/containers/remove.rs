//! rm [-f] and container prune.

use super::*;

impl Containers {
    pub async fn remove(&self, id: &str, force: bool) -> Result<()> {
        let row = self.get(id)?;
        if is_live(&row.status) {
            if !force {
                return Err(ContainerError::Conflict(format!(
                    "cannot remove container {}: it is {}: stop it first, or use --force",
                    row.name, row.status
                )));
            }
            self.want_stopped(&row.id).await?;
            if let Ok(shim) = self.shim_of(&row) {
                let _ = shim.kill(&row.id, "", libc::SIGKILL as u32, true).await;
                if row.status == "paused" {
                    let _ = shim.resume(&row.id).await;
                }
            }
            if self.wait_stopped(&row.id, Some(Duration::from_secs(10))).await.is_err() {
                // Its shim does not answer: take it down regardless.
                self.lost(&row).await;
            }
        }
        let lock = self.lock_of(&row.id);
        let _g = lock.lock().await;
        self.teardown(&row.id).await;
        let data = self.paths.data(&row.id);
        if let Err(e) = std::fs::remove_dir_all(&data) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(io_err("remove", &data)(e));
            }
        }
        self.db().delete_container(&row.id)?;
        self.locks.lock().expect("locks").remove(&row.id);
        // rm returns once the container's shim is gone too.
        self.await_retired(&row.id).await;
        // Its image may have gone before it (rmi --force): its layers go now.
        let image_gone = self.db().image(&row.image)?.is_none();
        if image_gone {
            let store = self.db();
            if let Err(e) = crate::services::images::collect_garbage(&self.paths.root, &self.content, &store) {
                tracing::warn!(id = %row.id, error = %e, "collect image garbage");
            }
        }
        self.emit(&row, "destroy", None);
        Ok(())
    }

    pub async fn prune(&self) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        for row in self.list()? {
            if !is_live(&row.status) {
                self.remove(&row.id, false).await?;
                gone.push(row.id);
            }
        }
        Ok(gone)
    }
}
