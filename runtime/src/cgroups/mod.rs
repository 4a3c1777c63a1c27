//! Container cgroups, v1 and v2, detected at run time.
//!
//! Every function takes the cgroup mount root and the mountinfo/cgroup texts
//! as inputs where it can, so the logic runs against tempdir fixtures.

pub mod devices_bpf;
pub mod plan;
pub mod stats;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::paths;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{0}")]
    Invalid(String),
    #[error("create cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remove cgroup {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup controller {0} is not available on this host")]
    NoController(String),
    #[error("{path}: device filter")]
    Devices {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The directories that make up one container's cgroup.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CgroupPaths {
    pub v2: bool,
    /// v1: the hierarchy's controllers ("cpu", "name=systemd", "cpu,cpuacct")
    /// to its directory; v2: "" to the one directory.
    pub dirs: BTreeMap<String, PathBuf>,
}

pub fn is_v2(root: &Path) -> bool {
    nix::sys::statfs::statfs(root).map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC).unwrap_or(false)
}

/// A mounted v1 hierarchy, from mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    pub root: PathBuf,
}

const V1_MOUNT_OPTS: &[&str] = &["rw", "ro", "clone_children", "noprefix", "xattr", "cpuset_v2_mode", "favordynmods"];

pub fn parse_v1_mounts(mountinfo: &str) -> Vec<V1Mount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        if r.next() != Some("cgroup") {
            continue;
        }
        let super_opts = r.nth(1).unwrap_or("");
        let l: Vec<&str> = left.split_whitespace().collect();
        if l.len() < 5 {
            continue;
        }
        let controllers: Vec<String> =
            super_opts.split(',').filter(|o| !V1_MOUNT_OPTS.contains(o) && !o.starts_with("release_agent=")).map(String::from).collect();
        if controllers.is_empty() {
            continue;
        }
        out.push(V1Mount { controllers, mount_point: PathBuf::from(l[4]), root: PathBuf::from(l[3]) });
    }
    out
}

/// One mount per hierarchy: the host's. mountinfo can show a hierarchy
/// several times: binds of one of its cgroups, such as a container's
/// /sys/fs/cgroup/<controller>, appear here when a container's mounts
/// propagate back (shared rootfs propagation) or when a container has no
/// mount namespace of its own. The hierarchy's root mounted under the cgroup
/// root wins; else its root anywhere; else the first mount seen.
pub fn host_v1_mounts(cgroup_root: &Path, mounts: Vec<V1Mount>) -> Vec<V1Mount> {
    let rank = |m: &V1Mount| (m.root != Path::new("/"), !m.mount_point.starts_with(cgroup_root));
    let mut best: Vec<V1Mount> = Vec::new();
    for m in mounts {
        match best.iter_mut().find(|b| b.controllers == m.controllers) {
            Some(b) if rank(&m) < rank(b) => *b = m,
            Some(_) => {}
            None => best.push(m),
        }
    }
    best
}

/// This process's cgroup in the hierarchy with `controllers` ("" for v2),
/// from /proc/self/cgroup text.
pub fn own_cgroup(proc_cgroup: &str, controllers: &str) -> Option<PathBuf> {
    proc_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, c, p) = (parts.next()?, parts.next()?, parts.next()?);
        (c == controllers).then(|| PathBuf::from(p))
    })
}

/// Joins `rel` under `base` refusing `..`, so a cgroupsPath cannot escape the hierarchy.
fn join_clean(base: &Path, rel: &Path) -> Result<PathBuf, CgroupError> {
    let mut out = base.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => return Err(CgroupError::Invalid(format!("cgroupsPath {} must not contain '..'", rel.display()))),
        }
    }
    Ok(out)
}

/// Decides the directories of a container's cgroup. `cgroups_path` is absolute
/// (from the hierarchy root) or relative (to this process's own cgroup).
pub fn resolve(cgroup_root: &Path, v2: bool, mountinfo: &str, proc_cgroup: &str, cgroups_path: &Path) -> Result<CgroupPaths, CgroupError> {
    let mut dirs = BTreeMap::new();
    if v2 {
        let base = if cgroups_path.is_absolute() {
            cgroup_root.to_path_buf()
        } else {
            join_clean(cgroup_root, &own_cgroup(proc_cgroup, "").unwrap_or_default())?
        };
        dirs.insert(String::new(), join_clean(&base, cgroups_path)?);
    } else {
        for m in host_v1_mounts(cgroup_root, parse_v1_mounts(mountinfo)) {
            let key = m.controllers.join(",");
            let base = if cgroups_path.is_absolute() {
                m.mount_point.clone()
            } else {
                let own = own_cgroup(proc_cgroup, &key).unwrap_or_default();
                let inner = own.strip_prefix(&m.root).map(Path::to_path_buf).unwrap_or(own);
                join_clean(&m.mount_point, &inner)?
            };
            dirs.insert(key, join_clean(&base, cgroups_path)?);
        }
        if dirs.is_empty() {
            return Err(CgroupError::Invalid("no cgroup v1 hierarchy is mounted".into()));
        }
    }
    Ok(CgroupPaths { v2, dirs })
}

