//! Issue 10, the storm: while loops create, start, exec, stop and remove
//! containers, rindd is killed with SIGKILL at random moments and random
//! shims die. Afterwards the state is consistent (every row has its
//! container and every container its row, no orphan shim) and everything
//! can be removed, leaving no shim, mount, cgroup, bundle or row.
//!
//! CI runs the short form (6 kills of rindd); `RIND_STORM_KILLS=20` gives
//! the long one, `RIND_STORM_SEED` replays a run's choices.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rind_tests::daemon::{procs_with_cwd_under, Daemon};
use rind_tests::*;

/// xorshift64*: reproducible choices from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs rind against `host`; a call that does not return within a minute
/// (scaled) is a hang, which the storm must never cause.
fn rind(host: &str, args: &[&str]) -> Output {
    let mut child = Command::new(workspace_bin("rind"))
        .arg("-H")
        .arg(host)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + patience(Duration::from_secs(60));
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("rind {args:?} hung: {}{}", stdout(&o), stderr(&o));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// One worker: runs, creates, starts, execs in, stops and removes its own
/// containers at random until told to stop. Any call may fail while rindd is
/// down or a shim was just killed; none may hang.
fn worker(host: String, me: usize, seed: u64, stop: Arc<AtomicBool>, calls: Arc<Mutex<Vec<String>>>) {
    let mut rng = Rng(seed ^ (me as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("w{me}-{}", rng.below(4));
        n += 1;
        let restart = if rng.below(3) == 0 { "always" } else { "no" };
        let args: Vec<&str> = match rng.below(7) {
            0 | 1 => vec!["run", "-d", "--name", &name, "--restart", restart, "busybox", "sleep", "100000"],
            2 => vec!["create", "--name", &name, "busybox", "sleep", "100000"],
            3 => vec!["start", &name],
            4 => vec!["exec", &name, "true"],
            5 => vec!["stop", "-t", "1", &name],
            _ => vec!["rm", "-f", &name],
        };
        let o = rind(&host, &args);
        if stderr(&o).contains("cannot connect") {
            // rindd is down: wait for it rather than spin.
            std::thread::sleep(Duration::from_millis(20));
        }
        calls.lock().unwrap().push(format!("{args:?} -> {:?} {}", o.status.code(), stderr(&o).trim()));
    }
    eprintln!("worker {me}: {n} calls");
}

/// Directories named like a container id (64 hex digits) under the cgroup
/// hierarchies.
fn container_cgroups() -> BTreeSet<PathBuf> {
    let o = Command::new("find")
        .args(["/sys/fs/cgroup", "-maxdepth", "5", "-type", "d", "-regextype", "egrep", "-regex", ".*/[0-9a-f]{64}"])
        .output()
        .unwrap();
    stdout(&o).lines().map(PathBuf::from).collect()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

#[test]
fn storm_of_daemon_and_shim_kills_leaves_a_consistent_state() {
    let kills: usize = std::env::var("RIND_STORM_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let seed: u64 = std::env::var("RIND_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    eprintln!("storm: {kills} kills of rindd, RIND_STORM_SEED={seed}");
    let cgroups_before = container_cgroups();
    let mut d = Daemon::start();
    d.load_busybox();
    let host = d.host();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..3)
        .map(|me| {
            let (host, stop, calls) = (host.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || worker(host, me, seed, stop, calls))
        })
        .collect();

    let mut rng = Rng(seed);
    let mut shims_killed = 0;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(100 + rng.below(1500)));
        // Sometimes a shim dies too, while rindd runs or while it is down.
        let shim_first = rng.below(3) == 0;
        let kill_a_shim = |rng: &mut Rng, d: &Daemon| {
            let shims = d.shim_pids();
            if !shims.is_empty() {
                let p = shims[rng.below(shims.len() as u64) as usize];
                // SAFETY: kill(2) on a shim of this test's daemon.
                unsafe { libc::kill(p, libc::SIGKILL) };
                return 1;
            }
            0
        };
        if shim_first {
            shims_killed += kill_a_shim(&mut rng, &d);
            std::thread::sleep(Duration::from_millis(rng.below(300)));
        }
        d.kill9();
        if rng.below(2) == 0 {
            shims_killed += kill_a_shim(&mut rng, &d);
        }
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        d.spawn();
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        if let Err(e) = w.join() {
            std::panic::resume_unwind(e);
        }
    }
    let calls = calls.lock().unwrap();
    let ok = calls.iter().filter(|c| c.contains("-> Some(0)")).count();
    eprintln!("storm: {} calls, {ok} succeeded, {shims_killed} shims killed", calls.len());
    // What the failures said, most frequent first, for the log.
    let mut why: std::collections::BTreeMap<String, usize> = Default::default();
    for c in calls.iter().filter(|c| !c.contains("-> Some(0)")) {
        let verb = c.split('"').nth(1).unwrap_or("");
        let msg = c.split_once(") ").map(|x| x.1).unwrap_or(c);
        let msg: String = msg.chars().filter(|c| !c.is_ascii_digit()).take(90).collect();
        *why.entry(format!("{verb}: {msg}")).or_default() += 1;
    }
    let mut why: Vec<_> = why.into_iter().collect();
    why.sort_by_key(|w| std::cmp::Reverse(w.1));
    for (m, n) in why.iter().take(25) {
        eprintln!("  {n:5} {m}");
    }
    // The storm must have done work between the kills, not only failed.
    assert!(ok > 0, "no call succeeded during the storm:\n{}", calls.join("\n"));

    // Settled: every shim belongs to a running or paused container and every
    // running or paused container has its shim and its process.
    let listed = |d: &Daemon| -> Vec<(String, String, i32)> {
        d.ok(&["ps", "-aq"])
            .split_whitespace()
            .map(|id| {
                let f = d.ok(&["inspect", "-f", "{{.Id}} {{.State.Status}} {{.State.Pid}}", id]);
                let f: Vec<&str> = f.split_whitespace().collect();
                (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
            })
            .collect()
    };
    let live = |rows: &[(String, String, i32)]| rows.iter().filter(|(_, s, _)| s == "running" || s == "paused").count();
    let end = Instant::now() + patience(Duration::from_secs(30));
    let rows = loop {
        let rows = listed(&d);
        let shims = procs_with_cwd_under(&d.state()).into_iter().filter(|(_, c)| c.starts_with("containerd-shim")).count();
        if !rows.iter().any(|(_, s, _)| s == "restarting") && shims == live(&rows) {
            break rows;
        }
        if Instant::now() > end {
            let shims: Vec<String> = d
                .shim_pids()
                .iter()
                .map(|p| format!("{p} in {:?}", std::fs::read_link(format!("/proc/{p}/cwd")).unwrap_or_default()))
                .collect();
            panic!("no settled state: rows {rows:?}\nshims {shims:?}\nrindd's log:\n{}", d.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (id, status, pid) in &rows {
        if status == "running" || status == "paused" {
            assert!(*pid > 0 && pid_alive(*pid), "{id} is {status} but its process {pid} is gone");
        }
    }
    let ids: BTreeSet<String> = rows.iter().map(|(id, _, _)| id.clone()).collect();
    for (what, dir) in [("bundle", d.state().join("containers")), ("container data", d.root().join("containers"))] {
        for e in entries(&dir) {
            assert!(ids.contains(&e), "{what} {e} has no row; rows: {ids:?}");
        }
    }
    for id in &ids {
        assert!(d.root().join("containers").join(id).exists(), "row {id} has no container data");
    }

    // Everything can be removed, and nothing is left.
    for id in &ids {
        d.ok(&["rm", "-f", id]);
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    d.wait_for("no shim left", Duration::from_secs(10), || d.shim_pids().is_empty());
    let procs = procs_with_cwd_under(d.dir.path());
    assert!(procs.is_empty(), "processes left: {procs:?}");
    assert!(mounts_under(d.dir.path()).is_empty(), "mounts left: {:?}", mounts_under(d.dir.path()));
    for dir in [d.state().join("containers"), d.state().join("s"), d.root().join("containers")] {
        assert!(entries(&dir).is_empty(), "{} not empty: {:?}", dir.display(), entries(&dir));
    }
    let runtime_left: Vec<String> =
        entries(&d.state().join("runtime")).iter().flat_map(|ns| entries(&d.state().join("runtime").join(ns))).collect();
    assert!(runtime_left.is_empty(), "runtime state left: {runtime_left:?}");
    let cgroups_left: Vec<PathBuf> = container_cgroups().difference(&cgroups_before).cloned().collect();
    assert!(cgroups_left.is_empty(), "cgroups left: {cgroups_left:?}");
    // No rows either: a fresh rindd on the same root sees nothing.
    d.kill9();
    d.spawn();
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}
