//! Stats in containerd's cgroup metrics format, converted from the runtime's
//! `events --stats` JSON (so the shim reads no cgroup file itself, and runc
//! or crun can stand in).

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use serde_json::Value;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `data` is the "data" object of a runtime stats event.
pub fn to_metrics(data: &Value, cgroup_v2: bool) -> Any {
    let (cpu, mem, pids) = (&data["cpu"], &data["memory"], &data["pids"]);
    if cgroup_v2 {
        let mut m = v2::Metrics::new();
        let mut p = v2::PidsStat::new();
        (p.current, p.limit) = (u(&pids["current"]), u(&pids["limit"]));
        m.pids = MessageField::some(p);
        let mut c = v2::CPUStat::new();
        c.usage_usec = u(&cpu["usage"]["total"]) / 1000;
        c.user_usec = u(&cpu["usage"]["user"]) / 1000;
        c.system_usec = u(&cpu["usage"]["kernel"]) / 1000;
        c.nr_periods = u(&cpu["throttling"]["periods"]);
        c.nr_throttled = u(&cpu["throttling"]["throttledPeriods"]);
        c.throttled_usec = u(&cpu["throttling"]["throttledTime"]) / 1000;
        m.cpu = MessageField::some(c);
        let mut ms = v2::MemoryStat::new();
        ms.usage = u(&mem["usage"]["usage"]);
        ms.usage_limit = u(&mem["usage"]["limit"]);
        ms.max_usage = u(&mem["usage"]["max"]);
        ms.swap_usage = u(&mem["swap"]["usage"]);
        ms.swap_limit = u(&mem["swap"]["limit"]);
        ms.anon = u(&mem["raw"]["anon"]);
        ms.file = u(&mem["raw"]["file"]);
        m.memory = MessageField::some(ms);
        return crate::events::to_any(&m);
    }
    let mut m = v1::Metrics::new();
    let mut p = v1::PidsStat::new();
    (p.current, p.limit) = (u(&pids["current"]), u(&pids["limit"]));
    m.pids = MessageField::some(p);
    let mut usage = v1::CPUUsage::new();
    usage.total = u(&cpu["usage"]["total"]);
    usage.kernel = u(&cpu["usage"]["kernel"]);
    usage.user = u(&cpu["usage"]["user"]);
    usage.per_cpu = cpu["usage"]["percpu"].as_array().map(|a| a.iter().map(u).collect()).unwrap_or_default();
    let mut thr = v1::Throttle::new();
    thr.periods = u(&cpu["throttling"]["periods"]);
    thr.throttled_periods = u(&cpu["throttling"]["throttledPeriods"]);
    thr.throttled_time = u(&cpu["throttling"]["throttledTime"]);
    let mut c = v1::CPUStat::new();
    c.usage = MessageField::some(usage);
    c.throttling = MessageField::some(thr);
    m.cpu = MessageField::some(c);
    let entry = |v: &Value| {
        let mut e = v1::MemoryEntry::new();
        (e.usage, e.limit, e.max, e.failcnt) = (u(&v["usage"]), u(&v["limit"]), u(&v["max"]), u(&v["failcnt"]));
        e
    };
    let raw = &mem["raw"];
    let mut ms = v1::MemoryStat::new();
    ms.cache = u(&raw["cache"]);
    ms.rss = u(&raw["rss"]);
    ms.mapped_file = u(&raw["mapped_file"]);
    ms.total_cache = u(&raw["total_cache"]);
    ms.total_rss = u(&raw["total_rss"]);
    ms.usage = MessageField::some(entry(&mem["usage"]));
    ms.swap = MessageField::some(entry(&mem["swap"]));
    m.memory = MessageField::some(ms);
    crate::events::to_any(&m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::Message;

    fn sample() -> Value {
        serde_json::json!({"cpu": {"usage": {"total": 5000, "percpu": [3000, 2000], "kernel": 1000, "user": 4000}, "throttling": {"periods": 2}},
                           "memory": {"usage": {"usage": 4096, "limit": 8192, "max": 5000, "failcnt": 1}, "raw": {"rss": 100}},
                           "pids": {"current": 3, "limit": 10}})
    }

    #[test]
    fn to_metrics_v1() {
        let a = to_metrics(&sample(), false);
        assert_eq!(a.type_url, "io.containerd.cgroups.v1.Metrics");
        let m = v1::Metrics::parse_from_bytes(&a.value).unwrap();
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.cpu.usage.per_cpu, vec![3000, 2000]);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.rss, 100);
    }

    #[test]
    fn to_metrics_v2() {
        let a = to_metrics(&sample(), true);
        assert_eq!(a.type_url, "io.containerd.cgroups.v2.Metrics");
        let m = v2::Metrics::parse_from_bytes(&a.value).unwrap();
        assert_eq!(m.cpu.usage_usec, 5);
        assert_eq!(m.memory.usage_limit, 8192);
        assert_eq!(m.pids.limit, 10);
    }
}
