//! `create`: set the container up completely and leave its init blocked on
//! the start socket.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::atomic;
use crate::cgroups::{CgroupError, CgroupPaths};
use crate::cli::{CreateArgs, GlobalOpts};
use crate::hooks::HookState;
use crate::paths;
use crate::process::{self, capabilities, init::ChildConfig, namespaces, seccomp, ParentSteps, SpawnError};
use crate::rootfs::host::{self, HostMount};
use crate::rootfs::RootfsError;
use crate::state::{self, State, StateError};

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("bundle {path}")]
    Bundle {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}")]
    Config {
        path: PathBuf,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("invalid config.json: {0}")]
    Invalid(String),
    #[error("rootfs {path}")]
    Rootfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Namespace(#[from] namespaces::NamespaceError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("connect to console socket {path}")]
    Console {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("--systemd-cgroup is not supported: rind-runtime manages cgroupfs directly")]
    Systemd,
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Mounts(#[from] RootfsError),
}

pub fn load_spec(bundle: &Path) -> Result<(PathBuf, Spec), CreateError> {
    let bundle = fs::canonicalize(bundle).map_err(|source| CreateError::Bundle { path: bundle.to_path_buf(), source })?;
    let path = bundle.join(paths::CONFIG_FILE);
    let spec = Spec::load(&path).map_err(|source| CreateError::Config { path, source })?;
    Ok((bundle, spec))
}

/// Checks that need no system state, so bad input fails before anything is made.
pub fn validate(spec: &Spec) -> Result<(), CreateError> {
    let invalid = |m: &str| Err(CreateError::Invalid(m.to_string()));
    if spec.root().is_none() {
        return invalid("root is missing");
    }
    let Some(process) = spec.process() else {
        return invalid("process is missing");
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return invalid("process.args must not be empty");
    }
    if !process.cwd().is_absolute() {
        return invalid("process.cwd must be an absolute path");
    }
    let Some(linux) = spec.linux() else {
        return invalid("linux is missing");
    };
    let nss = linux.namespaces().clone().unwrap_or_default();
    let has = |t| nss.iter().any(|n| n.typ() == t);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return invalid("hostname needs a new UTS namespace");
    }
    if (linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())) && !has(LinuxNamespaceType::User) {
        return invalid("uidMappings need a user namespace");
    }
    for (k, _) in linux.sysctl().iter().flatten() {
        let ns = if k.starts_with("net.") {
            Some(LinuxNamespaceType::Network)
        } else if k.starts_with("kernel.shm") || k.starts_with("kernel.msg") || k == "kernel.sem" || k.starts_with("fs.mqueue.") {
            Some(LinuxNamespaceType::Ipc)
        } else if k == "kernel.hostname" || k == "kernel.domainname" {
            Some(LinuxNamespaceType::Uts)
        } else {
            None
        };
        match ns {
            Some(t) if has(t) => {}
            Some(t) => return Err(CreateError::Invalid(format!("sysctl {k} needs a new {} namespace", namespaces::kind_name(t)))),
            None => return Err(CreateError::Invalid(format!("sysctl {k} is not namespaced: it would change the host"))),
        }
    }
    // Without a mount namespace the rootfs is in ours, whose propagation is
    // not the container's to change.
    if linux.rootfs_propagation().as_deref().is_some_and(|p| !p.is_empty()) && !has(LinuxNamespaceType::Mount) {
        return invalid("rootfsPropagation needs a mount namespace");
    }
    if linux.intel_rdt().is_some() {
        return invalid("intelRdt is not supported");
    }
    Ok(())
}

/// Removes what a failed create made, in reverse order.
struct Cleanup<'a> {
    dir: &'a Path,
    cgroup: Option<CgroupPaths>,
    pid: Option<Pid>,
    /// Without a mount namespace: the rootfs and the mounts there before the child's.
    host_mounts: Option<(&'a Path, Vec<HostMount>)>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            let _ = signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some((rootfs, before)) = &self.host_mounts {
            if let Err(e) = host::mounts_under(rootfs).and_then(|now| host::undo(&host::made_between(before, &now))) {
                tracing::warn!(error = %rind_common::error::Chain(&e), "cleanup after failed create");
            }
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!(error = %rind_common::error::Chain(&e), "cleanup after failed create");
            }
        }
        let _ = fs::remove_dir_all(self.dir);
    }
}

