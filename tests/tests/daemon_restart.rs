//! `kill -9 rindd` loses nothing: the shims keep the containers, their logs
//! and their exit codes; a new rindd reconciles. And a "reboot" (no shims,
//! an empty state dir) starts cleanly. No shim outlives its container, and
//! a shim's death is noticed while rindd runs.

use std::process::Stdio;
use std::time::Duration;

use rind_tests::daemon::{procs_with_cwd_under, Daemon};
use rind_tests::*;

fn inspect(d: &Daemon, id: &str, f: &str) -> String {
    d.ok(&["inspect", "-f", f, id]).trim().to_string()
}

/// Lines in a container's log file (read directly: the daemon may be down).
fn log_lines(d: &Daemon, id: &str) -> u64 {
    std::fs::read_to_string(d.root().join("containers").join(id).join(format!("{id}.log"))).map(|s| s.lines().count() as u64).unwrap_or(0)
}

/// The numbers a printer wrote, in log order.
fn printed(d: &Daemon, name: &str) -> Vec<u64> {
    d.ok(&["logs", name]).lines().filter_map(|l| l.strip_prefix('p')).map(|n| n.parse().unwrap()).collect()
}

#[test]
fn twenty_containers_survive_kill_9_of_the_daemon() {
    let mut d = Daemon::start();
    d.load_busybox();
    let ctl = tempfile::tempdir().unwrap();
    let vol = format!("{}:/ctl:ro", ctl.path().display());
    for i in 0..10 {
        let n = format!("p{i}");
        d.ok(&["run", "-d", "--name", &n, "busybox", "sh", "-c", "i=0; while true; do echo p$i; i=$((i+1)); usleep 10000; done"]);
    }
    for i in 0..5 {
        let n = format!("e{i}");
        // Once restarted (the upper dir keeps /ran), an exiter stays up.
        let script = format!("[ -f /ran ] && exec sleep 1000; while [ ! -f /ctl/go ]; do usleep 10000; done; touch /ran; exit {}", 11 + i);
        let restart = if i >= 3 { "always" } else { "no" };
        d.ok(&["run", "-d", "--name", &n, "--restart", restart, "-v", &vol, "busybox", "sh", "-c", &script]);
    }
    for i in 0..5 {
        let n = format!("s{i}");
        d.ok(&["run", "-d", "--name", &n, "busybox", "sleep", "1000"]);
    }
    assert_eq!(d.ok(&["ps", "-q"]).lines().count(), 20);
    wait_until("every printer printing", Duration::from_secs(10), || (0..10).all(|i| !printed(&d, &format!("p{i}")).is_empty()));
    let before: Vec<u64> = (0..10).map(|i| *printed(&d, &format!("p{i}")).last().unwrap()).collect();
    let printers: Vec<String> = (0..10).map(|i| inspect(&d, &format!("p{i}"), "{{.Id}}")).collect();
    let exiters: Vec<String> = (0..5).map(|i| inspect(&d, &format!("e{i}"), "{{.Id}}")).collect();

    d.kill9();
    assert_eq!(d.shim_pids().len(), 20, "every shim outlives the daemon");
    std::fs::write(ctl.path().join("go"), "").unwrap();
    // While rindd is down: every exiter's shim records its exit, every printer prints on.
    wait_until("exits recorded and lines printed while rindd is down", Duration::from_secs(30), || {
        exiters.iter().all(|id| d.state().join("containers").join(id).join("exit").exists())
            && printers.iter().zip(&before).all(|(id, b)| log_lines(&d, id) > b + 20)
    });
    d.spawn();
    let up = d.log();
    assert!(up.contains("reconciled containers=20"), "{up}");

    let states = d.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}} {{.ExitCode}}"]);
    assert_eq!(states.lines().count(), 20, "{states}");
    for i in 0..10 {
        assert!(states.contains(&format!("p{i} running")), "{states}");
    }
    for i in 0..5 {
        assert!(states.contains(&format!("s{i} running")), "{states}");
    }
    for i in 0..3 {
        assert_eq!(inspect(&d, &format!("e{i}"), "{{.State.Status}} {{.State.ExitCode}}"), format!("exited {}", 11 + i));
        assert_ne!(inspect(&d, &format!("e{i}"), "{{.State.FinishedAt}}"), "0001-01-01T00:00:00Z");
    }
    // The exits recorded are the shims' exact codes, not an invented 137.
    for code in 11..=15 {
        assert!(d.log().contains(&format!("status={code}")), "exit {code} recorded: {}", d.log());
    }
    assert!(!d.log().contains("status=137"));
    // restart=always containers that exited while rindd was down run again.
    for i in 3..5 {
        let n = format!("e{i}");
        wait_until("always container restarted", Duration::from_secs(10), || inspect(&d, &n, "{{.State.Status}}") == "running");
        assert!(inspect(&d, &n, "{{.RestartCount}}").parse::<u32>().unwrap() >= 1);
    }
    // Every line written during the downtime is in the logs: no gaps.
    for (i, last_before) in before.iter().enumerate() {
        let n = format!("p{i}");
        let nums = printed(&d, &n);
        for (k, v) in nums.iter().enumerate() {
            assert_eq!(*v, k as u64, "{n}: line {k} is p{v}: a line was lost");
        }
        assert!(*nums.last().unwrap() > last_before + 20, "{n} printed on while rindd was down");
    }
    // The survivors answer exec.
    for n in ["s0", "s4", "p0", "p9"] {
        assert_eq!(d.ok(&["exec", n, "echo", "alive"]), "alive\n");
    }
    // And everything goes cleanly.
    for id in d.ok(&["ps", "-aq"]).split_whitespace() {
        d.ok(&["rm", "-f", id]);
    }
    wait_until("no shim left", Duration::from_secs(2), || d.shim_pids().is_empty());
    assert!(mounts_under(d.dir.path()).is_empty(), "{:?}", mounts_under(d.dir.path()));
}