fn write(path: PathBuf, value: &str) -> Result<(), CgroupError> {
    fs::write(&path, value).map_err(|source| CgroupError::Write { path, value: value.to_string(), source })
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read { path: path.to_path_buf(), source })
}

impl CgroupPaths {
    /// Resolves the container's cgroup on this host.
    pub fn for_host(cgroups_path: &Path) -> Result<CgroupPaths, CgroupError> {
        let root = Path::new(paths::CGROUP_ROOT);
        let v2 = is_v2(root);
        let mountinfo = if v2 { String::new() } else { read(Path::new("/proc/self/mountinfo"))? };
        let own = read(Path::new("/proc/self/cgroup"))?;
        resolve(root, v2, &mountinfo, &own, cgroups_path)
    }

    /// The directory of the hierarchy that holds `controller`.
    pub fn dir_for(&self, controller: &str) -> Option<&Path> {
        if self.v2 {
            return self.dirs.values().next().map(PathBuf::as_path);
        }
        self.dirs.iter().find(|(k, _)| k.split(',').any(|c| c == controller)).map(|(_, p)| p.as_path())
    }

    /// Creates every directory (and, on v2, enables controllers down the path).
    pub fn create(&self) -> Result<(), CgroupError> {
        for (key, dir) in &self.dirs {
            if self.v2 {
                create_v2(dir)?;
            } else {
                create_v1(dir, key.split(',').any(|c| c == "cpuset"))?;
            }
        }
        Ok(())
    }

    /// Writes only the resources given (for `update`): devices only if listed.
    pub fn update(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        let mut plan = if self.v2 { plan::plan_v2(res)? } else { plan::plan_v1(res)? };
        if res.devices().is_none() {
            plan.writes.retain(|w| w.controller != "devices");
        }
        self.apply_plan(plan)
    }

    /// Applies a plan's writes in order (see [`plan::Write`] for the
    /// missing-file and retry rules) and warns of what it leaves out.
    fn apply_plan(&self, plan: plan::Plan) -> Result<(), CgroupError> {
        for what in &plan.ignored {
            tracing::warn!(what = %what, "ignored on this host");
        }
        let mut writes = plan.writes.into_iter().peekable();
        while let Some(wr) = writes.next() {
            let dir = self.dir_for(wr.controller).ok_or_else(|| CgroupError::NoController(wr.controller.into()))?;
            match self.write_one(dir, &wr) {
                Err(CgroupError::Write { source, .. }) if wr.retry_after_next && source.raw_os_error() == Some(libc::EINVAL) => {
                    if let Some(next) = writes.next() {
                        self.write_one(dir, &next)?;
                    }
                    self.write_one(dir, &wr)?;
                }
                r => r?,
            }
        }
        Ok(())
    }

    fn write_one(&self, dir: &Path, wr: &plan::Write) -> Result<(), CgroupError> {
        let path = dir.join(&wr.file);
        match &wr.missing {
            plan::Missing::Fail => write(path, &wr.value),
            _ if !path.exists() && !matches!(wr.missing, plan::Missing::Warn) => match &wr.missing {
                plan::Missing::Instead { file, value } => write(dir.join(file), value),
                _ => Ok(()),
            },
            plan::Missing::Warn => match write(path, &wr.value) {
                // Gone, or kept only to refuse writes (kmem.limit_in_bytes since Linux 5.16).
                Err(CgroupError::Write { source, .. })
                    if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(libc::EOPNOTSUPP) =>
                {
                    tracing::warn!(file = %wr.file, value = %wr.value, error = %source, "this kernel no longer offers it: not applied");
                    Ok(())
                }
                r => r,
            },
            _ => write(path, &wr.value),
        }
    }

    pub fn apply(&self, res: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let default = LinuxResources::default();
        let res = res.unwrap_or(&default);
        self.apply_plan(if self.v2 { plan::plan_v2(res)? } else { plan::plan_v1(res)? })?;
        if self.v2 {
            let dir = self.dir_for("").expect("v2 has one dir");
            let rules = plan::device_rules(Some(res))?;
            let prog = devices_bpf::compile(&rules);
            let f = fs::File::open(dir).map_err(|source| CgroupError::Devices { path: dir.to_path_buf(), source })?;
            devices_bpf::attach(&prog, &f).map_err(|source| CgroupError::Devices { path: dir.to_path_buf(), source })?;
        }
        Ok(())
    }

