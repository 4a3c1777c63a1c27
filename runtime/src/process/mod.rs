//! Starting a process inside a container: the parent side of the clone, and
//! the child in `init.rs`. One clone, no re-exec: the child runs our code until
//! it execs the user's program, which keeps the fork chain short.

pub mod capabilities;
pub mod channel;
pub mod init;
pub mod namespaces;
pub mod sched;
pub mod seccomp;

use std::io;
use std::path::Path;

use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType};

use crate::cgroups::{CgroupError, CgroupPaths};
use channel::ChannelError;
use init::ChildConfig;
use namespaces::NamespaceError;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("clone")]
    Clone(#[source] io::Error),
    #[error("write {path}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The child reported this error (its message names the step).
    #[error("{0}")]
    Child(String),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
}

/// What the parent does between clone and Go.
pub struct ParentSteps<'a> {
    pub uid_mappings: &'a [LinuxIdMapping],
    pub gid_mappings: &'a [LinuxIdMapping],
    pub cgroup: &'a CgroupPaths,
    pub oom_score_adj: Option<i32>,
    pub time_offsets: Option<&'a std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>>,
    /// Wait for Ready (init) rather than for the exec (channel closed).
    pub wait_ready: bool,
    /// prestart and createRuntime hooks, run when the child asks.
    pub create_hooks: Vec<(&'static str, Vec<oci_spec::runtime::Hook>)>,
    pub hook_state: Option<&'a crate::hooks::HookState>,
}

fn write_proc(path: String, data: &str) -> Result<(), SpawnError> {
    std::fs::write(&path, data).map_err(|source| SpawnError::Write { path, source })
}

pub fn id_map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect()
}

/// Clones the child with the planned namespaces and drives it to Ready (or,
/// for an exec, to its execve). On error the child is killed and reaped.
pub fn spawn(cfg: &ChildConfig, steps: &ParentSteps) -> Result<Pid, SpawnError> {
    for (t, path) in &cfg.ns.join_parent {
        let f = namespaces::open(*t, path)?;
        namespaces::join(*t, path, &f)?;
    }
    if cfg.ns.new_time {
        namespaces::unshare(nix::sched::CloneFlags::from_bits_retain(namespaces::CLONE_NEWTIME))?;
        if let Some(offsets) = steps.time_offsets {
            let text: String =
                offsets.iter().map(|(clock, o)| format!("{clock} {} {}\n", o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0))).collect();
            write_proc("/proc/self/timens_offsets".into(), &text)?;
        }
    }
    let (parent_chan, child_chan) = channel::pair()?;
    let flags = cfg.ns.clone_flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: clone with a null stack behaves like fork: the child gets a copy
    // of this single-threaded process and continues on its own copy of the stack.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if rc < 0 {
        return Err(SpawnError::Clone(io::Error::last_os_error()));
    }
    if rc == 0 {
        drop(parent_chan);
        init::run(cfg, &child_chan);
    }
    drop(child_chan);
    let pid = Pid::from_raw(rc as i32);
    match drive(pid, &parent_chan, steps) {
        Ok(()) => Ok(pid),
        Err(e) => {
            let _ = signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            Err(e)
        }
    }
}

fn drive(pid: Pid, chan: &channel::Channel, steps: &ParentSteps) -> Result<(), SpawnError> {
    if !steps.uid_mappings.is_empty() || !steps.gid_mappings.is_empty() {
        write_proc(format!("/proc/{pid}/uid_map"), &id_map_text(steps.uid_mappings))?;
        write_proc(format!("/proc/{pid}/gid_map"), &id_map_text(steps.gid_mappings))?;
    }
    steps.cgroup.add_pid(pid.as_raw())?;
    if let Some(adj) = steps.oom_score_adj {
        write_proc(format!("/proc/{pid}/oom_score_adj"), &adj.to_string())?;
    }
    chan.send(&channel::Message::Go { pid: pid.as_raw() })?;
    if steps.wait_ready {
        loop {
            match chan.recv()? {
                channel::Message::Ready => return Ok(()),
                channel::Message::Error(msg) => return Err(SpawnError::Child(msg)),
                channel::Message::RunHooks => {
                    if let Some(state) = steps.hook_state {
                        for (kind, hooks) in &steps.create_hooks {
                            crate::hooks::run_all(kind, hooks, &state.with(crate::hooks::status_for(kind), pid.as_raw()))?;
                        }
                    }
                    chan.send(&channel::Message::HooksDone)?;
                }
                other => return Err(SpawnError::Channel(ChannelError::Unexpected { expected: "Ready", received: other })),
            }
        }
    }
    // exec: the channel closes when execve succeeds (it is O_CLOEXEC).
    match chan.recv() {
        Err(ChannelError::Closed) => Ok(()),
        Ok(channel::Message::Error(msg)) => Err(SpawnError::Child(msg)),
        Ok(other) => Err(SpawnError::Channel(ChannelError::Unexpected { expected: "exec", received: other })),
        Err(e) => Err(SpawnError::Channel(e)),
    }
}

/// Opens the namespace files of a running process that differ from ours, for
/// exec to join, user namespace first.
pub fn namespaces_of(pid: i32, kinds: &[LinuxNamespaceType]) -> Result<Vec<(LinuxNamespaceType, std::path::PathBuf)>, NamespaceError> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for t in kinds {
        let name = namespaces::kind_name(*t);
        let theirs = std::path::PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let ours = Path::new("/proc/self/ns").join(name);
        let same = match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            (Err(source), _) => return Err(NamespaceError::Open { kind: name, path: theirs, source }),
            _ => false,
        };
        if !same {
            out.push((*t, theirs));
        }
    }
    Ok(out)
}

/// Waits for `pid`, forwarding the signals a foreground runtime should pass
/// on, and returns its exit code as a shell reports it (128+signal).
pub fn wait_forwarding(pid: Pid) -> io::Result<i32> {
    use nix::sys::signal::{SigSet, SigmaskHow};
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    loop {
        match waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG))? {
            WaitStatus::Exited(_, code) => return Ok(code),
            WaitStatus::Signaled(_, sig, _) => return Ok(128 + sig as i32),
            _ => {}
        }
        let sig = set.wait()?;
        if sig != Signal::SIGCHLD {
            let _ = signal::kill(pid, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_map_text_lines() {
        let m: Vec<LinuxIdMapping> = serde_json::from_str(r#"[{"containerID":0,"hostID":100000,"size":65536}]"#).unwrap();
        assert_eq!(id_map_text(&m), "0 100000 65536\n");
    }
}