#[test]
fn after_a_reboot_everything_is_stopped_and_always_starts_again() {
    let mut d = Daemon::start();
    d.load_busybox();
    d.ok(&["run", "-d", "--name", "keep", "--restart", "always", "busybox", "sleep", "1000"]);
    d.ok(&["run", "-d", "--name", "once", "busybox", "sleep", "1000"]);
    d.ok(&["create", "--name", "fresh", "busybox", "true"]);
    // The "reboot": the daemon, shims and containers die; /run is emptied.
    d.reboot(&["keep", "once"]);
    d.spawn();
    assert_eq!(inspect(&d, "once", "{{.State.Status}}"), "dead");
    assert_eq!(inspect(&d, "once", "{{.State.Error}}"), "exit status unknown (shim lost)");
    assert_eq!(inspect(&d, "fresh", "{{.State.Status}}"), "created");
    wait_until("always runs again", Duration::from_secs(10), || inspect(&d, "keep", "{{.State.Status}}") == "running");
    assert_eq!(d.ok(&["exec", "keep", "echo", "up"]), "up\n");
    // A dead container can start again, and goes cleanly.
    d.ok(&["start", "once"]);
    assert_eq!(inspect(&d, "once", "{{.State.Status}}"), "running");
    for n in ["keep", "once", "fresh"] {
        d.ok(&["rm", "-f", n]);
    }
    wait_until("no shim left", Duration::from_secs(2), || d.shim_pids().is_empty());
    assert!(mounts_under(d.dir.path()).is_empty());
}

