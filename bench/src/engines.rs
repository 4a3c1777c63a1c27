//! The runtime's share of an engine's `run --rm`: Debian's Docker and podman
//! each run busybox `true` with runc and with rind-runtime, interleaved.

use std::time::Instant;

use rind_tests::engines::{Engine, Oci, IMAGE};

use crate::median;

pub fn bench(runs: usize) -> anyhow::Result<()> {
    rind_tests::require_root();
    println!("engines bench: `run --rm busybox true` x{runs} per runtime, interleaved (one warm-up run each)");
    println!("{:<8} {:<14} {:>10} {:>10}", "engine", "runtime", "median ms", "vs runc");
    for engine in [Engine::docker(), Engine::podman()] {
        let mut times = [Vec::new(), Vec::new()];
        for i in 0..=runs {
            for (k, oci) in [Oci::Runc, Oci::Rind].into_iter().enumerate() {
                let mut cmd = engine.command_for(oci);
                cmd.args(["run", "--rm"]).args(engine.run_flags(oci)).args([IMAGE, "true"]);
                let t = Instant::now();
                let out = cmd.output()?;
                anyhow::ensure!(out.status.success(), "{} with {}: {}", engine.name(), oci.name(), String::from_utf8_lossy(&out.stderr));
                if i > 0 {
                    times[k].push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        let base = median(&times[0]);
        for (k, name) in ["runc", "rind-runtime"].iter().enumerate() {
            let m = median(&times[k]);
            println!("{:<8} {:<14} {:>10.1} {:>10.2}", engine.name(), name, m, m / base);
        }
    }
    Ok(())
}
