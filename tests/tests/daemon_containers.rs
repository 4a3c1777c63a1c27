//! Containers through `rind` and a private `rindd`: the docker round trip,
//! exit codes, every `run` flag seen from inside, an interactive terminal,
//! restart policies, and that `rm -f` leaves nothing behind.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rind_tests::daemon::Daemon;
use rind_tests::*;

fn daemon() -> Daemon {
    let d = Daemon::start();
    d.load_busybox();
    d
}

/// Polls `f` for up to `d`; true if it held.
fn wait_until_or_not(d: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

fn inspect(d: &Daemon, id: &str, f: &str) -> String {
    d.ok(&["inspect", "-f", f, id]).trim().to_string()
}

#[test]
fn run_exec_logs_stop_rm_round_trip() {
    let d = daemon();
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "rt",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; echo hello; while true; do sleep 0.1; done",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    wait_until("hello in logs", Duration::from_secs(5), || d.ok(&["logs", "rt"]).contains("hello"));
    assert_eq!(d.ok(&["logs", "rt"]), "hello\n");
    assert!(d.ok(&["ps"]).contains("rt"));
    assert_eq!(d.ok(&["ps", "-q"]).trim(), &id[..12]);
    assert_eq!(inspect(&d, "rt", "{{.State.Status}} {{.State.Running}}"), "running true");
    // exec: output, exit code, env, user, workdir.
    let out = d.rind(&["exec", "-e", "X=1", "-u", "1000", "-w", "/tmp", "rt", "sh", "-c", "echo $X $(id -u) $(pwd); exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1 1000 /tmp\n");
    let mut child = d.rind_cmd().args(["exec", "-i", "rt", "cat"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"through stdin\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "through stdin\n");
    assert!(d.ok(&["top", "rt"]).contains("sleep"));
    d.ok(&["pause", "rt"]);
    assert_eq!(inspect(&d, "rt", "{{.State.Status}}"), "paused");
    assert!(!d.rind(&["exec", "rt", "true"]).status.success(), "exec into a paused container");
    d.ok(&["unpause", "rt"]);
    d.ok(&["stop", "rt"]);
    // Exit 0 (not 137): the trap ended it, not the SIGKILL after the timeout.
    assert_eq!(inspect(&d, "rt", "{{.State.Status}} {{.State.ExitCode}}"), "exited 0");
    assert_ne!(inspect(&d, "rt", "{{.State.FinishedAt}}"), "0001-01-01T00:00:00Z");
    assert_eq!(d.ok(&["logs", "rt"]), "hello\nbye\n");
    assert_eq!(d.ok(&["logs", "--tail", "1", "rt"]), "bye\n");
    assert_eq!(d.ok(&["logs", "--since", "1h", "rt"]), "hello\nbye\n");
    assert_eq!(d.ok(&["logs", "--since", "4000000000", "rt"]), "", "nothing after a time in the future");
    assert!(d.ok(&["logs", "-t", "rt"]).starts_with("20"), "timestamps");
    assert_eq!(d.ok(&["wait", "rt"]).trim(), "0");
    // start again; rm refuses a running container unless forced.
    d.ok(&["start", "rt"]);
    let out = d.rind(&["rm", "rt"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    d.ok(&["rename", "rt", "rt2"]);
    d.ok(&["rm", "-f", "rt2"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let out = d.rind(&["logs", "rt2"]);
    assert!(stderr(&out).contains("no such container"), "{}", stderr(&out));
}

#[test]
fn run_exit_codes_are_dockers() {
    let d = daemon();
    let code = |args: &[&str]| d.rind(args).status.code();
    assert_eq!(code(&["run", "--rm", "busybox", "sh", "-c", "exit 42"]), Some(42));
    assert_eq!(code(&["run", "--rm", "busybox", "true"]), Some(0));
    assert_eq!(code(&["run", "--rm", "busybox", "/no/such/binary"]), Some(127));
    assert_eq!(code(&["run", "--rm", "busybox", "/etc"]), Some(126));
    let out = d.rind(&["run", "--rm", "nosuchimage", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("nosuchimage"), "{}", stderr(&out));
    assert_eq!(code(&["run", "--rm", "--restart", "sometimes", "busybox", "true"]), Some(125));
    // --rm removed every one of them, even those that never started.
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let out = d.rind(&["run", "--name", "dup", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(0));
    let out = d.rind(&["run", "--name", "dup", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("already in use"), "{}", stderr(&out));
    let out = d.rind(&["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!((stdout(&out).as_str(), stderr(&out).as_str()), ("out\n", "err\n"));
    // Bad input: a clear error naming what was wrong, and no container left.
    for (args, names) in [
        (&["--network", "bridge"][..], "bridge"),
        (&["--cpus", "-1"][..], "cpus"),
        (&["--memory", "lots"][..], "--memory"),
        (&["-w", "relative"][..], "relative"),
        (&["-v", "/no/such/dir:/x"][..], "/no/such/dir"),
        (&["--security-opt", "apparmor=x"][..], "apparmor=x"),
        (&["--stop-signal", "SIGNOPE"][..], "SIGNOPE"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend(["busybox", "true"]);
        let out = d.rind(&a);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(stderr(&out).contains(names), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(d.ok(&["ps", "-aq"]).lines().count(), 1, "only the container named dup");
    assert_eq!(std::fs::read_dir(d.root().join("containers")).unwrap().count(), 1, "no data dir left by a refused create");
}

#[test]
fn each_run_flag_is_visible_inside() {
    let d = daemon();
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), "from host").unwrap();
    std::fs::write(t.path().join("env"), "# comment\nFROM_FILE=yes\n").unwrap();
    let vol = format!("{}:/data:ro", t.path().display());
    let envf = t.path().join("env").display().to_string();
    let run = |args: &[&str]| -> String {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        d.ok(&a)
    };
    assert_eq!(run(&["-e", "A=1", "--env-file", &envf, "busybox", "sh", "-c", "echo $A $FROM_FILE"]), "1 yes\n");
    assert_eq!(run(&["-v", &vol, "busybox", "cat", "/data/f"]), "from host");
    assert!(!d.rind(&["run", "--rm", "-v", &vol, "busybox", "touch", "/data/x"]).status.success(), "read-only bind");
    assert!(run(&["--tmpfs", "/scratch", "busybox", "grep", " /scratch ", "/proc/mounts"]).contains("tmpfs"));
    assert_eq!(run(&["-w", "/tmp", "busybox", "pwd"]), "/tmp\n");
    assert_eq!(run(&["-u", "1000:1001", "busybox", "id", "-u"]), "1000\n");
    assert_eq!(run(&["-u", "1000:1001", "busybox", "id", "-g"]), "1001\n");
    assert_eq!(run(&["-u", "nobody", "busybox", "sh", "-c", "id -u; id -g"]), "65534\n65534\n", "names from the image's passwd");
    let out = d.rind(&["run", "--rm", "-u", "ghost", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("unable to find user ghost"), "{}", stderr(&out));
    assert_eq!(run(&["--entrypoint", "echo", "busybox", "via", "entrypoint"]), "via entrypoint\n");
    assert_eq!(
        run(&["--hostname", "boxy", "busybox", "sh", "-c", "hostname; cat /etc/hostname; grep boxy /etc/hosts | wc -l"]),
        "boxy\nboxy\n1\n"
    );
    assert!(run(&["busybox", "cat", "/etc/resolv.conf"]).len() == std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default().len());
    assert!(!d.rind(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]).status.success(), "read-only root");
    assert!(d.rind(&["run", "--rm", "--read-only", "--tmpfs", "/w", "busybox", "touch", "/w/x"]).status.success());
    let mem = run(&[
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    assert_eq!(mem.trim(), (64 << 20).to_string());
    let cpu = run(&["--cpus", "0.5", "busybox", "sh", "-c", "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null | head -1"]);
    assert!(cpu.starts_with("50000"), "{cpu}");
    let pids =
        run(&["--pids-limit", "17", "busybox", "sh", "-c", "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"]);
    assert!(pids.contains("17"), "{pids}");
    let capeff = |args: &[&str]| -> u64 {
        let mut a = args.to_vec();
        a.extend(["busybox", "grep", "CapEff", "/proc/self/status"]);
        let s = run(&a);
        u64::from_str_radix(s.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let default = capeff(&[]);
    assert_eq!(default.count_ones(), 14, "docker's default set: {default:x}");
    const NET_ADMIN: u64 = 1 << 12;
    const CHOWN: u64 = 1 << 0;
    assert!(capeff(&["--cap-add", "NET_ADMIN"]) & NET_ADMIN != 0);
    assert!(capeff(&["--cap-drop", "CHOWN"]) & CHOWN == 0);
    assert!(capeff(&["--cap-drop", "ALL"]) == 0);
    assert!(capeff(&["--privileged"]).count_ones() > 30);
    assert!(run(&["busybox", "grep", "Seccomp:", "/proc/self/status"]).contains('2'), "the default seccomp profile");
    assert!(run(&["--security-opt", "seccomp=unconfined", "busybox", "grep", "Seccomp:", "/proc/self/status"]).contains('0'));
    assert!(!d.rind(&["run", "--rm", "busybox", "unshare", "-m", "true"]).status.success(), "seccomp/caps refuse unshare");
    assert_eq!(run(&["--network", "none", "busybox", "ls", "/sys/class/net"]).trim(), "lo");
    let host_ifaces = std::fs::read_dir("/sys/class/net").unwrap().count();
    assert_eq!(run(&["--network", "host", "busybox", "ls", "/sys/class/net"]).split_whitespace().count(), host_ifaces);
    // Flags that show in inspect.
    d.ok(&[
        "create",
        "--name",
        "cfg",
        "--restart",
        "on-failure:3",
        "--label",
        "tier=db",
        "--stop-signal",
        "USR1",
        "--stop-timeout",
        "2",
        "busybox",
        "true",
    ]);
    assert_eq!(inspect(&d, "cfg", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"), "on-failure:3");
    assert_eq!(inspect(&d, "cfg", "{{.Config.Labels.tier}} {{.Config.StopSignal}} {{.Config.StopTimeout}}"), "db USR1 2");
    assert_eq!(d.ok(&["ps", "-a", "--filter", "label=tier=db", "--format", "{{.Names}}"]), "cfg\n");
    d.ok(&["rm", "cfg"]);
    // --stop-signal and --stop-timeout act on stop.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 12' USR1; while true; do sleep 0.1; done",
    ]);
    d.ok(&["stop", "sig"]);
    assert_eq!(inspect(&d, "sig", "{{.State.ExitCode}}"), "12");
    d.ok(&["rm", "sig"]);
    d.ok(&["run", "-d", "--name", "slow", "--stop-timeout", "1", "busybox", "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]);
    let t0 = Instant::now();
    d.ok(&["stop", "slow"]);
    // 137: SIGKILL, after the 1 s timeout was waited out and before docker's
    // default 10 s would have been (the bound scaled for a slow machine).
    assert_eq!(inspect(&d, "slow", "{{.State.ExitCode}}"), "137");
    assert!(t0.elapsed() >= Duration::from_secs(1), "stopped before its 1 s stop timeout: {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(1) + patience(Duration::from_secs(4)), "not the 1 s stop timeout: {:?}", t0.elapsed());
    d.ok(&["rm", "slow"]);
    // -d and --name.
    let id = d.ok(&["run", "-d", "--name", "named", "busybox", "sleep", "100000"]);
    assert_eq!(inspect(&d, "named", "{{.Id}}"), id.trim());
    d.ok(&["rm", "-f", "named"]);
    // --rm: gone after exit.
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

fn set_winsize(fd: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads the winsize we pass.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Reads the pty master until `want` shows up (or fails after a while).
fn read_until(master: &mut std::fs::File, seen: &mut String, want: &str) {
    let deadline = Instant::now() + patience(Duration::from_secs(10));
    while !seen.contains(want) {
        assert!(Instant::now() < deadline, "waited for {want:?}; the terminal shows {seen:?}");
        read_some(master, seen, Duration::from_millis(100));
    }
}

/// Appends what the pty master has within `wait` to `seen`.
fn read_some(master: &mut std::fs::File, seen: &mut String, wait: Duration) {
    let mut fds = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(master), nix::poll::PollFlags::POLLIN)];
    let ms = nix::poll::PollTimeout::try_from(wait.as_millis() as i32).unwrap_or(nix::poll::PollTimeout::ZERO);
    if nix::poll::poll(&mut fds, ms).unwrap_or(0) > 0 {
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(0) | Err(_) => std::thread::sleep(Duration::from_millis(10)),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}

#[test]
fn interactive_terminal_session_through_a_pty() {
    let d = daemon();
    let pty = nix::pty::openpty(None, None).unwrap();
    set_winsize(&pty.master, 33, 101);
    let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut child = d
        .rind_cmd()
        .args(["run", "-it", "--name", "tty", "busybox", "sh"])
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave))
        .spawn()
        .unwrap();
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master.try_clone().unwrap());
    let mut seen = String::new();
    read_until(&mut master, &mut seen, "# ");
    master.write_all(b"stty size; echo $((6*7))x\r").unwrap();
    read_until(&mut master, &mut seen, "42x");
    assert!(seen.contains("33 101"), "the window size reached the container: {seen:?}");
    // A resize reaches it too (asked again until the shell sees it: rind
    // forwards the SIGWINCH asynchronously).
    set_winsize(&pty.master, 40, 120);
    // SAFETY: kill(2) sends SIGWINCH to our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGWINCH) };
    let deadline = Instant::now() + patience(Duration::from_secs(10));
    let mut asked = 0;
    while !seen.contains("40 120") {
        assert!(Instant::now() < deadline, "the resize never reached the container: {seen:?}");
        asked += 1;
        master.write_all(format!("stty size; echo asked{asked}\r").as_bytes()).unwrap();
        read_until(&mut master, &mut seen, &format!("asked{asked}\r\n"));
    }
    // ctrl-p ctrl-q detaches and leaves the container running.
    master.write_all(b"\x10\x11").unwrap();
    let status = wait_child(&mut child);
    assert_eq!(status, Some(0));
    assert_eq!(inspect(&d, "tty", "{{.State.Status}}"), "running");
    // attach again, exit with a code: rind exits with it.
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut child =
        d.rind_cmd().args(["attach", "tty"]).stdin(slave(&pty.slave)).stdout(slave(&pty.slave)).stderr(slave(&pty.slave)).spawn().unwrap();
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    // Attached once an empty line brings a prompt back from the shell.
    let mut seen = String::new();
    let deadline = Instant::now() + patience(Duration::from_secs(10));
    while !seen.contains("# ") {
        assert!(Instant::now() < deadline, "attach brought no prompt: {seen:?}");
        master.write_all(b"\r").unwrap();
        read_some(&mut master, &mut seen, Duration::from_millis(200));
    }
    master.write_all(b"echo again; exit 5\r").unwrap();
    read_until(&mut master, &mut seen, "again");
    assert_eq!(wait_child(&mut child), Some(5));
    assert_eq!(inspect(&d, "tty", "{{.State.ExitCode}}"), "5");
    // The terminal's output is in the log too.
    assert!(d.ok(&["logs", "tty"]).contains("42x"));
}

fn wait_child(c: &mut std::process::Child) -> Option<i32> {
    let deadline = Instant::now() + patience(Duration::from_secs(15));
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s.code();
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("rind did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn restart_policies_with_back_off() {
    let d = daemon();
    d.ok(&["run", "-d", "--name", "fail", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1"]);
    d.ok(&["run", "-d", "--name", "ok", "--restart", "on-failure", "busybox", "true"]);
    d.ok(&["run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2; exit 4"]);
    d.ok(&["run", "-d", "--name", "never", "busybox", "sh", "-c", "exit 1"]);
    d.wait_for("on-failure:2 gives up after 2 restarts", Duration::from_secs(30), || {
        inspect(&d, "fail", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
    });
    // rindd says when its policy decides against a restart: after that, nothing may change.
    d.wait_for("the decision not to restart fail", Duration::from_secs(30), || not_restarted(&d, "fail") == 1);
    assert_eq!(inspect(&d, "fail", "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}"), "exited 2 1");
    assert_eq!(inspect(&d, "ok", "{{.State.Status}} {{.RestartCount}}"), "exited 0");
    assert_eq!(inspect(&d, "never", "{{.State.Status}} {{.RestartCount}}"), "exited 0");
    d.wait_for("always restarts", Duration::from_secs(30), || inspect(&d, "always", "{{.RestartCount}}").parse::<u32>().unwrap() >= 2);
    // Between its runs it shows as restarting, as docker's ps does.
    d.wait_for("restarting during the back-off", Duration::from_secs(30), || {
        inspect(&d, "always", "{{.State.Status}} {{.State.Restarting}}") == "restarting true"
    });
    // (A wait too: on a slow machine the back-off may end between two looks.)
    d.wait_for("ps shows Restarting", Duration::from_secs(30), || {
        d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]).contains("always Restarting (4)")
    });
    // stop wins over always, even during the back-off.
    d.ok(&["stop", "-t", "1", "always"]);
    let n = inspect(&d, "always", "{{.RestartCount}}");
    d.wait_for("the decision not to restart always", Duration::from_secs(30), || not_restarted(&d, "always") == 1);
    assert_eq!(inspect(&d, "always", "{{.State.Status}} {{.RestartCount}}"), format!("exited {n}"));
    // unless-stopped: stopped by the user stays stopped across a daemon restart; always does not.
    d.ok(&["run", "-d", "--name", "us", "--restart", "unless-stopped", "busybox", "sleep", "100000"]);
    d.ok(&["stop", "-t", "0", "us"]);
    d.wait_for("the decision not to restart us", Duration::from_secs(30), || not_restarted(&d, "us") == 1);
    let mut d = d;
    d.kill9();
    d.spawn();
    d.wait_for("the daemon's start not restarting us", Duration::from_secs(30), || not_restarted(&d, "us") == 2);
    assert_eq!(inspect(&d, "us", "{{.State.Status}}"), "exited");
    d.wait_for("always starts with the daemon", Duration::from_secs(30), || inspect(&d, "always", "{{.State.Status}}") == "running");
}

/// How often rindd's log says its restart policy left container `name` stopped.
fn not_restarted(d: &Daemon, name: &str) -> usize {
    d.log().lines().filter(|l| l.contains("not restarting") && l.contains(&format!("name={name} "))).count()
}

#[test]
fn rm_f_of_everything_leaves_nothing() {
    let d = daemon();
    for i in 0..4 {
        let n = format!("c{i}");
        d.ok(&["run", "-d", "--name", &n, "-i", "-t", "busybox", "sleep", "100000"]);
    }
    d.ok(&["run", "-d", "--name", "exited", "busybox", "true"]);
    d.ok(&["pause", "c1"]);
    let ids: Vec<String> = d.ok(&["ps", "-aq"]).split_whitespace().map(String::from).collect();
    let full: Vec<String> = ids.iter().map(|i| inspect(&d, i, "{{.Id}}")).collect();
    // The exited one may still be on its way out: wait for its exit to be recorded.
    d.wait_for("the exit of `exited`", Duration::from_secs(10), || inspect(&d, "exited", "{{.State.Status}}") == "exited");
    let pids: Vec<i32> = ids.iter().map(|i| inspect(&d, i, "{{.State.Pid}}").parse().unwrap()).filter(|p| *p > 0).collect();
    assert_eq!(pids.len(), 4, "{}", d.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]));
    assert_eq!(d.shim_pids().len(), 4);
    let sockets: Vec<String> = full
        .iter()
        .filter_map(|id| std::fs::read_to_string(d.state().join("containers").join(id).join("address")).ok())
        .map(|a| a.trim().trim_start_matches("unix://").to_string())
        .collect();
    assert_eq!(sockets.len(), 4);
    for id in &ids {
        d.ok(&["rm", "-f", id]);
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert!(mounts_under(d.dir.path()).is_empty(), "mounts left: {:?}", mounts_under(d.dir.path()));
    wait_until("no shim left", Duration::from_secs(2), || d.shim_pids().is_empty());
    for p in pids {
        assert!(!pid_alive(p), "process {p} left");
    }
    let listing = |p: std::path::PathBuf| std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0);
    assert_eq!(listing(d.state().join("containers")), 0, "bundles left");
    assert_eq!(listing(d.root().join("containers")), 0, "container data left");
    for id in &full {
        assert!(!std::path::Path::new("/run/rind/runtime/rind").join(id).exists(), "runtime state left for {id}");
        let found = std::process::Command::new("find")
            .args(["/sys/fs/cgroup", "-maxdepth", "4", "-name", &format!("*{}*", &id[..12])])
            .output()
            .unwrap();
        assert_eq!(stdout(&found), "", "cgroups left for {id}");
    }
    for s in &sockets {
        assert!(!std::path::Path::new(s).exists(), "shim socket {s} left");
    }
    // No database rows: a fresh daemon on the same root sees nothing.
    let mut d = d;
    d.kill9();
    d.spawn();
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn events_stats_kill_restart_follow_prune_info() {
    let d = daemon();
    let mut events = d.rind_cmd().arg("events").stdout(Stdio::piped()).spawn().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        let out = events.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                seen.lock().unwrap().push_str(&(line + "\n"));
            }
        })
    };
    // Subscribed once a probe's events come through (one made before may be missed).
    let mut probe = 0;
    while !seen.lock().unwrap().contains("probe") {
        assert!(probe < 50, "rind events shows nothing");
        probe += 1;
        d.ok(&["create", "--name", "probe", "busybox", "true"]);
        d.ok(&["rm", "probe"]);
        wait_until_or_not(Duration::from_millis(200), || seen.lock().unwrap().contains("probe"));
    }
    d.ok(&["run", "-d", "--name", "svc", "busybox", "sh", "-c", "trap 'echo got HUP' HUP; while true; do sleep 0.1; done"]);
    let stats = d.ok(&["stats", "--no-stream", "svc"]);
    assert!(stats.contains("svc") && stats.contains("MEM USAGE"), "{stats}");
    d.ok(&["kill", "-s", "HUP", "svc"]);
    wait_until("HUP handled", Duration::from_secs(5), || d.ok(&["logs", "svc"]).contains("got HUP"));
    assert_eq!(inspect(&d, "svc", "{{.State.Status}}"), "running", "HUP is not a stop");
    let pid = inspect(&d, "svc", "{{.State.Pid}}");
    d.ok(&["restart", "-t", "0", "svc"]);
    assert_eq!(inspect(&d, "svc", "{{.State.Status}}"), "running");
    assert_ne!(inspect(&d, "svc", "{{.State.Pid}}"), pid, "a new process");
    // exec -d runs in the background; exec -t gets a terminal.
    d.ok(&["exec", "-d", "svc", "sh", "-c", "echo detached > /tmp/d"]);
    wait_until("detached exec ran", Duration::from_secs(5), || d.ok(&["exec", "svc", "cat", "/tmp/d"]) == "detached\n");
    assert_eq!(d.ok(&["exec", "-t", "svc", "sh", "-c", "[ -t 1 ] && echo tty"]).trim(), "tty");
    // logs -f follows until the container stops.
    d.ok(&["run", "-d", "--name", "short", "busybox", "sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.2; done"]);
    let out = d.ok(&["logs", "-f", "short"]);
    assert_eq!(out, "n1\nn2\nn3\n");
    let info = d.ok(&["info"]);
    assert!(info.contains("Containers: 2") && info.contains("Running: 1") && info.contains("Storage Driver: overlayfs"), "{info}");
    d.ok(&["kill", "svc"]);
    assert_eq!(d.ok(&["wait", "svc"]).trim(), "137");
    let pruned = d.ok(&["container", "prune", "-f"]);
    assert_eq!(pruned.lines().count(), 3, "{pruned}");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let svc_events = || seen.lock().unwrap().lines().filter(|l| l.contains("name=svc")).map(|l| l.to_string() + "\n").collect::<String>();
    wait_until("svc's destroy event", Duration::from_secs(10), || svc_events().contains("container destroy "));
    events.kill().unwrap();
    let _ = events.wait();
    reader.join().unwrap();
    let ev = svc_events();
    for action in ["create", "start", "kill", "die", "stop", "destroy"] {
        assert!(ev.contains(&format!("container {action} ")), "no {action} event in {ev}");
    }
    assert!(ev.contains("exitCode=137"), "{ev}");
}

#[test]
fn the_image_config_gives_the_defaults() {
    let d = daemon();
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    make_rootfs(&rootfs);
    std::fs::create_dir_all(rootfs.join("srv/app")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0::/:/bin/sh\napp:x:4000:4001::/:/bin/sh\n").unwrap();
    let config = serde_json::json!({
        "Entrypoint": ["sh", "-c"],
        "Cmd": ["echo $GREETING from $(pwd) as $(id -u):$(id -g); grep -c ' /data ' /proc/mounts"],
        "Env": ["PATH=/bin", "GREETING=hi"],
        "WorkingDir": "/srv/app",
        "User": "app",
        "Labels": {"org.example.tier": "web"},
        "StopSignal": "SIGUSR2",
        "Volumes": {"/data": {}}
    });
    let archive = t.path().join("app.tar");
    image::write_oci_archive_with(&rootfs, "app:1", config, &archive);
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(d.ok(&["run", "--name", "app", "app:1"]), "hi from /srv/app as 4000:4001\n1\n");
    assert_eq!(inspect(&d, "app", "{{.Config.StopSignal}} {{.Config.Labels.org.example.tier}}"), "SIGUSR2 <no value>");
    assert!(d.ok(&["inspect", "-f", "{{json .Config.Labels}}", "app"]).contains(r#""org.example.tier":"web""#));
    // exec runs as the image's user unless told otherwise, names resolved the same way.
    d.ok(&["run", "-d", "--name", "appd", "--entrypoint", "sleep", "app:1", "100"]);
    assert_eq!(d.ok(&["exec", "appd", "id", "-u"]), "4000\n");
    assert_eq!(d.ok(&["exec", "-u", "root", "appd", "id", "-u"]), "0\n");
    d.ok(&["rm", "-f", "appd"]);
    // Run options override the image's.
    let out = d.ok(&["run", "--rm", "-u", "0", "-w", "/", "-e", "GREETING=yo", "app:1", "echo $GREETING $(pwd) $(id -u)"]);
    assert_eq!(out, "yo / 0\n");
    // The volume lives outside the overlay and goes with the container.
    let id = inspect(&d, "app", "{{.Id}}");
    assert!(d.root().join("containers").join(&id).join("volumes/0").is_dir());
    d.ok(&["rm", "app"]);
    assert!(!d.root().join("containers").join(&id).exists());
}

#[test]
fn inspect_shows_an_oom_kill() {
    let d = daemon();
    // 64 MiB through dd's buffer in an 8 MiB cgroup: the kernel kills it.
    let out = d.rind(&["run", "--name", "hog", "-m", "8m", "busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    // TaskOOM and TaskExit are separate events: wait for the first too.
    d.wait_for("OOMKilled", Duration::from_secs(10), || inspect(&d, "hog", "{{.State.OOMKilled}}") == "true");
    assert_eq!(inspect(&d, "hog", "{{.State.Status}} {{.State.ExitCode}}"), "exited 137");
    d.ok(&["run", "--name", "fine", "-m", "8m", "busybox", "true"]);
    assert_eq!(inspect(&d, "fine", "{{.State.OOMKilled}} {{.State.ExitCode}}"), "false 0");
}