#[test]
fn sigterm_stops_the_daemon_and_leaves_containers_running() {
    let mut d = Daemon::start();
    d.load_busybox();
    d.ok(&["run", "-d", "--name", "stay", "busybox", "sleep", "1000"]);
    let pid: i32 = inspect(&d, "stay", "{{.State.Pid}}").parse().unwrap();
    let mut child = d.child.take().unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut status = None;
    wait_until("rindd to exit on SIGTERM", Duration::from_secs(5), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let status = status.unwrap();
    assert!(status.success(), "rindd exits cleanly on SIGTERM: {status:?}");
    assert!(pid_alive(pid), "the container outlives the daemon");
    assert_eq!(d.shim_pids().len(), 1);
    d.spawn();
    assert_eq!(inspect(&d, "stay", "{{.State.Status}} {{.State.Pid}}"), format!("running {pid}"));
}

#[test]
fn a_lost_shim_is_reported_and_its_container_cleaned() {
    let mut d = Daemon::start();
    d.load_busybox();
    d.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "1000"]);
    let pid: i32 = inspect(&d, "orphan", "{{.State.Pid}}").parse().unwrap();
    let id = inspect(&d, "orphan", "{{.Id}}");
    let address = std::fs::read_to_string(d.state().join("containers").join(&id).join("address")).unwrap();
    d.kill9();
    for s in d.shim_pids() {
        // SAFETY: kill(2) on the shim we started.
        unsafe { libc::kill(s, libc::SIGKILL) };
    }
    wait_until("shim gone", Duration::from_secs(5), || d.shim_pids().is_empty());
    assert!(pid_alive(pid), "the container itself is still there");
    d.spawn();
    assert_eq!(inspect(&d, "orphan", "{{.State.Status}} {{.State.ExitCode}}"), "dead -1");
    assert_eq!(inspect(&d, "orphan", "{{.State.Error}}"), "exit status unknown (shim lost)");
    assert!(!d.ok(&["ps", "-a"]).contains("137"), "never an invented 137");
    wait_until("container killed", Duration::from_secs(5), || !pid_alive(pid));
    assert!(mounts_under(&d.state()).is_empty(), "{:?}", mounts_under(&d.state()));
    assert!(!d.state().join("containers").join(inspect(&d, "orphan", "{{.Id}}")).exists(), "bundle cleaned");
    assert!(!std::path::Path::new(address.trim().trim_start_matches("unix://")).exists(), "the dead shim's socket is removed");
    d.ok(&["rm", "orphan"]);
}

/// The shim process serving container `name` (its working directory is the bundle).
fn shim_of(d: &Daemon, name: &str) -> i32 {
    let bundle = d.state().join("containers").join(inspect(d, name, "{{.Id}}"));
    let shims: Vec<i32> =
        procs_with_cwd_under(&bundle).into_iter().filter(|(_, comm)| comm.starts_with("containerd-shim")).map(|(p, _)| p).collect();
    assert_eq!(shims.len(), 1, "one shim for {name}: {shims:?}");
    shims[0]
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) on a pid this test found; no memory involved.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Issue 10, item 5: a shim killed while rindd runs is noticed at once, its
/// container marked as a restart marks it, and its restart policy applies.
#[test]
fn a_shim_killed_while_the_daemon_runs_is_noticed_at_once() {
    let d = Daemon::start();
    d.load_busybox();
    d.ok(&["run", "-d", "--name", "victim", "busybox", "sleep", "1000"]);
    d.ok(&["run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sleep", "1000"]);
    let pid: i32 = inspect(&d, "victim", "{{.State.Pid}}").parse().unwrap();
    sigkill(shim_of(&d, "victim"));
    d.wait_for("ps -a to show the container dead", Duration::from_secs(10), || {
        d.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]).lines().any(|l| l == "victim dead")
    });
    assert_eq!(inspect(&d, "victim", "{{.State.Status}} {{.State.ExitCode}}"), "dead -1");
    assert_eq!(inspect(&d, "victim", "{{.State.Error}}"), "exit status unknown (shim lost)");
    // `shim delete` cleaned up after it: the container, its mounts, its bundle.
    wait_until("the orphaned container killed", Duration::from_secs(10), || !pid_alive(pid));
    assert!(!d.state().join("containers").join(inspect(&d, "victim", "{{.Id}}")).exists(), "bundle cleaned");
    // The verbs answer for a container that is not running, not with a ttrpc error.
    d.ok(&["stop", "victim"]);
    let exec = d.rind(&["exec", "victim", "true"]);
    assert!(!exec.status.success(), "exec in a dead container");
    assert!(stderr(&exec).contains("not running") && !stderr(&exec).contains("ttrpc"), "{}", stderr(&exec));
    // A restart policy applies as after any exit.
    let old = shim_of(&d, "phoenix");
    sigkill(old);
    d.wait_for("phoenix restarted by its policy", Duration::from_secs(20), || {
        inspect(&d, "phoenix", "{{.State.Status}} {{.RestartCount}}").starts_with("running ")
            && inspect(&d, "phoenix", "{{.RestartCount}}") != "0"
    });
    assert_ne!(shim_of(&d, "phoenix"), old, "a new shim");
    assert_eq!(d.ok(&["exec", "phoenix", "echo", "up"]), "up\n");
    for n in ["victim", "phoenix"] {
        d.ok(&["rm", "-f", n]);
    }
    d.wait_for("no shim left", Duration::from_secs(5), || d.shim_pids().is_empty());
    assert!(mounts_under(&d.state()).is_empty(), "{:?}", mounts_under(&d.state()));
}

