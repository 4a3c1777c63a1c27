//! rename.

use super::*;

impl Containers {
    pub fn rename(&self, id: &str, name: &str) -> Result<()> {
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)) {
            return Err(ContainerError::Invalid(format!("invalid container name {name:?}")));
        }
        let row = self.get(id)?;
        let row = self.db().update_container(&row.id, |r| r.name = name.to_string()).map_err(|e| match e {
            StoreError::Exists(n) => ContainerError::Conflict(format!("the container name {n:?} is already in use")),
            e => e.into(),
        })?;
        self.emit(&row, "rename", None);
        Ok(())
    }
}
