//! Container statistics from the metrics a shim returns (containerd's cgroup
//! v1 or v2 Metrics), and `top` from /proc.

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;

/// One sample: CPU time used so far, memory, pids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub cpu_ns: u64,
    pub memory: u64,
    pub memory_limit: u64,
    pub pids: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("metrics of type {0:?} are not understood")]
    UnknownType(String),
    #[error("decode metrics: {0}")]
    Decode(String),
}

pub fn sample(any: &Any) -> Result<Sample, StatsError> {
    let dec = |e: containerd_shim_protos::protobuf::Error| StatsError::Decode(e.to_string());
    match any.type_url.trim_start_matches("type.googleapis.com/") {
        "io.containerd.cgroups.v1.Metrics" => {
            let m = v1::Metrics::parse_from_bytes(&any.value).map_err(dec)?;
            let mem = m.memory.usage.as_ref();
            Ok(Sample {
                cpu_ns: m.cpu.usage.total,
                // Docker subtracts the page cache from the usage.
                memory: mem.map(|u| u.usage).unwrap_or(0).saturating_sub(m.memory.cache),
                memory_limit: mem.map(|u| u.limit).unwrap_or(0),
                pids: m.pids.current,
            })
        }
        "io.containerd.cgroups.v2.Metrics" => {
            let m = v2::Metrics::parse_from_bytes(&any.value).map_err(dec)?;
            Ok(Sample {
                cpu_ns: m.cpu.usage_usec * 1000,
                memory: m.memory.usage.saturating_sub(m.memory.file),
                memory_limit: m.memory.usage_limit,
                pids: m.pids.current,
            })
        }
        other => Err(StatsError::UnknownType(other.to_string())),
    }
}

/// CPU use between two samples `wall_ns` apart, in percent of one CPU.
pub fn cpu_percent(before: &Sample, after: &Sample, wall_ns: u64) -> f64 {
    if wall_ns == 0 {
        return 0.0;
    }
    after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / wall_ns as f64 * 100.0
}

/// `top`: UID PID PPID STAT CMD of each pid, read from /proc.
pub fn top_rows(pids: &[u32]) -> (Vec<String>, Vec<Vec<String>>) {
    let titles = ["UID", "PID", "PPID", "STAT", "CMD"].iter().map(|s| s.to_string()).collect();
    let mut rows = Vec::new();
    for pid in pids {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
                .unwrap_or_default()
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                c.split(|&b| b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let cmd = if cmd.is_empty() { format!("[{}]", field("Name:")) } else { cmd };
        rows.push(vec![field("Uid:"), pid.to_string(), field("PPid:"), field("State:"), cmd]);
    }
    (titles, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_from_v1_and_v2_metrics() {
        let mut m = v1::Metrics::new();
        m.cpu.mut_or_insert_default().usage.mut_or_insert_default().total = 5_000;
        let mem = m.memory.mut_or_insert_default();
        mem.cache = 100;
        let u = mem.usage.mut_or_insert_default();
        u.usage = 1_100;
        u.limit = 4_096;
        m.pids.mut_or_insert_default().current = 3;
        let any = Any { type_url: "io.containerd.cgroups.v1.Metrics".into(), value: m.write_to_bytes().unwrap(), ..Default::default() };
        assert_eq!(sample(&any).unwrap(), Sample { cpu_ns: 5_000, memory: 1_000, memory_limit: 4_096, pids: 3 });

        let mut m = v2::Metrics::new();
        m.cpu.mut_or_insert_default().usage_usec = 7;
        m.memory.mut_or_insert_default().usage = 50;
        m.memory.mut_or_insert_default().usage_limit = 60;
        m.pids.mut_or_insert_default().current = 1;
        let any = Any { type_url: "io.containerd.cgroups.v2.Metrics".into(), value: m.write_to_bytes().unwrap(), ..Default::default() };
        assert_eq!(sample(&any).unwrap(), Sample { cpu_ns: 7_000, memory: 50, memory_limit: 60, pids: 1 });
        assert!(sample(&Any { type_url: "x".into(), ..Default::default() }).is_err());
    }

    #[test]
    fn cpu_percent_of_one_cpu() {
        let a = Sample { cpu_ns: 0, ..Default::default() };
        let b = Sample { cpu_ns: 500_000_000, ..Default::default() };
        assert_eq!(cpu_percent(&a, &b, 1_000_000_000), 50.0);
        assert_eq!(cpu_percent(&a, &b, 0), 0.0);
    }

    #[test]
    fn top_reads_our_own_process() {
        let (titles, rows) = top_rows(&[std::process::id()]);
        assert_eq!(titles.len(), 5);
        assert_eq!(rows[0][1], std::process::id().to_string());
        assert!(top_rows(&[u32::MAX]).1.is_empty());
    }
}
