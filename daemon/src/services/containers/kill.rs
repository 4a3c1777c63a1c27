//! kill: a signal to the init.

use super::*;

impl Containers {
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let row = self.get(id)?;
        if !is_live(&row.status) {
            return Err(ContainerError::Conflict(format!("cannot kill container {}: it is not running", row.name)));
        }
        let sig = if signal.is_empty() { libc::SIGKILL as u32 } else { parse_signal(signal)? };
        let c = Self::config(&row);
        // Like docker: killing with the stop signal or KILL is a stop by the user.
        if sig == libc::SIGKILL as u32 || parse_signal(&c.stop_signal).ok() == Some(sig) {
            self.want_stopped(&row.id).await?;
        }
        if let Err(e) = self.shim_of(&row)?.kill(&row.id, "", sig, false).await {
            if self.wait_stopped(&row.id, Some(Duration::from_millis(500))).await.is_ok() {
                return Err(ContainerError::Conflict(format!("cannot kill container {}: it is not running", row.name)));
            }
            return Err(e.into());
        }
        self.emit(&row, "kill", None);
        Ok(())
    }
}
