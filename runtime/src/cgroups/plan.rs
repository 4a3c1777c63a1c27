//! Pure translation of OCI `linux.resources` into cgroup file writes, for v1
//! and v2. No I/O here: the executor in `mod.rs` applies the plan.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::CgroupError;

/// One write of `value` to `file`; on v1 in the hierarchy holding `controller`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: String,
    pub value: String,
    /// What to do when the kernel has no such file.
    pub missing: Missing,
    /// On EINVAL, make the next write first and then retry this one: the
    /// kernel checks some pairs against each other (cfs period and quota,
    /// memory limit and memory+swap), and which order works depends on the
    /// values already there.
    pub retry_after_next: bool,
}

/// What a missing cgroup file means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Fail,
    /// Nothing to do: the value is the kernel's default anyway.
    Skip,
    /// The kernel dropped the feature: apply the rest and warn.
    Warn,
    /// Write `value` to `file` instead (an older or newer interface).
    Instead {
        file: String,
        value: String,
    },
}

fn w(controller: &'static str, file: impl Into<String>, value: impl ToString) -> Write {
    Write { controller, file: file.into(), value: value.to_string(), missing: Missing::Fail, retry_after_next: false }
}

impl Write {
    fn missing(mut self, m: Missing) -> Write {
        self.missing = m;
        self
    }
    fn retry_after_next(mut self) -> Write {
        self.retry_after_next = true;
        self
    }
}

/// Device rules always allowed, after the configured ones (as runc does): the
/// default devices every container gets, and mknod of anything.
pub fn default_device_rules() -> Vec<DeviceRule> {
    let c = |major, minor, access: &str| DeviceRule { allow: true, kind: 'c', major, minor, access: access.into() };
    vec![
        c(None, None, "m"),
        DeviceRule { allow: true, kind: 'b', major: None, minor: None, access: "m".into() },
        c(Some(1), Some(3), "rwm"),
        c(Some(1), Some(5), "rwm"),
        c(Some(1), Some(7), "rwm"),
        c(Some(1), Some(8), "rwm"),
        c(Some(1), Some(9), "rwm"),
        c(Some(5), Some(0), "rwm"),
        c(Some(5), Some(1), "rwm"),
        c(Some(5), Some(2), "rwm"),
        c(Some(136), None, "rwm"),
    ]
}

/// A device cgroup rule in the form both v1 files and the v2 eBPF filter use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// 'a' (all), 'c' or 'b'
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// subset of "rwm"
    pub access: String,
}

impl DeviceRule {
    pub fn from_spec(d: &LinuxDeviceCgroup) -> Result<Self, CgroupError> {
        let kind = match d.typ() {
            None | Some(LinuxDeviceType::A) => 'a',
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
            Some(LinuxDeviceType::B) => 'b',
            Some(other) => return Err(CgroupError::Invalid(format!("device rule type {:?} cannot be used in a cgroup rule", other))),
        };
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
            return Err(CgroupError::Invalid(format!("device rule access {access:?} is not a subset of \"rwm\"")));
        }
        Ok(DeviceRule { allow: d.allow(), kind, major: d.major(), minor: d.minor(), access })
    }

    /// The line v1's devices.allow / devices.deny take: "c 1:3 rwm".
    pub fn v1_line(&self) -> String {
        let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "*".into());
        if self.kind == 'a' && self.major.is_none() && self.minor.is_none() {
            return "a".into();
        }
        format!("{} {}:{} {}", self.kind, n(self.major), n(self.minor), self.access)
    }
}

/// The device rules to enforce, in order: the configured ones as given,
/// then the default devices (runc's and crun's order: a container can always
/// use /dev/null and friends, whatever its rules say).
pub fn device_rules(res: Option<&LinuxResources>) -> Result<Vec<DeviceRule>, CgroupError> {
    let mut rules = Vec::new();
    if let Some(devs) = res.and_then(|r| r.devices().as_ref()) {
        for d in devs {
            rules.push(DeviceRule::from_spec(d)?);
        }
    }
    rules.extend(default_device_rules());
    Ok(rules)
}

