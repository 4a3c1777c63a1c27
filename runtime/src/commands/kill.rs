//! `kill`: signal the init, or with --all every process in the cgroup.

use crate::cgroups::CgroupError;
use crate::state::{State, StateError};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KillError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    BadSignal(#[from] rind_common::signal::BadSignal),
    #[error("signal container {id} (pid {pid})")]
    Kill {
        id: String,
        pid: i32,
        #[source]
        source: nix::Error,
    },
}

pub fn kill(root: &Path, id: &str, signal: &str, all: bool) -> Result<(), KillError> {
    let sig = rind_common::signal::parse_signal(signal)?;
    let st = State::load(root, id)?;
    let status = st.status(root);
    if !status.can_kill() {
        return Err(StateError::BadStatus { verb: "kill", id: id.into(), status }.into());
    }
    let pids = if all { st.cgroup.pids()? } else { vec![st.pid] };
    for pid in pids {
        // SAFETY: kill(2) with a pid we checked belongs to the container.
        if unsafe { libc::kill(pid, sig) } != 0 {
            let e = nix::Error::last();
            if e != nix::Error::ESRCH || pid == st.pid {
                return Err(KillError::Kill { id: id.into(), pid, source: e });
            }
        }
    }
    Ok(())
}
