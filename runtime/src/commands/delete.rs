//! `delete`: remove a stopped container (or, with --force, kill it first):
//! its processes, cgroup and state directory.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cgroups::CgroupError;
use crate::paths;
use crate::state::{DirLock, State, StateError, Status};

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Mounts(#[from] crate::rootfs::RootfsError),
    #[error("remove {path}")]
    Remove {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: processes still running after SIGKILL")]
    Stuck { id: String },
}

pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), DeleteError> {
    crate::state::validate_id(id)?;
    let dir = paths::container_dir(root, id);
    let _lock = DirLock::acquire(&dir)?;
    let st = match State::load(root, id) {
        Ok(st) => st,
        // A create that died before writing its state: only the directory is left.
        Err(StateError::NotFound(_)) if force => {
            return std::fs::remove_dir_all(&dir).map_err(|source| DeleteError::Remove { path: dir, source });
        }
        Err(e) => return Err(e.into()),
    };
    let status = st.status(root);
    if !status.can_delete() && !force {
        return Err(StateError::BadStatus { verb: "delete", id: id.into(), status }.into());
    }
    if status != Status::Stopped {
        kill_all(&st)?;
    } else {
        // A container without its own pid namespace may leave processes behind.
        for pid in st.cgroup.pids()? {
            // SAFETY: kill(2) of a pid in the container's cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    // What a container without a mount namespace mounted in ours.
    crate::rootfs::host::undo(&st.host_mounts)?;
    st.cgroup.destroy()?;
    std::fs::remove_dir_all(&dir).map_err(|source| DeleteError::Remove { path: dir, source })?;
    if let Some(h) = st.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
        crate::hooks::run_all_warn("poststop", h, &st.hook_state(crate::hooks::status_for("poststop")));
    }
    tracing::debug!(id, "deleted");
    Ok(())
}

fn kill_all(st: &State) -> Result<(), DeleteError> {
    // A frozen process cannot die; thaw first.
    if st.cgroup.is_frozen() {
        let (dir, file, val) = if st.cgroup.v2 {
            (st.cgroup.dir_for(""), "cgroup.freeze", "0")
        } else {
            (st.cgroup.dir_for("freezer"), "freezer.state", "THAWED")
        };
        if let Some(d) = dir {
            let _ = std::fs::write(d.join(file), val);
        }
    }
    // SAFETY: kill(2) of the init we recorded (checked alive by status()).
    unsafe { libc::kill(st.pid, libc::SIGKILL) };
    for pid in st.cgroup.pids()? {
        // SAFETY: as above, for processes in the container's cgroup.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while st.init_alive() || !st.cgroup.pids()?.is_empty() {
        if Instant::now() > deadline {
            return Err(DeleteError::Stuck { id: st.id.clone() });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