/// A hugepage size as the kernel names it in hugetlb's files ("64KB", "2MB",
/// "1GB"). It becomes part of a file name: "2MB/../../x" would write outside
/// the cgroup.
fn hugepage_size(size: &str) -> Result<&str, CgroupError> {
    let number = size.strip_suffix("KB").or_else(|| size.strip_suffix("MB")).or_else(|| size.strip_suffix("GB"));
    match number {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => Ok(size),
        _ => Err(CgroupError::Invalid(format!("hugepage size {size:?} is not one the kernel names, such as 2MB or 1GB"))),
    }
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), the conversion runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262144) - 2) * 9999 / 262142
}

/// blkio.weight (10..1000) to io.weight (1..10000).
pub fn blkio_weight_to_io(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).clamp(10, 1000) - 10) * 9999 / 990
}

/// A plan: the writes in order, and what was asked for but is not applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub writes: Vec<Write>,
    pub ignored: Vec<String>,
}

// Zero and negative values: Docker, podman and containerd's CRI send zeros
// for what the user did not set (Docker's blockIO weight 0, cpu shares 0,
// memory swap 0…). runc's libcontainer (cgroups/fs and fs2) skips them, and
// so do we, field by field as it does: 0 means "not set" for every numeric
// limit except cpu idle and burst, hugepage limits and throttle rates, which
// are written as given; -1 means "unlimited" where the kernel has a word for
// it. Swappiness is u64 in the spec, so its -1 arrives as u64::MAX.

/// memory.swappiness "not set": -1 as the spec's u64.
const SWAPPINESS_UNSET: u64 = u64::MAX;

