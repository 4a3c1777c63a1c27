//! Which namespaces a container gets and how: created at clone, joined by path
//! (in the parent for pid and time, which only affect children), or unshared in
//! the child after it has joined a user namespace or its cgroup.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("namespace {0} is listed twice")]
    Duplicate(&'static str),
    #[error("open {kind} namespace {path}")]
    Open {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("join {kind} namespace {path}")]
    Join {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("unshare {flags:?}")]
    Unshare {
        flags: CloneFlags,
        #[source]
        source: nix::Error,
    },
}

/// CLONE_NEWTIME; nix has no constant for it. It only works through unshare.
pub const CLONE_NEWTIME: i32 = 0x80;

pub fn kind_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(CLONE_NEWTIME),
    }
}

/// Order in which namespaces are joined: user first, so the others are joined
/// with the capabilities it grants; mount last among the rest.
const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Mount,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// New namespaces created by clone itself.
    pub clone_flags: CloneFlags,
    /// New namespaces the child unshares after joining (cgroup always here,
    /// after the parent has put the child in its cgroup).
    pub unshare_flags: CloneFlags,
    /// Namespaces joined by the parent before clone (pid, time).
    pub join_parent: Vec<(LinuxNamespaceType, PathBuf)>,
    /// Namespaces joined by the child, in JOIN_ORDER.
    pub join_child: Vec<(LinuxNamespaceType, PathBuf)>,
    pub new_user: bool,
    pub new_time: bool,
    pub has: Vec<LinuxNamespaceType>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            clone_flags: CloneFlags::empty(),
            unshare_flags: CloneFlags::empty(),
            join_parent: Vec::new(),
            join_child: Vec::new(),
            new_user: false,
            new_time: false,
            has: Vec::new(),
        }
    }
}

impl Plan {
    pub fn contains(&self, t: LinuxNamespaceType) -> bool {
        self.has.contains(&t)
    }
    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        (self.clone_flags | self.unshare_flags).contains(flag(t)) || (t == LinuxNamespaceType::Time && self.new_time)
    }
}

pub fn plan(namespaces: &[LinuxNamespace]) -> Result<Plan, NamespaceError> {
    let mut p = Plan::default();
    for ns in namespaces {
        if p.has.contains(&ns.typ()) {
            return Err(NamespaceError::Duplicate(kind_name(ns.typ())));
        }
        p.has.push(ns.typ());
    }
    let joined_user = namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
    for t in JOIN_ORDER {
        let Some(ns) = namespaces.iter().find(|n| n.typ() == t) else {
            continue;
        };
        match (ns.path(), t) {
            (Some(path), LinuxNamespaceType::Pid | LinuxNamespaceType::Time) => p.join_parent.push((t, path.clone())),
            (Some(path), _) => p.join_child.push((t, path.clone())),
            (None, LinuxNamespaceType::Time) => p.new_time = true,
            (None, LinuxNamespaceType::Cgroup) => p.unshare_flags |= CloneFlags::CLONE_NEWCGROUP,
            // A joined user namespace must own the new ones: unshare them after setns.
            (None, LinuxNamespaceType::Pid) | (None, LinuxNamespaceType::User) => p.clone_flags |= flag(t),
            (None, _) if joined_user => p.unshare_flags |= flag(t),
            (None, _) => p.clone_flags |= flag(t),
        }
        if t == LinuxNamespaceType::User && ns.path().is_none() {
            p.new_user = true;
        }
    }
    Ok(p)
}

pub fn open(t: LinuxNamespaceType, path: &Path) -> Result<File, NamespaceError> {
    File::open(path).map_err(|source| NamespaceError::Open { kind: kind_name(t), path: path.to_path_buf(), source })
}

pub fn join(t: LinuxNamespaceType, path: &Path, file: &File) -> Result<(), NamespaceError> {
    nix::sched::setns(file.as_fd(), flag(t)).map_err(|source| NamespaceError::Join { kind: kind_name(t), path: path.to_path_buf(), source })
}

pub fn unshare(flags: CloneFlags) -> Result<(), NamespaceError> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).map_err(|source| NamespaceError::Unshare { flags, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nss(json: &str) -> Vec<LinuxNamespace> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plan_new_namespaces_go_to_clone() {
        let p = plan(&nss(r#"[{"type":"pid"},{"type":"mount"},{"type":"network"},{"type":"cgroup"}]"#)).unwrap();
        assert_eq!(p.clone_flags, CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET);
        assert_eq!(p.unshare_flags, CloneFlags::CLONE_NEWCGROUP);
        assert!(p.join_child.is_empty() && p.join_parent.is_empty());
    }

    #[test]
    fn plan_joined_pid_in_parent_user_first_in_child() {
        let p =
            plan(&nss(r#"[{"type":"mount","path":"/m"},{"type":"pid","path":"/p"},{"type":"user","path":"/u"},{"type":"uts"}]"#)).unwrap();
        assert_eq!(p.join_parent, vec![(LinuxNamespaceType::Pid, PathBuf::from("/p"))]);
        assert_eq!(p.join_child[0].0, LinuxNamespaceType::User);
        assert_eq!(p.join_child[1].0, LinuxNamespaceType::Mount);
        assert_eq!(p.unshare_flags, CloneFlags::CLONE_NEWUTS);
        assert!(!p.new_user);
    }

    #[test]
    fn plan_rejects_duplicates() {
        assert!(plan(&nss(r#"[{"type":"pid"},{"type":"pid"}]"#)).is_err());
    }

    #[test]
    fn plan_time_namespace_is_unshared_not_cloned() {
        let p = plan(&nss(r#"[{"type":"time"}]"#)).unwrap();
        assert!(p.new_time);
        assert!(p.clone_flags.is_empty());
    }
}
