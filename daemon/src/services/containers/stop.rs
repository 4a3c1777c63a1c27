//! stop and restart: the stop signal, then SIGKILL after the timeout.

use super::*;

impl Containers {
    /// Records that the user wants the container stopped. Under its lock: a
    /// restart the loop is making finishes first, and is then stopped.
    pub(super) async fn want_stopped(&self, id: &str) -> Result<ContainerRow> {
        let lock = self.lock_of(id);
        let _g = lock.lock().await;
        Ok(self.db().update_container(id, |r| r.desired = "stopped".into())?)
    }

    pub async fn stop(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        let row = self.get(id)?;
        let row = self.want_stopped(&row.id).await?;
        if !is_live(&row.status) {
            return Ok(());
        }
        let c = Self::config(&row);
        let timeout = timeout.filter(|t| *t >= 0).map(|t| Duration::from_secs(t as u64)).unwrap_or_else(|| c.stop_timeout());
        let shim = self.shim_of(&row)?;
        let sig = parse_signal(&c.stop_signal).unwrap_or(libc::SIGTERM as u32);
        if row.status == "paused" {
            // A frozen process cannot act on a signal: kill it and thaw.
            let _ = shim.kill(&row.id, "", libc::SIGKILL as u32, true).await;
            let _ = shim.resume(&row.id).await;
        } else if let Err(e) = shim.kill(&row.id, "", sig, false).await {
            // It may have exited on its own meanwhile (its exit on the way
            // here): then it is stopped.
            if !e.is_not_found() && self.wait_stopped(&row.id, Some(Duration::from_secs(2))).await.is_err() {
                return Err(e.into());
            }
        }
        if self.wait_stopped(&row.id, Some(timeout)).await.is_err() {
            tracing::info!(id = %row.id, "stop timeout: killing");
            let _ = shim.kill(&row.id, "", libc::SIGKILL as u32, true).await;
            self.wait_stopped(&row.id, Some(Duration::from_secs(10))).await?;
        }
        self.emit(&row, "stop", None);
        Ok(())
    }

    pub async fn restart(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        self.stop(id, timeout).await?;
        self.start(id).await?;
        Ok(())
    }
}
