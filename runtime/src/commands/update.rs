//! `update`: change the resources of a running container, from a JSON file
//! of linux.resources or from flags. Only what is given is written.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxPids, LinuxResources};

use crate::cli::UpdateArgs;
use crate::state::{DirLock, State};

fn from_flags(a: &UpdateArgs, mut res: LinuxResources) -> LinuxResources {
    if a.memory.is_some() || a.memory_reservation.is_some() || a.memory_swap.is_some() {
        let mut m = res.memory().unwrap_or_default();
        a.memory.map(|v| m.set_limit(Some(v)));
        a.memory_reservation.map(|v| m.set_reservation(Some(v)));
        a.memory_swap.map(|v| m.set_swap(Some(v)));
        res.set_memory(Some(m));
    }
    if a.cpu_shares.is_some() || a.cpu_period.is_some() || a.cpu_quota.is_some() || a.cpuset_cpus.is_some() || a.cpuset_mems.is_some() {
        let mut c: LinuxCpu = res.cpu().clone().unwrap_or_default();
        a.cpu_shares.map(|v| c.set_shares(Some(v)));
        a.cpu_period.map(|v| c.set_period(Some(v)));
        a.cpu_quota.map(|v| c.set_quota(Some(v)));
        a.cpuset_cpus.clone().map(|v| c.set_cpus(Some(v)));
        a.cpuset_mems.clone().map(|v| c.set_mems(Some(v)));
        res.set_cpu(Some(c));
    }
    if let Some(p) = a.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(p);
        res.set_pids(Some(pids));
    }
    if let Some(w) = a.blkio_weight {
        let mut b: LinuxBlockIo = res.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        res.set_block_io(Some(b));
    }
    res
}

pub fn update(root: &Path, a: &UpdateArgs) -> anyhow::Result<()> {
    let st = State::load(root, &a.id)?;
    let _lock = DirLock::acquire(&st.dir(root))?;
    let status = st.status(root);
    if status == crate::state::Status::Stopped {
        bail!("cannot update container {}: it is stopped", a.id);
    }
    let base = match &a.resources {
        Some(p) => {
            let mut data = Vec::new();
            if p == Path::new("-") {
                std::io::stdin().read_to_end(&mut data).context("read resources from stdin")?;
            } else {
                data = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            }
            serde_json::from_slice(&data).context("parse resources")?
        }
        None => LinuxResources::default(),
    };
    let mut res = from_flags(a, base);
    // LinuxResources::default() carries an empty device list: only rules given count.
    if res.devices().as_ref().is_some_and(|d| d.is_empty()) {
        res.set_devices(None);
    }
    if res.devices().is_some() && st.cgroup.v2 {
        bail!("updating device rules is not supported on cgroup v2");
    }
    st.cgroup.update(&res)?;
    Ok(())
}
