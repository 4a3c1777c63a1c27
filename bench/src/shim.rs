//! The shim under containerd, side by side with Debian's
//! containerd-shim-runc-v2: memory of idle shims, and `ctr run --rm` time.

use std::time::Instant;

use rind_tests::containerd::{pids_with_cmdline, Containerd};

use crate::median;

const IMAGE: &str = "docker.io/library/busybox:rindbench";

struct Peer {
    name: &'static str,
    runtime: &'static str,
    shim: &'static str,
}

const PEERS: [Peer; 2] = [
    Peer { name: "rind shim + rind-runtime", runtime: "io.containerd.rind.v2", shim: "containerd-shim-rind-v2" },
    Peer { name: "runc shim + runc", runtime: "io.containerd.runc.v2", shim: "containerd-shim-runc-v2" },
];

fn smaps_kib(pid: i32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0.0)
}

pub fn bench(containers: usize, runs: usize) -> anyhow::Result<()> {
    rind_tests::require_root();
    let ctrd = Containerd::start();
    ctrd.import_busybox(IMAGE);

    println!("shim bench: {containers} idle containers per shim type; `ctr run --rm busybox true` x{runs}, interleaved");
    println!("{:<28} {:>14} {:>14}", "shim", "RSS KiB/shim", "PSS KiB/shim");
    for p in &PEERS {
        let ids: Vec<String> = (0..containers).map(|i| format!("idle-{}-{i}", p.shim)).collect();
        for id in &ids {
            ctrd.ctr_ok(&["run", "-d", "--runtime", p.runtime, IMAGE, id, "sleep", "100000"]);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        let pids: Vec<i32> = pids_with_cmdline(&format!("-namespace {}", ctrd.namespace))
            .into_iter()
            .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e.to_string_lossy().contains(p.shim)))
            .collect();
        let rss: Vec<f64> = pids.iter().map(|pid| smaps_kib(*pid, "Rss:")).collect();
        let pss: Vec<f64> = pids.iter().map(|pid| smaps_kib(*pid, "Pss:")).collect();
        println!("{:<28} {:>14.0} {:>14.0}   ({} shims, medians)", p.name, median(&rss), median(&pss), pids.len());
        for id in &ids {
            let _ = ctrd.ctr(&["task", "kill", "--signal", "SIGKILL", id]);
        }
        for id in &ids {
            for _ in 0..100 {
                if ctrd.ctr(&["task", "delete", id]).status.success() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = ctrd.ctr(&["container", "delete", id]);
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); PEERS.len()];
    for i in 0..=runs {
        for (k, p) in PEERS.iter().enumerate() {
            let id = format!("rm-{k}-{i}");
            let t = Instant::now();
            ctrd.ctr_ok(&["run", "--rm", "--runtime", p.runtime, IMAGE, &id, "true"]);
            if i > 0 {
                times[k].push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let base = median(&times[1]);
    println!("{:<28} {:>14} {:>14}", "ctr run --rm true", "median ms", "vs runc");
    for (k, p) in PEERS.iter().enumerate() {
        let m = median(&times[k]);
        println!("{:<28} {:>14.1} {:>14.2}", p.name, m, m / base);
    }
    Ok(())
}
