//! What the network costs: `run --rm busybox true` on the default bridge vs
//! `--network none`, and 50 containers started one after another each with
//! a published port; rind vs Debian's docker and podman, each engine in a
//! network namespace of its own (bridges and firewall rules die with it).

use std::time::Instant;

use rind_tests::daemon::{Daemon, TestNetns};
use rind_tests::engines::{Engine, Oci, IMAGE};

use crate::median;

/// One engine's CLI, as the bench drives it.
trait Runner {
    fn name(&self) -> &'static str;
    /// `run` with `args` before the image; its stderr on failure.
    fn run(&self, args: &[&str], cmd: &[&str]) -> Result<(), String>;
    fn rm_all(&self);
}

impl Runner for Daemon {
    fn name(&self) -> &'static str {
        "rind"
    }
    fn run(&self, args: &[&str], cmd: &[&str]) -> Result<(), String> {
        let mut a = vec!["run"];
        a.extend(args);
        a.push("busybox");
        a.extend(cmd);
        checked(self.rind(&a))
    }
    fn rm_all(&self) {
        let ids = self.ok(&["ps", "-aq"]);
        let mut a = vec!["rm", "-f"];
        a.extend(ids.split_whitespace());
        if a.len() > 2 {
            self.ok(&a);
        }
    }
}

impl Runner for Engine {
    fn name(&self) -> &'static str {
        Engine::name(self)
    }
    fn run(&self, args: &[&str], cmd: &[&str]) -> Result<(), String> {
        let mut c = self.command_for(Oci::Runc);
        c.arg("run").args(self.run_flags(Oci::Runc)).args(args).arg(IMAGE).args(cmd);
        checked(c.output().map_err(|e| e.to_string())?)
    }
    fn rm_all(&self) {
        let ids = rind_tests::stdout(&self.cli(&["ps", "-aq"]));
        let mut a = vec!["rm", "-f"];
        a.extend(ids.split_whitespace());
        if a.len() > 2 {
            let _ = self.cli(&a);
        }
    }
}

fn checked(o: std::process::Output) -> Result<(), String> {
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// `cycles` of `run --rm -p PORT:80 busybox true`, then what is left.
fn leak_check(d: &Daemon, cycles: usize) -> anyhow::Result<()> {
    let t = Instant::now();
    for i in 0..cycles {
        let p = format!("{}:80", 30000 + i % 1000);
        d.run(&["--rm", "-p", &p], &["true"]).map_err(|err| anyhow::anyhow!("cycle {i}: {err}"))?;
    }
    let left = d.network_leftovers();
    println!(
        "\n{cycles} `run --rm -p` cycles in {:.0} s: {} left over{}",
        t.elapsed().as_secs_f64(),
        left.len(),
        if left.is_empty() { String::new() } else { format!(": {left:?}") }
    );
    Ok(())
}

pub fn bench(runs: usize, containers: usize, cycles: usize) -> anyhow::Result<()> {
    rind_tests::require_root();
    // rindd makes its own namespace; docker and podman get one each.
    let nss = [TestNetns::new(), TestNetns::new()];
    let rind = Daemon::start_networked("debug = false\n");
    rind.load_busybox();
    let docker = Engine::docker_networked(&nss[0].path());
    let podman = Engine::podman_networked(&nss[1].path());
    let engines: [&dyn Runner; 3] = [&rind, &docker, &podman];
    println!("network bench: `run --rm busybox true` x{runs}, bridge and none interleaved across engines (one warm-up each)");
    // [engine][bridge, none]
    let mut times = vec![[Vec::new(), Vec::new()]; engines.len()];
    for i in 0..=runs {
        for (k, e) in engines.iter().enumerate() {
            for (j, args) in [&["--rm"][..], &["--rm", "--network", "none"][..]].iter().enumerate() {
                let t = Instant::now();
                e.run(args, &["true"]).map_err(|err| anyhow::anyhow!("{} run {args:?}: {err}", e.name()))?;
                if i > 0 {
                    times[k][j].push(ms(t));
                }
            }
        }
    }
    let rind_bridge = median(&times[0][0]);
    println!("{:<8} {:>12} {:>12} {:>14} {:>14}", "engine", "bridge ms", "none ms", "bridge adds ms", "bridge vs rind");
    for (k, e) in engines.iter().enumerate() {
        let (b, n) = (median(&times[k][0]), median(&times[k][1]));
        println!("{:<8} {:>12.1} {:>12.1} {:>14.1} {:>14.2}", e.name(), b, n, b - n, b / rind_bridge);
    }
    println!("\n{containers} containers started one after another, each `run -d -p PORT:80 busybox sleep`:");
    println!("{:<8} {:>12} {:>14} {:>14}", "engine", "total ms", "per container", "vs rind");
    let mut totals = Vec::new();
    for e in engines {
        let t = Instant::now();
        for i in 0..containers {
            let p = format!("{}:80", 20000 + i);
            e.run(&["-d", "-p", &p], &["sleep", "100000"]).map_err(|err| anyhow::anyhow!("{} run -p {p}: {err}", e.name()))?;
        }
        totals.push(ms(t));
        e.rm_all();
    }
    for (e, total) in engines.iter().zip(&totals) {
        println!("{:<8} {:>12.0} {:>14.1} {:>14.2}", e.name(), total, total / containers as f64, total / totals[0]);
    }
    drop((podman, docker));
    if cycles > 0 {
        leak_check(&rind, cycles)?;
    }
    drop(nss);
    Ok(())
}
