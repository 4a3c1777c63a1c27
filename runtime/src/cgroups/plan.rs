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
}

fn w(controller: &'static str, file: impl Into<String>, value: impl ToString) -> Write {
    Write { controller, file: file.into(), value: value.to_string() }
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

/// The device rules to enforce, in order. The default devices are allowed
/// right after the last configured deny-all rule (or first, if there is none),
/// so the usual `deny a` opener cannot lock them out while later configured
/// rules can still deny them.
pub fn device_rules(res: Option<&LinuxResources>) -> Result<Vec<DeviceRule>, CgroupError> {
    let mut rules = Vec::new();
    if let Some(devs) = res.and_then(|r| r.devices().as_ref()) {
        for d in devs {
            rules.push(DeviceRule::from_spec(d)?);
        }
    }
    let at = rules
        .iter()
        .rposition(|r| !r.allow && r.kind == 'a' && r.major.is_none() && r.minor.is_none() && r.access.len() == 3)
        .map_or(0, |i| i + 1);
    rules.splice(at..at, default_device_rules());
    Ok(rules)
}

fn limit_v2(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
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

pub fn plan_v1(res: &LinuxResources) -> Result<Vec<Write>, CgroupError> {
    let mut out = Vec::new();
    if let Some(m) = res.memory() {
        if let Some(l) = m.limit() {
            out.push(w("memory", "memory.limit_in_bytes", l));
        }
        if let Some(r) = m.reservation() {
            out.push(w("memory", "memory.soft_limit_in_bytes", r));
        }
        if let Some(s) = m.swap() {
            out.push(w("memory", "memory.memsw.limit_in_bytes", s));
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(CgroupError::Invalid(format!("memory swappiness {s} is above 100")));
            }
            out.push(w("memory", "memory.swappiness", s));
        }
        if m.disable_oom_killer() == Some(true) {
            out.push(w("memory", "memory.oom_control", 1));
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares() {
            out.push(w("cpu", "cpu.shares", s));
        }
        if let Some(p) = c.period() {
            out.push(w("cpu", "cpu.cfs_period_us", p));
        }
        if let Some(q) = c.quota() {
            out.push(w("cpu", "cpu.cfs_quota_us", q));
        }
        if let Some(p) = c.realtime_period() {
            out.push(w("cpu", "cpu.rt_period_us", p));
        }
        if let Some(r) = c.realtime_runtime() {
            out.push(w("cpu", "cpu.rt_runtime_us", r));
        }
        if let Some(cpus) = c.cpus() {
            out.push(w("cpuset", "cpuset.cpus", cpus));
        }
        if let Some(mems) = c.mems() {
            out.push(w("cpuset", "cpuset.mems", mems));
        }
    }
    if let Some(p) = res.pids() {
        out.push(w("pids", "pids.max", limit_v2(p.limit())));
    }
    if let Some(b) = res.block_io() {
        if let Some(wt) = b.weight() {
            out.push(w("blkio", "blkio.weight", wt));
        }
        if let Some(wt) = b.leaf_weight() {
            out.push(w("blkio", "blkio.leaf_weight", wt));
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(wt) = d.weight() {
                out.push(w("blkio", "blkio.weight_device", format!("{}:{} {}", d.major(), d.minor(), wt)));
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
        out.push(w("hugetlb", format!("hugetlb.{}.limit_in_bytes", h.page_size()), h.limit()));
    }
    if let Some(n) = res.network() {
        if let Some(id) = n.class_id() {
            out.push(w("net_cls", "net_cls.classid", id));
        }
        for p in n.priorities().iter().flatten() {
            out.push(w("net_prio", "net_prio.ifpriomap", format!("{} {}", p.name(), p.priority())));
        }
    }
    if let Some(u) = res.unified() {
        if !u.is_empty() {
            return Err(CgroupError::Invalid("linux.resources.unified needs cgroup v2, but this host runs cgroup v1".into()));
        }
    }
    // Devices: deny everything, then apply the rules in order.
    out.push(w("devices", "devices.deny", "a"));
    for rule in device_rules(Some(res))? {
        let file = if rule.allow { "devices.allow" } else { "devices.deny" };
        out.push(w("devices", file, rule.v1_line()));
    }
    Ok(out)
}

pub fn plan_v2(res: &LinuxResources) -> Result<Vec<Write>, CgroupError> {
    let mut out = Vec::new();
    if let Some(m) = res.memory() {
        if let Some(l) = m.limit() {
            out.push(w("memory", "memory.max", limit_v2(l)));
        }
        if let Some(r) = m.reservation() {
            out.push(w("memory", "memory.low", limit_v2(r)));
        }
        if let Some(s) = m.swap() {
            // OCI's swap is memory+swap (v1 memsw); v2's swap.max is swap alone.
            let v = match (s, m.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l >= 0 => {
                    if s < l {
                        return Err(CgroupError::Invalid(format!("memory swap {s} is below the memory limit {l}")));
                    }
                    (s - l).to_string()
                }
                (s, _) => s.to_string(),
            };
            out.push(w("memory", "memory.swap.max", v));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(CgroupError::Invalid("disableOOMKiller is not supported on cgroup v2".into()));
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares() {
            out.push(w("cpu", "cpu.weight", shares_to_weight(s)));
        }
        match (c.quota(), c.period()) {
            (Some(q), p) => out.push(w("cpu", "cpu.max", format!("{} {}", limit_v2(q), p.unwrap_or(100_000)))),
            (None, Some(p)) => out.push(w("cpu", "cpu.max", format!("max {p}"))),
            (None, None) => {}
        }
        if let Some(idle) = c.idle() {
            out.push(w("cpu", "cpu.idle", idle));
        }
        if let Some(cpus) = c.cpus() {
            out.push(w("cpuset", "cpuset.cpus", cpus));
        }
        if let Some(mems) = c.mems() {
            out.push(w("cpuset", "cpuset.mems", mems));
        }
    }
    if let Some(p) = res.pids() {
        out.push(w("pids", "pids.max", limit_v2(p.limit())));
    }
    if let Some(b) = res.block_io() {
        if let Some(wt) = b.weight() {
            out.push(w("io", "io.weight", format!("default {}", blkio_weight_to_io(wt))));
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(wt) = d.weight() {
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
        out.push(w("hugetlb", format!("hugetlb.{}.max", h.page_size()), h.limit()));
    }
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plan_v1_memory_cpu_pids() {
        let r = res(
            r#"{"memory":{"limit":1048576,"reservation":524288},"cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0"},"pids":{"limit":10}}"#,
        );
        let p = plan_v1(&r).unwrap();
        assert!(p.contains(&w("memory", "memory.limit_in_bytes", 1048576)));
        assert!(p.contains(&w("memory", "memory.soft_limit_in_bytes", 524288)));
        assert!(p.contains(&w("cpu", "cpu.shares", 512)));
        assert!(p.contains(&w("cpuset", "cpuset.cpus", "0")));
        assert!(p.contains(&w("pids", "pids.max", 10)));
        let period = p.iter().position(|x| x.file == "cpu.cfs_period_us").unwrap();
        let quota = p.iter().position(|x| x.file == "cpu.cfs_quota_us").unwrap();
        assert!(period < quota, "period must be set before quota");
    }

    #[test]
    fn plan_v1_devices_deny_all_then_rules_in_order() {
        let r = res(
            r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":200,"access":"rw"},{"allow":false,"type":"c","major":1,"minor":3,"access":"w"}]}"#,
        );
        let p: Vec<_> = plan_v1(&r).unwrap().into_iter().filter(|x| x.controller == "devices").collect();
        assert_eq!(p[0], w("devices", "devices.deny", "a"));
        assert_eq!(p[1], w("devices", "devices.deny", "a"));
        assert_eq!(p[2], w("devices", "devices.allow", "c *:* m"));
        let n = default_device_rules().len();
        assert_eq!(p[2 + n], w("devices", "devices.allow", "c 10:200 rw"));
        assert_eq!(p[3 + n], w("devices", "devices.deny", "c 1:3 w"));
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
        assert!(p.contains(&w("memory", "memory.max", 2000000)));
        assert!(p.contains(&w("memory", "memory.swap.max", 1000000)));
        assert!(p.contains(&w("cpu", "cpu.weight", 39)));
        assert!(p.contains(&w("cpu", "cpu.max", "max 100000")));
        assert!(p.contains(&w("pids", "pids.max", "max")));
        assert!(p.contains(&w("io", "io.weight", "default 4950")));
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
