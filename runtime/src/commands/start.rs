//! `start`: release a created container's init and return once it has
//! executed the user's program (the start connection closes at execve).

use std::io::Read;
use std::path::Path;

use crate::paths;
use crate::state::{DirLock, State, StateError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("start container {id}")]
    Connect {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("start container {id}: {msg}")]
    Exec { id: String, msg: String },
}

pub fn start(root: &Path, id: &str) -> Result<(), StartError> {
    let st = State::load(root, id)?;
    let _lock = DirLock::acquire(&st.dir(root))?;
    let status = st.status(root);
    if !status.can_start() {
        return Err(StateError::BadStatus { verb: "start", id: id.into(), status }.into());
    }
    let sock = st.dir(root).join(paths::START_SOCKET);
    let mut conn = paths::connect(&sock).map_err(|source| StartError::Connect { id: id.into(), source })?;
    let mut msg = String::new();
    let _ = conn.read_to_string(&mut msg);
    let _ = std::fs::remove_file(&sock);
    if !msg.is_empty() {
        return Err(StartError::Exec { id: id.into(), msg });
    }
    if let Some(h) = st.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        crate::hooks::run_all_warn("poststart", h, &st.hook_state(crate::hooks::status_for("poststart")));
    }
    tracing::debug!(id, "started");
    Ok(())
}
