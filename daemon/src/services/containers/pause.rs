//! pause and unpause (the cgroup freezer, through the shim).

use super::*;

impl Containers {
    /// Under the container's lock: an exit that comes during the call is
    /// recorded after it, never overwritten by "paused".
    pub async fn pause(&self, id: &str, pause: bool) -> Result<()> {
        let id = self.get(id)?.id;
        let lock = self.lock_of(&id);
        let _g = lock.lock().await;
        let row = self.reread(&id)?;
        let (from, to) = if pause { (Status::Running, Status::Paused) } else { (Status::Paused, Status::Running) };
        if row.status != from {
            return Err(ContainerError::Conflict(format!("container {} is {}, not {from}", row.name, row.status)));
        }
        let shim = self.shim_of(&row)?;
        if pause {
            shim.pause(&row.id).await?;
        } else {
            shim.resume(&row.id).await?;
        }
        let row = self.db().update_container(&row.id, |r| r.status = to)?;
        self.emit(&row, if pause { "pause" } else { "unpause" }, None);
        Ok(())
    }
}
