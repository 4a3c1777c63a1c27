//! The OCI spec of a container, from its image's config and `rind run`'s
//! options, with Docker's defaults: capability set, mounts, masked and
//! read-only paths, device rules. Pure: no I/O, unit-tested.

use std::collections::HashMap;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder,
    Spec, SpecBuilder, UserBuilder,
};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{what} {value:?}: {reason}")]
    Invalid { what: &'static str, value: String, reason: &'static str },
    #[error("build spec")]
    Build(#[from] oci_spec::OciSpecError),
}

/// What `rind run`/`create` may set (kept with the container, as JSON).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RunOptions {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// "uid[:gid]" (numeric)
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub read_only: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub memory: Option<i64>,
    /// CPUs as a fraction: 1.5 → quota 150000 per 100000 period.
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub labels: HashMap<String, String>,
    /// (host, container, read-only)
    pub binds: Vec<(String, String, bool)>,
    pub tmpfs: Vec<String>,
    /// "none", "host", or a network's name (its namespace is rindd's:
    /// the caller sets the path).
    pub network: String,
    /// Published ports (`-p`), host ports chosen at create.
    pub ports: Vec<crate::network::PortMapping>,
    /// `--ip` on a user-defined network.
    pub ip: Option<String>,
    pub network_aliases: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--add-host`: (host, address), host-gateway resolved at create.
    pub add_hosts: Vec<(String, String)>,
    /// --security-opt seccomp=unconfined
    pub seccomp_unconfined: bool,
}

/// Docker's default capabilities.
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The CFS period `--cpus` scales, and the quotas the kernel accepts
/// (kernel/sched/core.c, tg_set_cfs_bandwidth): 1 ms to 2^44-1 µs.
const CPU_PERIOD_US: u64 = 100_000;
const MIN_CPU_QUOTA_US: f64 = 1_000.0;
const MAX_CPU_QUOTA_US: f64 = ((1u64 << 44) - 1) as f64;

fn cap(name: &str) -> Result<Capability, SpecError> {
    let up = name.to_ascii_uppercase();
    let bare = up.strip_prefix("CAP_").unwrap_or(&up);
    serde_json::from_value(serde_json::Value::String(format!("CAP_{bare}"))).map_err(|_| SpecError::Invalid {
        what: "capability",
        value: name.into(),
        reason: "unknown capability",
    })
}

/// The capability set: Docker's defaults, all with --privileged, then --cap-add and --cap-drop ("ALL" allowed).
pub fn capabilities(opts: &RunOptions) -> Result<Vec<Capability>, SpecError> {
    let all: Vec<Capability> = oci_spec_all_caps();
    let mut set: Vec<Capability> =
        if opts.privileged { all.clone() } else { DEFAULT_CAPS.iter().map(|c| cap(c)).collect::<Result<_, _>>()? };
    for a in &opts.cap_add {
        if a.eq_ignore_ascii_case("ALL") {
            set = all.clone();
        } else {
            let c = cap(a)?;
            if !set.contains(&c) {
                set.push(c);
            }
        }
    }
    for d in &opts.cap_drop {
        if d.eq_ignore_ascii_case("ALL") {
            set.clear();
        } else {
            let c = cap(d)?;
            set.retain(|x| *x != c);
        }
    }
    Ok(set)
}

fn oci_spec_all_caps() -> Vec<Capability> {
    [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ]
    .iter()
    .filter_map(|c| cap(c).ok())
    .collect()
}

/// "uid[:gid]" → (uid, gid). Names need the image's /etc/passwd: not here.
pub fn parse_user(u: &str) -> Result<(u32, u32), SpecError> {
    let bad = || SpecError::Invalid { what: "user", value: u.into(), reason: "use a numeric uid[:gid]" };
    let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
    Ok((uid.parse().map_err(|_| bad())?, gid.parse().map_err(|_| bad())?))
}

/// Image env, then run env; a later KEY replaces an earlier one.
pub fn merge_env(image: &[String], run: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for kv in image.iter().chain(run) {
        let key = kv.split('=').next().unwrap_or("");
        out.retain(|x| x.split('=').next() != Some(key));
        out.push(kv.clone());
    }
    if !out.iter().any(|kv| kv.starts_with("PATH=")) {
        out.insert(0, DEFAULT_PATH.into());
    }
    out
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// Points the spec's namespace of type `typ` at `path` (a pinned one to join).
pub fn set_namespace_path(spec: &mut Spec, typ: LinuxNamespaceType, path: &std::path::Path) -> Result<(), SpecError> {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut nss = linux.namespaces().clone().unwrap_or_default();
    nss.retain(|n| n.typ() != typ);
    nss.push(LinuxNamespaceBuilder::default().typ(typ).path(path).build()?);
    linux.set_namespaces(Some(nss));
    spec.set_linux(Some(linux));
    Ok(())
}

pub fn container_spec(image: &ImageConfiguration, opts: &RunOptions) -> Result<Spec, SpecError> {
    let cfg = image.config().clone().unwrap_or_default();
    let entrypoint = opts.entrypoint.clone().unwrap_or_else(|| cfg.entrypoint().clone().unwrap_or_default());
    let cmd = if opts.cmd.is_empty() && opts.entrypoint.is_none() { cfg.cmd().clone().unwrap_or_default() } else { opts.cmd.clone() };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(SpecError::Invalid {
            what: "command",
            value: String::new(),
            reason: "no command: the image has none and none was given",
        });
    }
    let (uid, gid) = match opts.user.as_deref().or(cfg.user().as_deref()).filter(|u| !u.is_empty()) {
        Some(u) => parse_user(u)?,
        None => (0, 0),
    };
    let cwd = opts.workdir.clone().or_else(|| cfg.working_dir().clone()).filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(SpecError::Invalid { what: "working directory", value: cwd, reason: "must be absolute" });
    }
    let caps = capabilities(opts)?;
    let capset = LinuxCapabilitiesBuilder::default()
        .bounding(caps.iter().copied().collect::<oci_spec::runtime::Capabilities>())
        .effective(caps.iter().copied().collect::<oci_spec::runtime::Capabilities>())
        .permitted(caps.iter().copied().collect::<oci_spec::runtime::Capabilities>())
        // The builder's defaults would grant these; Docker leaves them empty (CVE-2022-24769).
        .inheritable(oci_spec::runtime::Capabilities::new())
        .ambient(oci_spec::runtime::Capabilities::new())
        .build()?;
    let process = ProcessBuilder::default()
        .terminal(opts.tty)
        .args(args)
        .env(merge_env(cfg.env().as_deref().unwrap_or(&[]), &opts.env))
        .cwd(cwd)
        .user(UserBuilder::default().uid(uid).gid(gid).build()?)
        .capabilities(capset)
        .no_new_privileges(!opts.privileged)
        .build()?;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"])?,
        mount("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"])?,
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])?,
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"])?,
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"])?,
    ];
    for t in &opts.tmpfs {
        if !t.starts_with('/') {
            return Err(SpecError::Invalid { what: "tmpfs", value: t.clone(), reason: "the path must be absolute" });
        }
        mounts.push(mount(t, "tmpfs", "tmpfs", &["nosuid", "nodev", "noexec"])?);
    }
    for (host, ctr, ro) in &opts.binds {
        if !host.starts_with('/') || !ctr.starts_with('/') {
            return Err(SpecError::Invalid { what: "volume", value: format!("{host}:{ctr}"), reason: "both paths must be absolute" });
        }
        mounts.push(mount(ctr, "bind", host, if *ro { &["rbind", "ro"] } else { &["rbind", "rw"] })?);
    }
    let mut nss = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ];
    match opts.network.as_str() {
        "host" => {}
        _ => nss.push(LinuxNamespaceType::Network),
    }
    let namespaces = nss.into_iter().map(|t| LinuxNamespaceBuilder::default().typ(t).build()).collect::<Result<Vec<_>, _>>()?;
    let mut resources = LinuxResourcesBuilder::default();
    if !opts.privileged {
        resources = resources.devices(vec![LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build()?]);
    }
    if let Some(m) = opts.memory {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(m).build()?);
    }
    if let Some(c) = opts.cpus {
        let quota = c * CPU_PERIOD_US as f64;
        // Written as is, a quota out of these bounds (NaN and infinity too)
        // would be no limit at all (0) or a start the kernel refuses.
        if !(MIN_CPU_QUOTA_US..=MAX_CPU_QUOTA_US).contains(&quota) {
            return Err(SpecError::Invalid { what: "cpus", value: c.to_string(), reason: "must be from 0.01 to 175921860" });
        }
        resources = resources.cpu(LinuxCpuBuilder::default().quota(quota as i64).period(CPU_PERIOD_US).build()?);
    }
    if let Some(p) = opts.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(p).build()?);
    }
    // Privileged containers see everything: no masked or read-only paths.
    let (masked, readonly): (&[&str], &[&str]) = if opts.privileged { (&[], &[]) } else { (MASKED_PATHS, READONLY_PATHS) };
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .masked_paths(masked.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .readonly_paths(readonly.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    if !opts.privileged && !opts.seccomp_unconfined {
        linux = linux.seccomp(super::seccomp::default_profile(&caps));
    }
    let mut annotations = cfg.labels().clone().unwrap_or_default();
    annotations.extend(opts.labels.clone());
    let mut spec = SpecBuilder::default()
        .version("1.2.0")
        .root(RootBuilder::default().path("rootfs").readonly(opts.read_only).build()?)
        .process(process)
        .mounts(mounts)
        .linux(linux.build()?)
        .annotations(annotations)
        .build()?;
    if let Some(h) = &opts.hostname {
        spec.set_hostname(Some(h.clone()));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(json: &str) -> ImageConfiguration {
        serde_json::from_str(json).unwrap()
    }

    const BUSYBOX: &str = r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"],"Env":["PATH=/bin","A=1"],"WorkingDir":"/w","Labels":{"l":"1"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;

    #[test]
    fn spec_takes_image_defaults() {
        let s = container_spec(&image(BUSYBOX), &RunOptions::default()).unwrap();
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &vec!["sh".to_string()]);
        assert_eq!(p.cwd().to_str().unwrap(), "/w");
        assert_eq!(p.env().as_ref().unwrap(), &vec!["PATH=/bin".to_string(), "A=1".to_string()]);
        assert_eq!(s.annotations().as_ref().unwrap()["l"], "1");
        assert_eq!(p.no_new_privileges(), Some(true));
        let caps = p.capabilities().as_ref().unwrap().bounding().as_ref().unwrap();
        assert_eq!(caps.len(), DEFAULT_CAPS.len());
        let c = p.capabilities().as_ref().unwrap();
        assert!(c.inheritable().as_ref().unwrap().is_empty() && c.ambient().as_ref().unwrap().is_empty());
        let linux = s.linux().as_ref().unwrap();
        assert!(linux.namespaces().as_ref().unwrap().iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        assert_eq!(linux.masked_paths().as_ref().unwrap().len(), MASKED_PATHS.len());
    }

    #[test]
    fn run_options_override() {
        let opts = RunOptions {
            entrypoint: Some(vec!["/bin/echo".into()]),
            cmd: vec!["hi".into()],
            env: vec!["A=2".into(), "B=3".into()],
            user: Some("1000:1000".into()),
            cap_add: vec!["SYS_ADMIN".into()],
            cap_drop: vec!["CAP_KILL".into()],
            memory: Some(64 << 20),
            cpus: Some(1.5),
            pids_limit: Some(50),
            read_only: true,
            network: "host".into(),
            binds: vec![("/h".into(), "/c".into(), true)],
            ..Default::default()
        };
        let s = container_spec(&image(BUSYBOX), &opts).unwrap();
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &vec!["/bin/echo".to_string(), "hi".to_string()]);
        assert_eq!(p.env().as_ref().unwrap(), &vec!["PATH=/bin".to_string(), "A=2".to_string(), "B=3".to_string()]);
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        let caps = p.capabilities().as_ref().unwrap().bounding().as_ref().unwrap();
        assert!(caps.contains(&cap("SYS_ADMIN").unwrap()) && !caps.contains(&cap("KILL").unwrap()));
        let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(150_000));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 50);
        assert!(!s.linux().as_ref().unwrap().namespaces().as_ref().unwrap().iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
        assert!(s.mounts().as_ref().unwrap().iter().any(|m| m.destination().to_str() == Some("/c")));
    }

    #[test]
    fn bad_options_are_named() {
        let img = image(BUSYBOX);
        for (opts, want) in [
            (RunOptions { user: Some("bob".into()), ..Default::default() }, "user"),
            (RunOptions { cap_add: vec!["NOT_A_CAP".into()], ..Default::default() }, "capability"),
            (RunOptions { workdir: Some("rel".into()), ..Default::default() }, "working directory"),
            (RunOptions { cpus: Some(0.0), ..Default::default() }, "cpus"),
        ] {
            let e = container_spec(&img, &opts).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let none = image(r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#);
        assert!(container_spec(&none, &RunOptions::default()).is_err());
    }

    #[test]
    fn tmpfs_path_must_be_absolute() {
        // Found by fuzz/fuzz_targets/create_request.rs: the runtime got a
        // mount at a relative destination.
        let opts = RunOptions { tmpfs: vec!["SIGUSR&".into()], ..Default::default() };
        let e = container_spec(&image(BUSYBOX), &opts).unwrap_err().to_string();
        assert_eq!(e, r#"tmpfs "SIGUSR&": the path must be absolute"#);
        let opts = RunOptions { tmpfs: vec!["/run".into()], ..Default::default() };
        assert!(container_spec(&image(BUSYBOX), &opts).is_ok());
    }

    #[test]
    fn cpus_out_of_the_kernels_bounds_are_refused() {
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0, 0.009, 1e9] {
            let opts = RunOptions { cpus: Some(bad), ..Default::default() };
            let e = container_spec(&image(BUSYBOX), &opts).unwrap_err().to_string();
            assert!(e.starts_with("cpus") && e.ends_with("must be from 0.01 to 175921860"), "{bad}: {e}");
        }
        let quota = |c: f64| {
            let s = container_spec(&image(BUSYBOX), &RunOptions { cpus: Some(c), ..Default::default() }).unwrap();
            s.linux().as_ref().unwrap().resources().as_ref().unwrap().cpu().as_ref().unwrap().quota()
        };
        assert_eq!(quota(0.01), Some(1_000));
        assert_eq!(quota(175921860.0), Some(17_592_186_000_000));
    }

    #[test]
    fn privileged_and_cap_all() {
        let s = container_spec(&image(BUSYBOX), &RunOptions { privileged: true, ..Default::default() }).unwrap();
        let p = s.process().as_ref().unwrap();
        assert!(p.capabilities().as_ref().unwrap().bounding().as_ref().unwrap().len() > DEFAULT_CAPS.len());
        assert!(s.linux().as_ref().unwrap().masked_paths().as_ref().is_none_or(|m| m.is_empty()));
        let s = container_spec(&image(BUSYBOX), &RunOptions { cap_drop: vec!["ALL".into()], ..Default::default() }).unwrap();
        assert!(s.process().as_ref().unwrap().capabilities().as_ref().unwrap().bounding().as_ref().unwrap().is_empty());
    }
}
