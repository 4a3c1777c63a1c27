//! rename.

use super::*;

impl Containers {
    /// Under the container's lock, as every verb.
    pub async fn rename(&self, id: &str, name: &str) -> Result<()> {
        let name = super::name::valid_name(name)?;
        let id = self.get(id)?.id;
        let lock = self.lock_of(&id);
        let _g = lock.lock().await;
        let row = self.reread(&id)?;
        let row = self.db().update_container(&row.id, |r| r.name = name.to_string()).map_err(|e| match e {
            StoreError::Exists(n) => ContainerError::Conflict(format!("the container name {n:?} is already in use")),
            e => e.into(),
        })?;
        self.emit(&row, "rename", None);
        Ok(())
    }
}
