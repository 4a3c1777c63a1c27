//! kill: a signal to the init.

use super::*;

impl Containers {
    /// Under the container's lock: the check, the desired state and the
    /// signal, so a signal never lands on a run that started after the check.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let id = self.get(id)?.id;
        let sig = if signal.is_empty() { libc::SIGKILL as u32 } else { parse_signal(signal)? };
        let lock = self.lock_of(&id);
        let (row, sent) = {
            let _g = lock.lock().await;
            let row = self.reread(&id)?;
            if !row.status.is_live() {
                return Err(ContainerError::Conflict(format!("cannot kill container {}: it is not running", row.name)));
            }
            let c = Self::config(&row)?;
            // Like docker: killing with the stop signal or KILL is a stop by the user.
            if sig == libc::SIGKILL as u32 || parse_signal(&c.stop_signal).ok() == Some(sig) {
                self.db().update_container(&id, |r| r.desired = Desired::Stopped)?;
            }
            let sent = self.shim_of(&row)?.kill(&row.id, "", sig, false).await;
            (row, sent)
        };
        if let Err(e) = sent {
            if self.wait_stopped(&row.id, Some(Duration::from_millis(500))).await.is_ok() {
                return Err(ContainerError::Conflict(format!("cannot kill container {}: it is not running", row.name)));
            }
            return Err(e.into());
        }
        self.emit(&row, "kill", None);
        Ok(())
    }
}
