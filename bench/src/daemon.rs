//! rindd and rind against containerd + runc: `rind run --rm busybox true`
//! vs `ctr run --rm`, the time a new rindd takes to reconcile N running
//! containers, and rindd's idle memory.

use std::time::{Duration, Instant};

use rind_tests::containerd::Containerd;
use rind_tests::daemon::Daemon;

use crate::median;

const IMAGE: &str = "docker.io/library/busybox:rindbench";

fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0.0)
}

pub fn bench(containers: usize, runs: usize) -> anyhow::Result<()> {
    rind_tests::require_root();
    let mut d = Daemon::start();
    d.load_busybox();
    let ctrd = Containerd::start();
    ctrd.import_busybox(IMAGE);

    println!("daemon bench: `run --rm busybox true` x{runs}, interleaved; then {containers} running containers");
    let (mut rind, mut ctr) = (Vec::new(), Vec::new());
    for i in 0..=runs {
        let t = Instant::now();
        d.ok(&["run", "--rm", "busybox", "true"]);
        let a = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        ctrd.ctr_ok(&["run", "--rm", "--runtime", "io.containerd.runc.v2", IMAGE, &format!("b-{i}"), "true"]);
        let b = t.elapsed().as_secs_f64() * 1000.0;
        if i > 0 {
            rind.push(a);
            ctr.push(b);
        }
    }
    let (mr, mc) = (median(&rind), median(&ctr));
    println!("{:<40} {:>10} {:>10}", "run --rm busybox true", "median ms", "ratio");
    println!("{:<40} {:>10.1} {:>10.2}", "rind run (rindd + rind shim + rind-runtime)", mr, mr / mc);
    println!("{:<40} {:>10.1} {:>10.2}", "ctr run (containerd + runc shim + runc)", mc, 1.0);
    drop(ctrd);

    let pid = d.child.as_ref().map(|c| c.id()).unwrap_or(0);
    println!("idle rindd RSS, no containers: {:.0} KiB", rss_kib(pid));
    for i in 0..containers {
        d.ok(&["run", "-d", "--name", &format!("idle{i}"), "busybox", "sleep", "100000"]);
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = d.child.as_ref().map(|c| c.id()).unwrap_or(0);
    println!("idle rindd RSS, {containers} containers: {:.0} KiB", rss_kib(pid));
    let mut recon = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..5 {
        d.kill9();
        let before = d.log().len();
        let t = Instant::now();
        d.spawn();
        let until_answer = t.elapsed().as_secs_f64() * 1000.0;
        let log = d.log();
        let ms: f64 = log[before..]
            .lines()
            .find_map(|l| l.contains("reconciled").then(|| l.split("ms=").nth(1)?.split_whitespace().next()?.parse().ok()).flatten())
            .unwrap_or(f64::NAN);
        let running = d.ok(&["ps", "-q"]).lines().count();
        assert_eq!(running, containers, "all containers still running after the restart");
        recon.push(ms);
        ready.push(until_answer);
    }
    println!(
        "restart with {containers} running: reconcile {:.0} ms (median of 5), start to answering {:.0} ms",
        median(&recon),
        median(&ready)
    );
    std::thread::sleep(Duration::from_millis(500));
    let pid = d.child.as_ref().map(|c| c.id()).unwrap_or(0);
    println!("idle rindd RSS after reconciling {containers}: {:.0} KiB", rss_kib(pid));
    Ok(())
}