/// Issue 10, item 4: `rm -f` racing `start` of the same container. Whichever
/// wins, no shim outlives its container (before: 16 of 20 shims were left).
#[test]
fn rm_f_racing_start_leaves_no_shim() {
    let d = Daemon::start();
    d.load_busybox();
    for i in 0..20 {
        let n = format!("race{i}");
        d.ok(&["create", "--name", &n, "busybox", "sleep", "1000"]);
        let start = d.rind_cmd().args(["start", &n]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let rm = d.rind_cmd().args(["rm", "-f", &n]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let (start, rm) = (start.wait_with_output().unwrap(), rm.wait_with_output().unwrap());
        assert!(rm.status.success(), "rm -f {n}: {}", stderr(&rm));
        // start ran first (and its container was then removed) or found none.
        assert!(start.status.success() || stderr(&start).to_lowercase().contains("no such container"), "start {n}: {}", stderr(&start));
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "", "every container removed");
    d.wait_for("no shim left", Duration::from_secs(10), || d.shim_pids().is_empty());
    let bundles = std::fs::read_dir(d.state().join("containers")).map(|r| r.count()).unwrap_or(0);
    assert_eq!(bundles, 0, "no bundle left");
    assert!(mounts_under(&d.state()).is_empty(), "{:?}", mounts_under(&d.state()));
}

/// Issue 10, item 4: `kill -9 rindd` the moment a `run -d` has a shim, before
/// rindd could have heard its address back. The next rindd finds the shim
/// from the address recorded before it was started and takes it down.
#[test]
fn kill_9_of_the_daemon_during_run_leaves_no_orphan_shim() {
    let mut d = Daemon::start();
    d.load_busybox();
    for i in 0..10 {
        let n = format!("cut{i}");
        let mut run = d
            .rind_cmd()
            .args(["run", "-d", "--name", &n, "busybox", "sleep", "1000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Polled without a pause: the window is a few milliseconds.
        let end = std::time::Instant::now() + patience(Duration::from_secs(20));
        while d.shim_pids().is_empty() && run.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < end, "no shim for {n}: {}", d.log());
        }
        d.kill9();
        let _ = run.wait();
        d.spawn();
        // The shim is the container's if it runs, and gone if it does not.
        d.wait_for("every shim owned by a running container", Duration::from_secs(10), || {
            d.shim_pids().len() == d.ok(&["ps", "-q"]).lines().count()
        });
        d.ok(&["rm", "-f", &n]);
        d.wait_for("no shim left", Duration::from_secs(5), || d.shim_pids().is_empty());
    }
    assert!(mounts_under(&d.state()).is_empty(), "{:?}", mounts_under(&d.state()));
}

/// Issue 10, item 12: the exit a shim recorded before it was lost comes back
/// through the protocol (`shim delete`'s DeleteResponse), exact.
#[test]
fn an_exit_recorded_by_a_shim_lost_since_is_kept() {
    let mut d = Daemon::start();
    d.load_busybox();
    let ctl = tempfile::tempdir().unwrap();
    let vol = format!("{}:/ctl:ro", ctl.path().display());
    d.ok(&["run", "-d", "--name", "quitter", "-v", &vol, "busybox", "sh", "-c", "while [ ! -f /ctl/go ]; do usleep 10000; done; exit 7"]);
    let id = inspect(&d, "quitter", "{{.Id}}");
    let shim = shim_of(&d, "quitter");
    d.kill9();
    std::fs::write(ctl.path().join("go"), "").unwrap();
    wait_until("the shim records the exit", Duration::from_secs(10), || d.state().join("containers").join(&id).join("exit").exists());
    sigkill(shim);
    wait_until("the shim gone", Duration::from_secs(5), || d.shim_pids().is_empty());
    d.spawn();
    assert_eq!(inspect(&d, "quitter", "{{.State.Status}} {{.State.ExitCode}}"), "exited 7");
    assert_ne!(inspect(&d, "quitter", "{{.State.FinishedAt}}"), "0001-01-01T00:00:00Z");
    assert!(!d.state().join("containers").join(&id).exists(), "bundle cleaned");
    d.ok(&["rm", "quitter"]);
}