/// Creates the container; returns its state. The init is our child, so `run`
/// can wait for it.
pub fn create(g: &GlobalOpts, a: &CreateArgs) -> Result<State, CreateError> {
    state::validate_id(&a.id)?;
    if g.systemd_cgroup {
        return Err(CreateError::Systemd);
    }
    let (bundle, spec) = load_spec(&a.bundle)?;
    validate(&spec)?;
    let root_path = spec.root().as_ref().expect("validated").path();
    let rootfs_in = if root_path.is_absolute() { root_path.clone() } else { bundle.join(root_path) };
    let rootfs = fs::canonicalize(&rootfs_in).map_err(|source| CreateError::Rootfs { path: rootfs_in.clone(), source })?;
    let linux = spec.linux().as_ref().expect("validated");
    let process = spec.process().as_ref().expect("validated");
    let ns_plan = namespaces::plan(&linux.namespaces().clone().unwrap_or_default())?;
    let seccomp = linux.seccomp().as_ref().map(seccomp::build).transpose()?;
    let seccomp_listener = match linux.seccomp().as_ref().filter(|s| seccomp::uses_notify(s)) {
        Some(s) => {
            let path = s.listener_path().clone().expect("validated by seccomp::build");
            let sock = paths::connect(&path).map_err(|source| CreateError::Io { op: "connect to seccomp listener", path, source })?;
            Some((sock, s.listener_metadata().clone().unwrap_or_default()))
        }
        None => None,
    };
    let console = a
        .console_socket
        .as_ref()
        .map(|p| paths::connect(p).map_err(|source| CreateError::Console { path: p.clone(), source }))
        .transpose()?;
    if process.terminal() == Some(true) && console.is_none() {
        return Err(CreateError::Invalid("process.terminal is set: --console-socket is required".into()));
    }

    fs::create_dir_all(&g.root).map_err(|source| CreateError::Io { op: "create state root", path: g.root.clone(), source })?;
    let dir = paths::container_dir(&g.root, &a.id);
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(StateError::Exists(a.id.clone()).into()),
        Err(source) => return Err(CreateError::Io { op: "create state dir", path: dir, source }),
    }
    // No flock here: mkdir already made this create the only one for the id,
    // and the child would inherit a lock fd until its execve.
    let mut cleanup = Cleanup { dir: &dir, cgroup: None, pid: None, host_mounts: None, armed: true };

    let cg_path = linux.cgroups_path().clone().unwrap_or_else(|| PathBuf::from(format!("/{}", a.id)));
    let cgroup = CgroupPaths::for_host(&cg_path)?;
    cleanup.cgroup = Some(cgroup.clone());
    cgroup.create()?;
    cgroup.apply(linux.resources().as_ref())?;

    let mut join = Vec::new();
    for (t, path) in &ns_plan.join_child {
        join.push((*t, path.clone(), namespaces::open(*t, path)?));
    }
    let start_path = dir.join(paths::START_SOCKET);
    let start = paths::bind(&start_path).map_err(|source| CreateError::Io { op: "listen on", path: start_path, source })?;
    let available = caps::read(None, caps::CapSet::Bounding).unwrap_or_default();
    let hook_state = HookState {
        oci_version: state::OCI_VERSION.into(),
        id: a.id.clone(),
        // A template: each hook is given its own status (hooks::status_for) and pid.
        status: state::Status::Creating.to_string(),
        pid: 0,
        bundle: bundle.clone(),
        annotations: spec.annotations().clone().unwrap_or_default(),
    };
    let hooks = spec.hooks().clone().unwrap_or_default();
    let create_hooks = vec![
        ("prestart", hooks.prestart().clone().unwrap_or_default()),
        ("createRuntime", hooks.create_runtime().clone().unwrap_or_default()),
    ];
    let child = ChildConfig {
        process,
        spec: Some(&spec),
        rootfs: rootfs.clone(),
        enter_root: None,
        cgroup: cgroup.clone(),
        ns: ns_plan.clone(),
        join,
        seccomp,
        caps: capabilities::plan(process.capabilities().as_ref(), &available),
        console,
        start: Some(start),
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        hooks: spec.hooks().clone(),
        hook_state: Some(hook_state.clone()),
        seccomp_listener,
    };
    let steps = ParentSteps {
        uid_mappings: linux.uid_mappings().as_deref().unwrap_or(&[]),
        gid_mappings: linux.gid_mappings().as_deref().unwrap_or(&[]),
        cgroup: &cgroup,
        oom_score_adj: process.oom_score_adj(),
        time_offsets: linux.time_offsets().as_ref(),
        wait_ready: true,
        create_hooks,
        hook_state: Some(&hook_state),
    };
    // Without a mount namespace of its own the child mounts in ours: what is
    // mounted under the rootfs now is not its to undo.
    if !ns_plan.contains(LinuxNamespaceType::Mount) {
        cleanup.host_mounts = Some((&rootfs, host::mounts_under(&rootfs)?));
    }
    let pid = process::spawn(&child, &steps)?;
    cleanup.pid = Some(pid);
    let host_mounts = match &cleanup.host_mounts {
        Some((rootfs, before)) => host::made_between(before, &host::mounts_under(rootfs)?),
        None => Vec::new(),
    };
    let pid_start = state::proc_stat(pid.as_raw()).map(|s| s.start_time).unwrap_or(0);
    let st = State {
        version: state::STATE_VERSION,
        id: a.id.clone(),
        bundle,
        rootfs: rootfs.clone(),
        pid: pid.as_raw(),
        pid_start,
        created: state::now_rfc3339(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup,
        use_terminal: process.terminal() == Some(true),
        namespaces: ns_plan.has.iter().map(|t| namespaces::kind_name(*t).to_string()).collect(),
        hooks: spec.hooks().clone(),
        host_mounts,
    };
    st.save(&g.root)?;
    if let Some(pf) = &a.pid_file {
        atomic::write_file(pf, pid.as_raw().to_string().as_bytes()).map_err(|source| CreateError::Io {
            op: "write pid file",
            path: pf.clone(),
            source,
        })?;
    }
    cleanup.armed = false;
    tracing::debug!(id = %a.id, pid = pid.as_raw(), "created");
    Ok(st)
}
