//! Cgroup statistics in runc's `events --stats` shape, read from v1 or v2
//! files; parsing is pure so it runs against fixtures.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use super::CgroupPaths;

/// "key value" lines (memory.stat, cpu.stat, memory.events) into a map.
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// A single number, "max" as u64::MAX.
pub fn parse_u64(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return Some(u64::MAX);
    }
    t.parse().ok()
}

fn read_u64(dir: Option<&Path>, file: &str) -> u64 {
    dir.and_then(|d| fs::read_to_string(d.join(file)).ok()).and_then(|s| parse_u64(&s)).unwrap_or(0)
}

fn read_map(dir: Option<&Path>, file: &str) -> BTreeMap<String, u64> {
    dir.and_then(|d| fs::read_to_string(d.join(file)).ok()).map(|s| parse_flat_keyed(&s)).unwrap_or_default()
}

const USER_HZ_NS: u64 = 10_000_000; // cpuacct.stat counts USER_HZ (100) ticks

pub fn collect(cg: &CgroupPaths) -> Value {
    if cg.v2 {
        let d = cg.dir_for("");
        let cpu = read_map(d, "cpu.stat");
        let mem = read_map(d, "memory.stat");
        let events = read_map(d, "memory.events");
        json!({
            "cpu": {
                "usage": {"total": cpu.get("usage_usec").unwrap_or(&0) * 1000, "percpu": [],
                          "kernel": cpu.get("system_usec").unwrap_or(&0) * 1000, "user": cpu.get("user_usec").unwrap_or(&0) * 1000},
                "throttling": {"periods": cpu.get("nr_periods").unwrap_or(&0), "throttledPeriods": cpu.get("nr_throttled").unwrap_or(&0),
                               "throttledTime": cpu.get("throttled_usec").unwrap_or(&0) * 1000}
            },
            "memory": {
                "usage": {"usage": read_u64(d, "memory.current"), "limit": read_u64(d, "memory.max"), "max": read_u64(d, "memory.peak"),
                          "failcnt": events.get("max").copied().unwrap_or(0)},
                "swap": {"usage": read_u64(d, "memory.swap.current"), "limit": read_u64(d, "memory.swap.max")},
                "raw": mem
            },
            "pids": {"current": read_u64(d, "pids.current"), "limit": read_u64(d, "pids.max")},
        })
    } else {
        let cpu = cg.dir_for("cpuacct");
        let mem = cg.dir_for("memory");
        let pids = cg.dir_for("pids");
        let acct = read_map(cpu, "cpuacct.stat");
        let throttle = read_map(cg.dir_for("cpu"), "cpu.stat");
        let percpu: Vec<u64> = cpu
            .and_then(|d| fs::read_to_string(d.join("cpuacct.usage_percpu")).ok())
            .map(|s| s.split_whitespace().filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default();
        json!({
            "cpu": {
                "usage": {"total": read_u64(cpu, "cpuacct.usage"), "percpu": percpu,
                          "kernel": acct.get("system").unwrap_or(&0) * USER_HZ_NS, "user": acct.get("user").unwrap_or(&0) * USER_HZ_NS},
                "throttling": {"periods": throttle.get("nr_periods").unwrap_or(&0), "throttledPeriods": throttle.get("nr_throttled").unwrap_or(&0),
                               "throttledTime": throttle.get("throttled_time").unwrap_or(&0)}
            },
            "memory": {
                "usage": {"usage": read_u64(mem, "memory.usage_in_bytes"), "limit": read_u64(mem, "memory.limit_in_bytes"),
                          "max": read_u64(mem, "memory.max_usage_in_bytes"), "failcnt": read_u64(mem, "memory.failcnt")},
                "swap": {"usage": read_u64(mem, "memory.memsw.usage_in_bytes"), "limit": read_u64(mem, "memory.memsw.limit_in_bytes")},
                "raw": read_map(mem, "memory.stat")
            },
            "pids": {"current": read_u64(pids, "pids.current"), "limit": read_u64(pids, "pids.max")},
        })
    }
}

/// How many OOM kills the cgroup has seen (v1 memory.oom_control, v2 memory.events).
pub fn oom_kills(cg: &CgroupPaths) -> u64 {
    if cg.v2 {
        read_map(cg.dir_for(""), "memory.events").get("oom_kill").copied().unwrap_or(0)
    } else {
        read_map(cg.dir_for("memory"), "memory.oom_control").get("oom_kill").copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_flat_keyed_and_max() {
        let m = parse_flat_keyed("usage_usec 100\nuser_usec 60\nbad\n");
        assert_eq!(m["usage_usec"], 100);
        assert_eq!(m.len(), 2);
        assert_eq!(parse_u64("max\n"), Some(u64::MAX));
        assert_eq!(parse_u64("42"), Some(42));
    }

    #[test]
    fn collect_v2_from_fixture() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::write(d.join("cpu.stat"), "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 1\nnr_throttled 0\nthrottled_usec 0\n")
            .unwrap();
        fs::write(d.join("memory.current"), "4096\n").unwrap();
        fs::write(d.join("memory.max"), "max\n").unwrap();
        fs::write(d.join("memory.events"), "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n").unwrap();
        fs::write(d.join("pids.current"), "3\n").unwrap();
        let cg = CgroupPaths { v2: true, dirs: [(String::new(), d.to_path_buf())].into() };
        let s = collect(&cg);
        assert_eq!(s["cpu"]["usage"]["total"], 5000);
        assert_eq!(s["memory"]["usage"]["usage"], 4096);
        assert_eq!(s["memory"]["usage"]["failcnt"], 2);
        assert_eq!(s["pids"]["current"], 3);
        assert_eq!(oom_kills(&cg), 1);
    }

    #[test]
    fn collect_v1_from_fixture() {
        let t = tempfile::tempdir().unwrap();
        let (cpu, mem) = (t.path().join("cpuacct"), t.path().join("memory"));
        fs::create_dir_all(&cpu).unwrap();
        fs::create_dir_all(&mem).unwrap();
        fs::write(cpu.join("cpuacct.usage"), "1234\n").unwrap();
        fs::write(cpu.join("cpuacct.usage_percpu"), "1000 234\n").unwrap();
        fs::write(cpu.join("cpuacct.stat"), "user 2\nsystem 1\n").unwrap();
        fs::write(mem.join("memory.usage_in_bytes"), "8192\n").unwrap();
        fs::write(mem.join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        let cg = CgroupPaths { v2: false, dirs: [("cpuacct".into(), cpu), ("memory".into(), mem)].into() };
        let s = collect(&cg);
        assert_eq!(s["cpu"]["usage"]["total"], 1234);
        assert_eq!(s["cpu"]["usage"]["percpu"], json!([1000, 234]));
        assert_eq!(s["cpu"]["usage"]["user"], 20_000_000);
        assert_eq!(s["memory"]["usage"]["usage"], 8192);
        assert_eq!(oom_kills(&cg), 3);
    }
}
