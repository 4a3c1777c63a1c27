//! Side-by-side benchmarks of rind against its peers, in one run on the same
//! inputs, printing medians and ratios. Not timed tests: run by hand as root.
//!
//!   rind-bench runtime [--runs N] [--full]   rind-runtime vs runc vs crun: `run` of busybox `true`
//!                                            (--full: with seccomp and hooks)
//!   rind-bench shim [--containers N] [--runs N]   idle shim RSS/PSS and `ctr run --rm` vs the runc shim
//!   rind-bench daemon [--containers N] [--runs N] `rind run --rm` vs `ctr run --rm` (runc), reconcile
//!                                            time of N running containers, idle rindd RSS
//!   rind-bench engines [--runs N]            `docker run --rm` and `podman run --rm` with
//!                                            rind-runtime vs runc
//!   rind-bench pull [--runs N]               cold pull of 200 MiB in 8 layers from a local
//!                                            registry: rind vs containerd; rindd's peak RSS
//!   rind-bench network [--runs N] [--containers N] [--cycles N]  `run --rm` on the bridge vs
//!                                            none, and N containers with -p one after another:
//!                                            rind vs docker vs podman, each in its own netns;
//!                                            then N `run --rm -p` cycles and what they left

mod daemon;
mod engines;
mod network;
mod pull;
mod runtime;
mod shim;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(50);
    match args.first().map(String::as_str) {
        Some("runtime") => runtime::bench(runs, args.iter().any(|a| a == "--full")),
        Some("daemon") => {
            let n = args.iter().position(|a| a == "--containers").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(100);
            daemon::bench(n, runs)
        }
        Some("engines") => engines::bench(runs),
        Some("network") => {
            let n = args.iter().position(|a| a == "--containers").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(50);
            let cycles = args.iter().position(|a| a == "--cycles").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(0);
            network::bench(if args.iter().any(|a| a == "--runs") { runs } else { 20 }, n, cycles)
        }
        Some("pull") => pull::bench(if args.iter().any(|a| a == "--runs") { runs } else { 5 }),
        Some("shim") => {
            let n = args.iter().position(|a| a == "--containers").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(50);
            shim::bench(n, runs)
        }
        _ => {
            eprintln!(
                "usage: rind-bench runtime [--runs N] [--full] | shim [--containers N] [--runs N] | daemon [--containers N] [--runs N] | engines [--runs N] | pull [--runs N] | network [--runs N] [--containers N] [--cycles N]"
            );
            std::process::exit(2);
        }
    }
}

/// Median of a sample (sorted copy).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len().is_multiple_of(2) {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    }
}