pub fn plan_v1(res: &LinuxResources) -> Result<Plan, CgroupError> {
    let mut p = Plan::default();
    let out = &mut p.writes;
    if let Some(m) = res.memory() {
        let limit = m.limit().unwrap_or(0);
        let swap = m.swap().unwrap_or(0);
        if let Some(r) = m.reservation().filter(|r| *r != 0) {
            out.push(w("memory", "memory.soft_limit_in_bytes", r));
        }
        // memory+swap must stay >= memory: the order that works depends on
        // the values already set, so the first write retries after the second.
        let limit_w = (limit != 0).then(|| w("memory", "memory.limit_in_bytes", limit));
        let swap_w = if swap != 0 {
            Some(w("memory", "memory.memsw.limit_in_bytes", swap))
        } else if limit == -1 {
            // An unlimited memory lifts the memory+swap limit too, where swap is accounted.
            Some(w("memory", "memory.memsw.limit_in_bytes", -1).missing(Missing::Skip))
        } else {
            None
        };
        match (limit_w, swap_w) {
            (Some(l), Some(s)) if swap == -1 => out.extend([s.retry_after_next(), l]),
            (Some(l), Some(s)) => out.extend([l.retry_after_next(), s]),
            (l, s) => out.extend(l.into_iter().chain(s)),
        }
        if let Some(k) = m.kernel().filter(|k| *k != 0) {
            out.push(w("memory", "memory.kmem.limit_in_bytes", k).missing(Missing::Warn));
        }
        if let Some(k) = m.kernel_tcp().filter(|k| *k != 0) {
            out.push(w("memory", "memory.kmem.tcp.limit_in_bytes", k).missing(Missing::Warn));
        }
        if let Some(s) = m.swappiness().filter(|s| *s != SWAPPINESS_UNSET) {
            if s > 100 {
                return Err(CgroupError::Invalid(format!("memory swappiness {s} is not in 0-100")));
            }
            out.push(w("memory", "memory.swappiness", s));
        }
        if m.disable_oom_killer() == Some(true) {
            out.push(w("memory", "memory.oom_control", 1));
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            out.push(w("cpu", "cpu.shares", s));
        }
        let quota = c.quota().unwrap_or(0);
        if let Some(period) = c.period().filter(|p| *p != 0) {
            let pw = w("cpu", "cpu.cfs_period_us", period);
            out.push(if quota != 0 { pw.retry_after_next() } else { pw });
        }
        if quota != 0 {
            out.push(w("cpu", "cpu.cfs_quota_us", quota));
        }
        if let Some(b) = c.burst() {
            out.push(w("cpu", "cpu.cfs_burst_us", b).missing(Missing::Skip));
        }
        if let Some(period) = c.realtime_period().filter(|p| *p != 0) {
            out.push(w("cpu", "cpu.rt_period_us", period));
        }
        if let Some(runtime) = c.realtime_runtime().filter(|r| *r != 0) {
            out.push(w("cpu", "cpu.rt_runtime_us", runtime));
        }
        if let Some(idle) = c.idle() {
            out.push(w("cpu", "cpu.idle", idle));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            out.push(w("cpuset", "cpuset.cpus", cpus));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            out.push(w("cpuset", "cpuset.mems", mems));
        }
    }
    if let Some(v) = res.pids().and_then(|p| pids_max(p.limit())) {
        out.push(w("pids", "pids.max", v));
    }
    if let Some(b) = res.block_io() {
        // Kernels with BFQ and no CFQ (5.0 on) name the weight files blkio.bfq.*.
        if let Some(wt) = b.weight().filter(|w| *w != 0) {
            out.push(w("blkio", "blkio.weight", wt).missing(Missing::Instead { file: "blkio.bfq.weight".into(), value: wt.to_string() }));
        }
        if let Some(wt) = b.leaf_weight().filter(|w| *w != 0) {
            out.push(w("blkio", "blkio.leaf_weight", wt).missing(Missing::Warn));
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(wt) = d.weight().filter(|w| *w != 0) {
                let line = format!("{}:{} {}", d.major(), d.minor(), wt);
                let bfq = Missing::Instead { file: "blkio.bfq.weight_device".into(), value: line.clone() };
                out.push(w("blkio", "blkio.weight_device", line).missing(bfq));
            }
            if let Some(wt) = d.leaf_weight().filter(|w| *w != 0) {
                out.push(w("blkio", "blkio.leaf_weight_device", format!("{}:{} {}", d.major(), d.minor(), wt)).missing(Missing::Warn));
            }
        }
        let throttles = [
            ("blkio.throttle.read_bps_device", b.throttle_read_bps_device()),
            ("blkio.throttle.write_bps_device", b.throttle_write_bps_device()),
            ("blkio.throttle.read_iops_device", b.throttle_read_iops_device()),
            ("blkio.throttle.write_iops_device", b.throttle_write_iops_device()),
        ];
        for (file, devs) in throttles {
            for d in devs.iter().flatten() {
                out.push(w("blkio", file, format!("{}:{} {}", d.major(), d.minor(), d.rate())));
            }
        }
    }
    for h in res.hugepage_limits().iter().flatten() {
        let size = hugepage_size(h.page_size())?;
        out.push(w("hugetlb", format!("hugetlb.{size}.limit_in_bytes"), h.limit()));
        out.push(w("hugetlb", format!("hugetlb.{size}.rsvd.limit_in_bytes"), h.limit()).missing(Missing::Skip));
    }
    if let Some(n) = res.network() {
        if let Some(id) = n.class_id().filter(|id| *id != 0) {
            out.push(w("net_cls", "net_cls.classid", id));
        }
        for prio in n.priorities().iter().flatten() {
            out.push(w("net_prio", "net_prio.ifpriomap", format!("{} {}", prio.name(), prio.priority())));
        }
    }
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(CgroupError::Invalid("linux.resources.unified needs cgroup v2, but this host runs cgroup v1".into()));
    }
    // Devices: deny everything, then apply the rules in order.
    out.push(w("devices", "devices.deny", "a"));
    for rule in device_rules(Some(res))? {
        let file = if rule.allow { "devices.allow" } else { "devices.deny" };
        out.push(w("devices", file, rule.v1_line()));
    }
    Ok(p)
}

/// pids.max for the spec's limit: 0 is "not set", any negative unlimited.
fn pids_max(limit: i64) -> Option<String> {
    match limit {
        0 => None,
        l if l < 0 => Some("max".into()),
        l => Some(l.to_string()),
    }
}

/// memory.max, memory.low: 0 is "not set", -1 unlimited.
fn memory_v2(v: Option<i64>) -> Result<Option<String>, CgroupError> {
    match v.unwrap_or(0) {
        0 => Ok(None),
        -1 => Ok(Some("max".into())),
        v if v < -1 => Err(CgroupError::Invalid(format!("invalid memory value {v}"))),
        v => Ok(Some(v.to_string())),
    }
}

