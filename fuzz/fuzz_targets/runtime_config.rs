//! rind-runtime's handling of a bundle's config.json, its pure part: the
//! spec as `Spec::load` reads it, `create`'s validation, then every plan the
//! runtime makes from it before any syscall: namespaces, seccomp filter
//! (built by libseccomp in memory, never loaded), capability sets, cgroup
//! paths and v1/v2 file writes, device rules and their eBPF program, mount
//! options, mount destinations and device paths resolved in a rootfs,
//! scheduler, personality, I/O priority, id maps. Invariants: nothing
//! panics; a cgroup path stays in its hierarchy and every cgroup write goes
//! to a file in it; a mount destination or device path stays in the rootfs.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::Spec;
use rind_fuzz::cgroups::{self, devices_bpf, plan};
use rind_fuzz::commands::create;
use rind_fuzz::process::{self, capabilities, namespaces, sched, seccomp};
use rind_fuzz::rootfs::{options, securejoin};

const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
32 25 0:28 /docker /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
33 25 0:29 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,xattr,name=systemd
";
const PROC_CGROUP: &str =
    "5:memory:/user.slice\n4:cpu,cpuacct:/user.slice\n3:pids:/docker/abc\n1:name=systemd:/user.slice/x\n0::/user.slice\n";

/// A rootfs with hostile symlinks, made once: the fuzz target only reads it.
fn rootfs() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::Builder::new().prefix("rind-fuzz-rootfs-").tempdir().expect("make the rootfs");
        let r = d.path();
        std::fs::create_dir_all(r.join("etc/sub")).expect("mkdir");
        for (link, target) in [("abs", "/"), ("up", "../../.."), ("loop", "loop"), ("etc/sub/back", "../../up"), ("proc", "/etc")] {
            std::os::unix::fs::symlink(target, r.join(link)).expect("symlink");
        }
        d
    })
    .path()
}

fn plans(spec: &Spec) {
    let Some(linux) = spec.linux() else { return };
    let _ = namespaces::plan(linux.namespaces().as_deref().unwrap_or(&[]));
    if let Some(s) = linux.seccomp() {
        let _ = seccomp::uses_notify(s);
        if seccomp::validate(s).is_ok() {
            let _ = seccomp::build(s);
        }
    }
    if let Some(res) = linux.resources() {
        for p in [plan::plan_v1(res), plan::plan_v2(res)].into_iter().flatten() {
            for w in &p.writes {
                let instead = match &w.missing {
                    plan::Missing::Instead { file, .. } => Some(file),
                    _ => None,
                };
                for f in std::iter::once(&w.file).chain(instead) {
                    assert!(
                        !f.is_empty() && !f.contains('/') && f != "." && f != "..",
                        "cgroup write to {f:?} leaves the cgroup's directory"
                    );
                }
            }
        }
    }
    if let Ok(rules) = plan::device_rules(linux.resources().as_ref()) {
        let prog = devices_bpf::compile(&rules);
        assert!(!prog.is_empty());
        for r in &rules {
            let _ = r.v1_line();
        }
    }
    if let Some(p) = linux.cgroups_path() {
        let root = Path::new("/sys/fs/cgroup");
        for v2 in [false, true] {
            if let Ok(paths) = cgroups::resolve(root, v2, MOUNTINFO, PROC_CGROUP, p) {
                for dir in paths.dirs.values() {
                    assert!(dir.starts_with(root), "cgroupsPath {p:?} escapes the hierarchy: {dir:?}");
                    assert!(!dir.components().any(|c| c == std::path::Component::ParentDir), "{dir:?}");
                }
            }
        }
    }
    for m in linux.uid_mappings().iter().chain(linux.gid_mappings()) {
        let _ = process::id_map_text(m);
    }
    if let Some(prop) = linux.rootfs_propagation() {
        let _ = options::propagation(prop);
    }
    if let Some(p) = linux.personality() {
        let _ = sched::personality_value(p);
    }
}

fn mounts(spec: &Spec) {
    let root = rootfs();
    let devices = spec.linux().as_ref().and_then(|l| l.devices().as_ref());
    let paths = spec.mounts().iter().flatten().map(|m| m.destination()).chain(devices.into_iter().flatten().map(|d| d.path()));
    for m in spec.mounts().iter().flatten() {
        let _ = options::parse(m.options().as_deref().unwrap_or(&[]));
    }
    for path in paths {
        if let Ok(p) = securejoin::secure_join(root, path) {
            assert!(p.starts_with(root), "{path:?} resolves outside the rootfs: {p:?}");
        }
    }
}

fn process_plans(spec: &Spec) {
    let Some(p) = spec.process() else { return };
    let all: caps::CapsHashSet = caps::all();
    let plan = capabilities::plan(p.capabilities().as_ref(), &all);
    assert!(plan.ambient.is_subset(&plan.permitted) && plan.ambient.is_subset(&plan.inheritable));
    if let Some(s) = p.scheduler() {
        let _ = sched::sched_attr(s);
    }
    if let Some(io) = p.io_priority() {
        let _ = sched::ioprio_value(io.class(), io.priority());
    }
}

fuzz_target!(|data: &[u8]| {
    // Spec::load is serde_json on the file's bytes.
    let Ok(spec) = serde_json::from_slice::<Spec>(data) else { return };
    let valid = create::validate(&spec).is_ok();
    plans(&spec);
    mounts(&spec);
    process_plans(&spec);
    if valid {
        let _: PathBuf = spec.root().as_ref().expect("validated").path().clone();
    }
});