    /// Freezes or thaws every process, waiting until the kernel reports it done.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let (dir, file, value, done_file, done) = if self.v2 {
            (
                self.dir_for(""),
                "cgroup.freeze",
                if frozen { "1" } else { "0" },
                "cgroup.events",
                if frozen { "frozen 1" } else { "frozen 0" },
            )
        } else {
            let v = if frozen { "FROZEN" } else { "THAWED" };
            (self.dir_for("freezer"), "freezer.state", v, "freezer.state", v)
        };
        let dir = dir.ok_or_else(|| CgroupError::NoController("freezer".into()))?;
        write(dir.join(file), value)?;
        for _ in 0..1000 {
            if read(&dir.join(done_file))?.lines().any(|l| l.trim() == done) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(CgroupError::Invalid(format!("{}: still not {} after 1s", dir.display(), if frozen { "frozen" } else { "thawed" })))
    }

    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.dirs.values() {
            write(dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Pids in the container's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let Some(dir) = self.dir_for("pids").or_else(|| self.dirs.values().next().map(PathBuf::as_path)) else {
            return Ok(Vec::new());
        };
        let path = dir.join("cgroup.procs");
        match fs::read_to_string(&path) {
            Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(CgroupError::Read { path, source }),
        }
    }

    pub fn is_frozen(&self) -> bool {
        if self.v2 {
            self.dir_for("").and_then(|d| fs::read_to_string(d.join("cgroup.freeze")).ok()).is_some_and(|s| s.trim() == "1")
        } else {
            self.dir_for("freezer").and_then(|d| fs::read_to_string(d.join("freezer.state")).ok()).is_some_and(|s| s.trim() == "FROZEN")
        }
    }

    /// Removes every directory. Processes may take a moment to leave after
    /// SIGKILL, so EBUSY is retried for up to a second.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        for dir in self.dirs.values() {
            let mut tries = 0;
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(source) => return Err(CgroupError::Remove { path: dir.clone(), source }),
                }
            }
        }
        Ok(())
    }
}

/// mkdir that accepts a directory another container's runtime made first
/// (two creates under one new parent race for it).
fn mkdir(d: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(d) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(CgroupError::Create { path: d.to_path_buf(), source: e }),
        _ => Ok(()),
    }
}

fn create_v1(dir: &Path, cpuset: bool) -> Result<(), CgroupError> {
    if !cpuset {
        return fs::create_dir_all(dir).map_err(|source| CgroupError::Create { path: dir.to_path_buf(), source });
    }
    // A new v1 cpuset starts with empty cpus and mems and refuses tasks: copy
    // the parent's values into each level we create.
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.exists() {
        missing.push(cur.to_path_buf());
        cur = cur.parent().ok_or_else(|| CgroupError::Invalid(format!("{} has no parent", dir.display())))?;
    }
    for d in missing.iter().rev() {
        mkdir(d)?;
        let parent = d.parent().expect("created dir has a parent");
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let v = read(&parent.join(f))?;
            write(d.join(f), v.trim())?;
        }
    }
    Ok(())
}