/// memory.swap.max from the spec's memory+swap (v1's memsw), as runc converts it.
pub fn swap_v2(limit: i64, swap: i64) -> Result<Option<String>, CgroupError> {
    Ok(match (limit, swap) {
        (-1, 0) | (_, -1) => Some("max".into()),
        (_, 0) => None,
        (0, _) => return Err(CgroupError::Invalid("a memory swap limit needs a memory limit".into())),
        (l, _) if l < -1 => return Err(CgroupError::Invalid(format!("invalid memory value {l}"))),
        (-1, s) => Some(s.to_string()),
        (l, s) if s < l => return Err(CgroupError::Invalid(format!("memory+swap limit {s} is below the memory limit {l}"))),
        (l, s) => Some((s - l).to_string()),
    })
}

pub fn plan_v2(res: &LinuxResources) -> Result<Plan, CgroupError> {
    let mut p = Plan::default();
    let ignored = &mut p.ignored;
    let out = &mut p.writes;
    if let Some(m) = res.memory() {
        if let Some(v) = swap_v2(m.limit().unwrap_or(0), m.swap().unwrap_or(0))? {
            // Without swap accounting the file is missing: fine for "no swap limit".
            let missing = if v == "max" || v == "0" { Missing::Skip } else { Missing::Fail };
            out.push(w("memory", "memory.swap.max", v).missing(missing));
        }
        if let Some(v) = memory_v2(m.limit())? {
            out.push(w("memory", "memory.max", v));
        }
        if let Some(v) = memory_v2(m.reservation())? {
            out.push(w("memory", "memory.low", v));
        }
        // cgroup v2 has none of these (runc ignores them too).
        if m.kernel().is_some_and(|k| k != 0) || m.kernel_tcp().is_some_and(|k| k != 0) {
            ignored.push("kernel memory limits (cgroup v2 accounts kernel memory in memory.max)".into());
        }
        if m.swappiness().is_some_and(|s| s != SWAPPINESS_UNSET) {
            ignored.push("memory swappiness (not a cgroup v2 setting)".into());
        }
        if m.disable_oom_killer() == Some(true) {
            ignored.push("disableOOMKiller (cgroup v2 cannot disable the OOM killer)".into());
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(idle) = c.idle() {
            out.push(w("cpu", "cpu.idle", idle));
        }
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            out.push(w("cpu", "cpu.weight", shares_to_weight(s)));
        }
        let (quota, period) = (c.quota().unwrap_or(0), c.period().unwrap_or(0));
        let cpu_max = (quota != 0 || period != 0).then(|| {
            let q = if quota > 0 { quota.to_string() } else { "max".into() };
            w("cpu", "cpu.max", format!("{q} {}", if period != 0 { period } else { 100_000 }))
        });
        if let Some(b) = c.burst() {
            // The burst must fit the quota: it may have to follow a new cpu.max.
            let bw = w("cpu", "cpu.max.burst", b);
            out.push(if cpu_max.is_some() && quota != 0 { bw.retry_after_next() } else { bw });
        }
        out.extend(cpu_max);
        if c.realtime_period().is_some_and(|v| v != 0) || c.realtime_runtime().is_some_and(|v| v != 0) {
            ignored.push("realtime cpu runtime and period (not a cgroup v2 setting)".into());
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            out.push(w("cpuset", "cpuset.cpus", cpus));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            out.push(w("cpuset", "cpuset.mems", mems));
        }
    }
    if let Some(v) = res.pids().and_then(|p| pids_max(p.limit())) {
        out.push(w("pids", "pids.max", v));
    }
    if let Some(b) = res.block_io() {
        // BFQ takes blkio's own scale; io.weight (the io cost model) its own.
        if let Some(wt) = b.weight().filter(|w| *w != 0) {
            let io = Missing::Instead { file: "io.weight".into(), value: format!("default {}", blkio_weight_to_io(wt)) };
            out.push(w("io", "io.bfq.weight", wt).missing(io));
        }
        if b.leaf_weight().is_some_and(|w| w != 0) {
            ignored.push("blockIO leafWeight (not a cgroup v2 setting)".into());
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(wt) = d.weight().filter(|w| *w != 0) {
                out.push(w("io", "io.weight", format!("{}:{} {}", d.major(), d.minor(), blkio_weight_to_io(wt))));
            }
        }
        let throttles = [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ];
        for (key, devs) in throttles {
            for d in devs.iter().flatten() {
                out.push(w("io", "io.max", format!("{}:{} {}={}", d.major(), d.minor(), key, d.rate())));
            }
        }
    }
    for h in res.hugepage_limits().iter().flatten() {
        let size = hugepage_size(h.page_size())?;
        out.push(w("hugetlb", format!("hugetlb.{size}.max"), h.limit()));
        out.push(w("hugetlb", format!("hugetlb.{size}.rsvd.max"), h.limit()).missing(Missing::Skip));
    }
    if res
        .network()
        .as_ref()
        .is_some_and(|n| n.class_id().is_some_and(|c| c != 0) || n.priorities().as_ref().is_some_and(|p| !p.is_empty()))
    {
        ignored.push("network classID and priorities (net_cls and net_prio are cgroup v1 controllers)".into());
    }
    // unified last: it overrides what the fields above set.
    if let Some(u) = res.unified() {
        let mut keys: Vec<_> = u.keys().collect();
        keys.sort();
        for k in keys {
            if k.contains('/') || k.starts_with('.') {
                return Err(CgroupError::Invalid(format!("unified key {k:?} is not a cgroup file name")));
            }
            out.push(w("", k.clone(), &u[k]));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn files(p: &Plan) -> Vec<&str> {
        p.writes.iter().filter(|w| w.controller != "devices").map(|w| w.file.as_str()).collect()
    }

    fn value<'a>(p: &'a Plan, file: &str) -> Option<&'a str> {
        p.writes.iter().find(|w| w.file == file).map(|w| w.value.as_str())
    }

    #[test]
    fn plan_v1_memory_cpu_pids() {
        let r = res(
            r#"{"memory":{"limit":1048576,"reservation":524288},"cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0"},"pids":{"limit":10}}"#,
        );
        let p = plan_v1(&r).unwrap();
        assert_eq!(value(&p, "memory.limit_in_bytes"), Some("1048576"));
        assert_eq!(value(&p, "memory.soft_limit_in_bytes"), Some("524288"));
        assert_eq!(value(&p, "cpu.shares"), Some("512"));
        assert_eq!(value(&p, "cpuset.cpus"), Some("0"));
        assert_eq!(value(&p, "pids.max"), Some("10"));
        let period = p.writes.iter().position(|x| x.file == "cpu.cfs_period_us").unwrap();
        let quota = p.writes.iter().position(|x| x.file == "cpu.cfs_quota_us").unwrap();
        assert_eq!(period + 1, quota, "period, then quota");
        assert!(p.writes[period].retry_after_next, "a period the old quota refuses is retried after the quota");
    }

    /// What Docker 20.10 sends for `docker run busybox` with no flags.
    const DOCKER_DEFAULTS: &str = r#"{"memory":{"limit":0,"reservation":0,"swap":0,"kernel":0,"kernelTCP":0,"disableOOMKiller":false},
        "cpu":{"shares":0,"quota":0,"period":0,"realtimeRuntime":0,"realtimePeriod":0,"cpus":"","mems":""},
        "pids":{"limit":0},"blockIO":{"weight":0,"leafWeight":0},"hugepageLimits":[],"network":{"classID":0}}"#;

    #[test]
    fn zero_values_are_unset_on_v1_as_runc() {
        let p = plan_v1(&res(DOCKER_DEFAULTS)).unwrap();
        assert_eq!(files(&p), Vec::<&str>::new(), "nothing but the device rules");
        let p = plan_v1(&res(r#"{"pids":{"limit":-1},"cpu":{"quota":-1},"memory":{"swappiness":18446744073709551615}}"#)).unwrap();
        assert_eq!(value(&p, "pids.max"), Some("max"));
        assert_eq!(value(&p, "cpu.cfs_quota_us"), Some("-1"), "-1 is v1's own word for unlimited");
        assert_eq!(value(&p, "memory.swappiness"), None, "swappiness -1 is unset");
    }

    #[test]
    fn zero_values_are_unset_on_v2_as_runc() {
        let p = plan_v2(&res(DOCKER_DEFAULTS)).unwrap();
        assert_eq!(files(&p), Vec::<&str>::new());
        assert_eq!(p.ignored, Vec::<String>::new(), "zeros are not settings to warn of");
    }

    #[test]
    fn blkio_weight_falls_back_to_bfq() {
        let p = plan_v1(&res(r#"{"blockIO":{"weight":300,"leafWeight":0,"weightDevice":[{"major":8,"minor":0,"weight":0},{"major":8,"minor":16,"weight":200}]}}"#)).unwrap();
        let wt = p.writes.iter().find(|w| w.file == "blkio.weight").unwrap();
        assert_eq!(wt.missing, Missing::Instead { file: "blkio.bfq.weight".into(), value: "300".into() });
        let dev: Vec<_> = p.writes.iter().filter(|w| w.file == "blkio.weight_device").map(|w| w.value.as_str()).collect();
        assert_eq!(dev, ["8:16 200"], "a device weight of 0 is unset");
        assert!(!files(&p).contains(&"blkio.leaf_weight"));
        let p = plan_v2(&res(r#"{"blockIO":{"weight":500}}"#)).unwrap();
        let wt = p.writes.iter().find(|w| w.file == "io.bfq.weight").unwrap();
        assert_eq!(wt.value, "500");
        assert_eq!(wt.missing, Missing::Instead { file: "io.weight".into(), value: "default 4950".into() });
    }

    #[test]
    fn memory_and_swap_order_on_v1() {
        let p = plan_v1(&res(r#"{"memory":{"limit":1000000,"swap":2000000}}"#)).unwrap();
        assert_eq!(files(&p), ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]);
        assert!(p.writes[0].retry_after_next);
        let p = plan_v1(&res(r#"{"memory":{"limit":1000000,"swap":-1}}"#)).unwrap();
        assert_eq!(files(&p), ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"], "unlimited swap first");
        let p = plan_v1(&res(r#"{"memory":{"limit":-1}}"#)).unwrap();
        assert_eq!(files(&p), ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]);
        assert_eq!(p.writes[1].missing, Missing::Skip, "swap accounting may be off");
    }

    #[test]
    fn kernel_memory_is_tried_on_v1_and_ignored_on_v2() {
        let r = res(r#"{"memory":{"kernel":8000000,"kernelTCP":4000000}}"#);
        let p = plan_v1(&r).unwrap();
        for f in ["memory.kmem.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes"] {
            assert_eq!(p.writes.iter().find(|w| w.file == f).unwrap().missing, Missing::Warn, "{f}");
        }
        let p = plan_v2(&r).unwrap();
        assert_eq!(files(&p), Vec::<&str>::new());
        assert_eq!(p.ignored.len(), 1);
    }

    #[test]
    fn swap_v2_converts_as_runc() {
        assert_eq!(swap_v2(-1, 0).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_v2(1000, -1).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_v2(1000, 0).unwrap(), None);
        assert_eq!(swap_v2(1000, 3000).unwrap().as_deref(), Some("2000"));
        assert_eq!(swap_v2(1000, 1000).unwrap().as_deref(), Some("0"));
        assert_eq!(swap_v2(-1, 3000).unwrap().as_deref(), Some("3000"));
        assert!(swap_v2(0, 3000).is_err(), "swap without a memory limit");
        assert!(swap_v2(2000, 1000).is_err(), "swap below the limit");
        assert!(swap_v2(-5, 1000).is_err());
    }

    #[test]
    fn cpu_max_on_v2() {
        let max = |j: &str| value(&plan_v2(&res(j)).unwrap(), "cpu.max").map(String::from);
        assert_eq!(max(r#"{"cpu":{"quota":50000}}"#).as_deref(), Some("50000 100000"));
        assert_eq!(max(r#"{"cpu":{"quota":-1}}"#).as_deref(), Some("max 100000"));
        assert_eq!(max(r#"{"cpu":{"period":20000}}"#).as_deref(), Some("max 20000"), "a period alone");
        assert_eq!(max(r#"{"cpu":{"quota":0,"period":0}}"#), None);
        let p = plan_v2(&res(r#"{"cpu":{"quota":50000,"burst":1000}}"#)).unwrap();
        assert_eq!(files(&p), ["cpu.max.burst", "cpu.max"]);
        assert!(p.writes[0].retry_after_next);
    }

    #[test]
    fn v2_ignores_what_it_has_no_file_for() {
        let p = plan_v2(&res(
            r#"{"memory":{"swappiness":10,"disableOOMKiller":true},"cpu":{"realtimeRuntime":1000},"blockIO":{"leafWeight":20},"network":{"classID":3}}"#,
        ))
        .unwrap();
        assert_eq!(files(&p), Vec::<&str>::new());
        assert_eq!(p.ignored.len(), 5, "{:?}", p.ignored);
    }

    #[test]
    fn plan_v1_devices_deny_all_then_rules_as_given_then_defaults() {
        let r = res(
            r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":200,"access":"rw"},{"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]}"#,
        );
        let p: Vec<_> = plan_v1(&r).unwrap().writes.into_iter().filter(|x| x.controller == "devices").collect();
        assert_eq!(p[0], w("devices", "devices.deny", "a"));
        assert_eq!(p[1], w("devices", "devices.deny", "a"));
        assert_eq!(p[2], w("devices", "devices.allow", "c 10:200 rw"));
        assert_eq!(p[3], w("devices", "devices.deny", "c 1:3 w"));
        assert_eq!(p[4], w("devices", "devices.allow", "c *:* m"));
        assert_eq!(p.len(), 4 + default_device_rules().len());
    }

    #[test]
    fn hugepage_sizes_that_are_not_file_names_are_refused() {
        // Found by fuzz/fuzz_targets/runtime_config.rs: the size is part of
        // the file written, "hugetlb.2MB/../../../x.limit_in_bytes".
        for bad in ["2MB/../../../x", "../1GB", "", "MB", "2mb", "2 MB", "2MiB"] {
            let r = res(&format!(r#"{{"hugepageLimits":[{{"pageSize":"{bad}","limit":1}}]}}"#));
            for plan in [plan_v1(&r), plan_v2(&r)] {
                let e = plan.unwrap_err().to_string();
                assert!(e.contains("is not one the kernel names"), "{bad}: {e}");
            }
        }
        let r = res(r#"{"hugepageLimits":[{"pageSize":"64KB","limit":1},{"pageSize":"1GB","limit":2}]}"#);
        let files: Vec<String> = plan_v2(&r).unwrap().writes.into_iter().map(|w| w.file).collect();
        assert_eq!(files, ["hugetlb.64KB.max", "hugetlb.64KB.rsvd.max", "hugetlb.1GB.max", "hugetlb.1GB.rsvd.max"]);
    }

    #[test]
    fn plan_v1_rejects_unified() {
        let r = res(r#"{"unified":{"memory.high":"1000"}}"#);
        assert!(plan_v1(&r).is_err());
    }

    #[test]
    fn plan_v2_converts_units() {
        let r = res(
            r#"{"memory":{"limit":2000000,"swap":3000000},"cpu":{"shares":1024,"quota":-1},"pids":{"limit":-1},"blockIO":{"weight":500}}"#,
        );
        let p = plan_v2(&r).unwrap();
        assert_eq!(value(&p, "memory.max"), Some("2000000"));
        assert_eq!(value(&p, "memory.swap.max"), Some("1000000"));
        assert_eq!(value(&p, "cpu.weight"), Some("39"));
        assert_eq!(value(&p, "cpu.max"), Some("max 100000"));
        assert_eq!(value(&p, "pids.max"), Some("max"));
        let swap = p.writes.iter().position(|x| x.file == "memory.swap.max").unwrap();
        let max = p.writes.iter().position(|x| x.file == "memory.max").unwrap();
        assert!(swap < max, "swap.max before memory.max, as runc");
    }

    #[test]
    fn plan_v2_rejects_swap_below_limit() {
        let r = res(r#"{"memory":{"limit":2000000,"swap":1000}}"#);
        assert!(plan_v2(&r).is_err());
    }

    #[test]
    fn device_rule_rejects_bad_access() {
        let r = res(r#"{"devices":[{"allow":true,"type":"c","access":"rwx"}]}"#);
        assert!(device_rules(Some(&r)).is_err());
    }

    #[test]
    fn shares_to_weight_matches_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(1024), 39);
    }
}
