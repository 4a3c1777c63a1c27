//! `pause` and `resume`: freeze and thaw the container's cgroup.

use std::path::Path;

use crate::cgroups::CgroupError;
use crate::state::{DirLock, State, StateError, Status};

#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

pub fn pause(root: &Path, id: &str, freeze: bool) -> Result<(), PauseError> {
    let st = State::load(root, id)?;
    let _lock = DirLock::acquire(&st.dir(root))?;
    let status = st.status(root);
    let (ok, verb) = if freeze { (status == Status::Running, "pause") } else { (status == Status::Paused, "resume") };
    if !ok {
        return Err(StateError::BadStatus { verb, id: id.into(), status }.into());
    }
    st.cgroup.freeze(freeze)?;
    Ok(())
}
