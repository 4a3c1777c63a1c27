//! `run`: create, start, and (unless detached) wait and delete, exiting with
//! the container's status.

use nix::unistd::Pid;

use crate::cli::{GlobalOpts, RunArgs};
use crate::process;

pub fn run(g: &GlobalOpts, a: &RunArgs) -> anyhow::Result<i32> {
    let st = super::create::create(g, &a.create)?;
    if let Err(e) = super::start::start(&g.root, &a.create.id) {
        let _ = super::delete::delete(&g.root, &a.create.id, true);
        return Err(e.into());
    }
    if a.detach {
        return Ok(0);
    }
    let code = process::wait_forwarding(Pid::from_raw(st.pid))?;
    super::delete::delete(&g.root, &a.create.id, true)?;
    Ok(code)
}
