//! `events`: one stats snapshot (--stats) or a stream of stats every
//! --interval plus an "oom" event whenever the kernel OOM-kills in the cgroup.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cgroups::stats;
use crate::state::{State, Status};

pub fn events(root: &Path, id: &str, once: bool, interval: Duration, out: &mut impl Write) -> anyhow::Result<()> {
    let st = State::load(root, id)?;
    let stats_event = || json!({"type": "stats", "id": id, "data": stats::collect(&st.cgroup)});
    if once {
        writeln!(out, "{}", stats_event())?;
        return Ok(());
    }
    let mut ooms = stats::oom_kills(&st.cgroup);
    let mut next = Instant::now();
    // OOM kills are polled often; stats go out every interval.
    while st.status(root) != Status::Stopped {
        let now_ooms = stats::oom_kills(&st.cgroup);
        if now_ooms > ooms {
            writeln!(out, "{}", json!({"type": "oom", "id": id}))?;
            ooms = now_ooms;
        }
        if Instant::now() >= next {
            writeln!(out, "{}", stats_event())?;
            next = Instant::now() + interval;
        }
        out.flush()?;
        std::thread::sleep(Duration::from_millis(50).min(interval));
    }
    // A last OOM check: the kill that stopped the container counts too.
    if stats::oom_kills(&st.cgroup) > ooms {
        writeln!(out, "{}", json!({"type": "oom", "id": id}))?;
    }
    Ok(())
}
