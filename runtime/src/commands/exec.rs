//! `exec`: run a new process in a running container, in all its namespaces
//! and its cgroup, with its own user, capabilities, env, cwd and terminal.

use crate::paths;
use std::path::PathBuf;

use anyhow::{bail, Context};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::atomic;
use crate::cli::{ExecArgs, GlobalOpts};
use crate::process::{self, capabilities, init::ChildConfig, namespaces, seccomp, ParentSteps};
use crate::state::{State, StateError};

const KINDS: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Mount,
];

/// Builds the process from --process or from the flags over the container's own process.
fn build_process(a: &ExecArgs, base: &Process) -> anyhow::Result<Process> {
    if let Some(p) = &a.process {
        let data = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
        return serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()));
    }
    if a.command.is_empty() {
        bail!("exec needs a command or --process");
    }
    let mut p = base.clone();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    let mut env = base.env().clone().unwrap_or_default();
    for e in &a.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let mut user = p.user().clone();
        user.set_uid(uid.parse().with_context(|| format!("--user {u}: uid must be a number"))?);
        user.set_gid(gid.parse().with_context(|| format!("--user {u}: gid must be a number"))?);
        if !a.additional_gids.is_empty() {
            user.set_additional_gids(Some(a.additional_gids.clone()));
        }
        p.set_user(user);
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let extra: oci_spec::runtime::Capabilities =
            serde_json::from_value(serde_json::json!(a.cap)).context("--cap: unknown capability")?;
        let add = |set: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.extend(extra.iter().copied());
            Some(s)
        };
        let (b, e, pm, i) = (add(caps.bounding()), add(caps.effective()), add(caps.permitted()), add(caps.inheritable()));
        caps.set_bounding(b).set_effective(e).set_permitted(pm).set_inheritable(i);
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub fn exec(g: &GlobalOpts, a: &ExecArgs) -> anyhow::Result<i32> {
    let st = State::load(&g.root, &a.id)?;
    let status = st.status(&g.root);
    if !status.can_exec() {
        return Err(StateError::BadStatus { verb: "exec into", id: a.id.clone(), status }.into());
    }
    let spec_path = st.bundle.join(crate::paths::CONFIG_FILE);
    let spec = Spec::load(&spec_path).with_context(|| format!("load {}", spec_path.display()))?;
    let base = spec.process().clone().unwrap_or_default();
    let process = build_process(a, &base)?;
    if process.args().as_ref().is_none_or(|v| v.is_empty()) {
        bail!("process.args must not be empty");
    }
    let joins = process::namespaces_of(st.pid, &KINDS)?;
    // A container in our own mount namespace was entered with chroot: so is
    // each process exec'd into it.
    let enter_root = if joins.iter().any(|(t, _)| *t == LinuxNamespaceType::Mount) {
        None
    } else {
        let root = PathBuf::from(format!("/proc/{}/root", st.pid));
        Some(std::fs::File::open(&root).with_context(|| format!("open {}", root.display()))?)
    };
    let mut ns = namespaces::Plan::default();
    let mut join = Vec::new();
    for (t, path) in joins {
        ns.has.push(t);
        match t {
            LinuxNamespaceType::Pid | LinuxNamespaceType::Time => ns.join_parent.push((t, path)),
            _ => {
                let f = namespaces::open(t, &path)?;
                join.push((t, path, f));
            }
        }
    }
    let linux = spec.linux().clone().unwrap_or_default();
    let seccomp = linux.seccomp().as_ref().map(seccomp::build).transpose()?;
    let seccomp_listener = match linux.seccomp().as_ref().filter(|s| seccomp::uses_notify(s)) {
        Some(s) => {
            let path = s.listener_path().clone().expect("validated by seccomp::build");
            let sock = paths::connect(&path).with_context(|| format!("connect to seccomp listener {}", path.display()))?;
            Some((sock, s.listener_metadata().clone().unwrap_or_default()))
        }
        None => None,
    };
    let console = a
        .console_socket
        .as_ref()
        .map(|p| paths::connect(p).with_context(|| format!("connect to console socket {}", p.display())))
        .transpose()?;
    if process.terminal() == Some(true) && console.is_none() {
        bail!("--tty needs --console-socket");
    }
    let available = caps::read(None, caps::CapSet::Bounding).unwrap_or_default();
    let child = ChildConfig {
        process: &process,
        spec: None,
        rootfs: PathBuf::from("/"),
        enter_root,
        cgroup: st.cgroup.clone(),
        ns,
        join,
        seccomp,
        caps: capabilities::plan(process.capabilities().as_ref(), &available),
        console,
        start: None,
        preserve_fds: a.preserve_fds,
        no_pivot: false,
        hooks: None,
        hook_state: None,
        seccomp_listener,
    };
    let steps = ParentSteps {
        uid_mappings: &[],
        gid_mappings: &[],
        cgroup: &st.cgroup,
        oom_score_adj: None,
        time_offsets: None,
        wait_ready: false,
        create_hooks: Vec::new(),
        hook_state: None,
    };
    let pid = process::spawn(&child, &steps)?;
    if let Some(pf) = &a.pid_file {
        atomic::write_file(pf, pid.as_raw().to_string().as_bytes()).with_context(|| format!("write pid file {}", pf.display()))?;
    }
    if a.detach {
        return Ok(0);
    }
    Ok(process::wait_forwarding(pid)?)
}