fn create_v2(dir: &Path) -> Result<(), CgroupError> {
    // Enable every available controller from the root down to our parent.
    let mut ancestors: Vec<&Path> = dir.ancestors().skip(1).take_while(|a| a.starts_with(paths::CGROUP_ROOT)).collect();
    ancestors.reverse();
    for a in &ancestors {
        mkdir(a)?;
        let controllers = read(&a.join("cgroup.controllers"))?;
        let enable: Vec<String> = controllers.split_whitespace().map(|c| format!("+{c}")).collect();
        if !enable.is_empty() {
            write(a.join("cgroup.subtree_control"), &enable.join(" "))?;
        }
    }
    mkdir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn parse_v1_mounts_finds_controllers() {
        let m = parse_v1_mounts(MOUNTINFO);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].controllers, vec!["cpu"]);
        assert_eq!(m[2].controllers, vec!["name=systemd"]);
        assert_eq!(m[1].mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn resolve_absolute_and_relative_v1() {
        let own = "4:memory:/user/me\n3:cpu:/user/me\n1:name=systemd:/\n";
        let p = resolve(Path::new("/sys/fs/cgroup"), false, MOUNTINFO, own, Path::new("/default/c1")).unwrap();
        assert_eq!(p.dir_for("memory").unwrap(), Path::new("/sys/fs/cgroup/memory/default/c1"));
        let p = resolve(Path::new("/sys/fs/cgroup"), false, MOUNTINFO, own, Path::new("pod/c1")).unwrap();
        assert_eq!(p.dir_for("cpu").unwrap(), Path::new("/sys/fs/cgroup/cpu/user/me/pod/c1"));
        assert_eq!(p.dir_for("name=systemd").unwrap(), Path::new("/sys/fs/cgroup/systemd/pod/c1"));
    }

    #[test]
    fn resolve_v1_ignores_later_binds_of_a_hierarchy() {
        let info = format!("{MOUNTINFO}40 22 0:28 /c0 /b/rootfs/sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n");
        let p = resolve(Path::new("/sys/fs/cgroup"), false, &info, "", Path::new("/c1")).unwrap();
        assert_eq!(p.dir_for("memory").unwrap(), Path::new("/sys/fs/cgroup/memory/c1"));
    }

    #[test]
    fn resolve_v1_prefers_the_hierarchy_root_over_earlier_binds() {
        // A container's cgroup bound into a bundle before the host's mount
        // (mountinfo order is not a promise), and one of the whole hierarchy elsewhere.
        let info = format!(
            "40 22 0:28 /docker/c0 /tmp/b/rootfs/sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n\
             41 22 0:28 / /mnt/elsewhere rw - cgroup cgroup rw,memory\n{MOUNTINFO}"
        );
        let p = resolve(Path::new("/sys/fs/cgroup"), false, &info, "", Path::new("/c1")).unwrap();
        assert_eq!(p.dir_for("memory").unwrap(), Path::new("/sys/fs/cgroup/memory/c1"));
        let only_binds = "40 22 0:28 /docker/c0 /tmp/b/sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n";
        let p = resolve(Path::new("/sys/fs/cgroup"), false, only_binds, "", Path::new("/c1")).unwrap();
        assert_eq!(p.dir_for("memory").unwrap(), Path::new("/tmp/b/sys/fs/cgroup/memory/c1"), "inside a container: its view");
    }

    #[test]
    fn resolve_v2_and_rejects_dotdot() {
        let p = resolve(Path::new("/sys/fs/cgroup"), true, "", "0::/x\n", Path::new("/a/b")).unwrap();
        assert_eq!(p.dir_for("memory").unwrap(), Path::new("/sys/fs/cgroup/a/b"));
        let p = resolve(Path::new("/sys/fs/cgroup"), true, "", "0::/x\n", Path::new("a")).unwrap();
        assert_eq!(p.dir_for("").unwrap(), Path::new("/sys/fs/cgroup/x/a"));
        assert!(resolve(Path::new("/sys/fs/cgroup"), true, "", "0::/\n", Path::new("/a/../../etc")).is_err());
    }

    #[test]
    fn apply_v1_writes_files_in_fixture() {
        let tmp = tempfile::tempdir().unwrap();
        let mem = tmp.path().join("memory/c");
        let pids = tmp.path().join("pids/c");
        let devices = tmp.path().join("devices/c");
        for d in [&mem, &pids, &devices] {
            fs::create_dir_all(d).unwrap();
        }
        let paths = CgroupPaths {
            v2: false,
            dirs: [("memory".into(), mem.clone()), ("pids".into(), pids.clone()), ("devices".into(), devices.clone())].into(),
        };
        let res: LinuxResources = serde_json::from_str(r#"{"memory":{"limit":1000000},"pids":{"limit":5}}"#).unwrap();
        paths.apply(Some(&res)).unwrap();
        assert_eq!(fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap(), "1000000");
        assert_eq!(fs::read_to_string(pids.join("pids.max")).unwrap(), "5");
        // the last devices write wins in a plain file; the real one appends
        assert_eq!(fs::read_to_string(devices.join("devices.allow")).unwrap(), "c 136:* rwm");
    }

    #[test]
    fn apply_v1_fails_naming_missing_controller() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = CgroupPaths { v2: false, dirs: [("memory".into(), tmp.path().to_path_buf())].into() };
        let res: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":5}}"#).unwrap();
        let err = paths.apply(Some(&res)).unwrap_err().to_string();
        assert!(err.contains("pids"), "{err}");
    }

    #[test]
    fn frozen_state_read_from_fixture() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cgroup.freeze"), "1\n").unwrap();
        let paths = CgroupPaths { v2: true, dirs: [(String::new(), tmp.path().to_path_buf())].into() };
        assert!(paths.is_frozen());
        fs::write(tmp.path().join("cgroup.procs"), "12\n13\n").unwrap();
        assert_eq!(paths.pids().unwrap(), vec![12, 13]);
    }
}
