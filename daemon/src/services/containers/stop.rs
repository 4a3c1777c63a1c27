//! stop and restart: the stop signal, then SIGKILL after the timeout.

use super::*;

impl Containers {
    /// Under the container's lock: the desired state, the check and the
    /// signal (a start, or a restart the loop is making, finishes first and
    /// is then stopped). The wait for the exit is not: recording it needs
    /// the lock.
    pub async fn stop(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        let id = self.get(id)?.id;
        let lock = self.lock_of(&id);
        let (row, c, signalled) = {
            let _g = lock.lock().await;
            let row = self.db().update_container(&id, |r| r.desired = Desired::Stopped)?;
            if !row.status.is_live() {
                return Ok(());
            }
            let shim = self.shim_of(&row)?;
            let c = Self::config(&row)?;
            let sig = parse_signal(&c.stop_signal).unwrap_or(libc::SIGTERM as u32);
            let signalled = if row.status == Status::Paused {
                // A frozen process cannot act on a signal: kill it and thaw.
                let _ = shim.kill(&row.id, "", libc::SIGKILL as u32, true).await;
                let _ = shim.resume(&row.id).await;
                Ok(())
            } else {
                shim.kill(&row.id, "", sig, false).await
            };
            (row, c, signalled)
        };
        if let Err(e) = signalled {
            // It may have exited on its own meanwhile (its exit on the way
            // here): then it is stopped.
            if !e.is_not_found() && self.wait_stopped(&row.id, Some(Duration::from_secs(2))).await.is_err() {
                return Err(e.into());
            }
        }
        let timeout = timeout.filter(|t| *t >= 0).map(|t| Duration::from_secs(t as u64)).unwrap_or_else(|| c.stop_timeout());
        if self.wait_stopped(&row.id, Some(timeout)).await.is_err() {
            tracing::info!(id = %row.id, "stop timeout: killing");
            {
                let _g = lock.lock().await;
                // The same run still: a start since is not this stop's to kill.
                let now = self.reread(&row.id)?;
                if now.status.is_live() && now.started_at == row.started_at {
                    let _ = self.shim_of(&now)?.kill(&row.id, "", libc::SIGKILL as u32, true).await;
                }
            }
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
