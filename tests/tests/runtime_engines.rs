//! rind-runtime in place of runc under the engines users run: Debian's
//! Docker 20.10 and podman 4.3 drive each case once with runc and once
//! with rind-runtime, and the outcomes (exit code and what the container
//! printed) must be the same. Every difference is reported; the ones that
//! remain on purpose are listed in `KNOWN` with the reason.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rind_tests::engines::{Engine, Oci, IMAGE};
use rind_tests::*;

/// Differences kept on purpose: (engine, case, why).
const KNOWN: &[(&str, &str, &str)] = &[(
    "docker",
    "privileged",
    "runc cannot run it on this machine: root's bounding set lacks CAP_SYS_RESOURCE and runc asks for every capability \
     (\"unable to apply caps: operation not permitted\"); rind-runtime gives what the bounding set has",
)];

/// Reads a cgroup file under v2's name, else v1's (controller/file).
const CG: &str = "cg() { cat /sys/fs/cgroup/$1 2>/dev/null || cat /sys/fs/cgroup/$2 2>/dev/null || echo no-file; }; ";

struct Case {
    name: &'static str,
    flags: &'static [&'static str],
    /// A shell script (run with `sh -c`), or with `argv:` the command's argv.
    script: &'static str,
    exit: i32,
}

const fn case(name: &'static str, flags: &'static [&'static str], script: &'static str) -> Case {
    Case { name, flags, script, exit: 0 }
}

/// Cases that touch cgroups: they run in the cgroup v2 guest too.
const CGROUP_CASES: &[Case] = &[
    case("memory", &["-m", "64m"], "cg memory.max memory/memory.limit_in_bytes"),
    case("memory-swap", &["-m", "64m", "--memory-swap", "128m"], "cg memory.swap.max memory/memory.memsw.limit_in_bytes"),
    case("memory-reservation", &["--memory-reservation", "32m"], "cg memory.low memory/memory.soft_limit_in_bytes"),
    case("cpus", &["--cpus", "0.5"], "cg cpu.max cpu/cpu.cfs_quota_us; cg cpu.max cpu/cpu.cfs_period_us"),
    case("cpu-shares", &["--cpu-shares", "512"], "cg cpu.weight cpu/cpu.shares"),
    case("cpuset-cpus", &["--cpuset-cpus", "0"], "cg cpuset.cpus cpuset/cpuset.cpus"),
    case("pids-limit", &["--pids-limit", "50"], "cg pids.max pids/pids.max"),
    case("blkio-weight", &["--blkio-weight", "300"], "cg io.bfq.weight blkio/blkio.bfq.weight; cg io.weight blkio/blkio.weight"),
    case("no-limits", &[], "cg memory.max memory/memory.limit_in_bytes; cg pids.max pids/pids.max; cg cpu.max cpu/cpu.cfs_quota_us"),
    case("device", &["--device", "/dev/null:/dev/mynull"], "echo hi > /dev/mynull && echo wrote; ls -l /dev/mynull | cut -c1"),
    Case {
        name: "oom-kill",
        flags: &["-m", "8m", "--memory-swap", "8m"],
        script: "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived",
        exit: 137,
    },
];

/// Everyday flags that do not touch cgroups.
const OTHER_CASES: &[Case] = &[
    case("plain", &[], "echo ok"),
    Case { name: "exit-code", flags: &[], script: "exit 3", exit: 3 },
    Case { name: "no-such-binary", flags: &[], script: "argv:/no/such/binary", exit: 127 },
    Case { name: "not-executable", flags: &[], script: "argv:/etc", exit: 126 },
    case("env-workdir-hostname", &["-e", "A=b", "-w", "/tmp", "--hostname", "box"], "echo $A; pwd; hostname"),
    case("cap-add", &["--cap-add", "NET_ADMIN"], "grep -E '^Cap(Eff|Bnd|Prm|Inh|Amb)' /proc/self/status"),
    case("cap-drop-all", &["--cap-drop", "ALL"], "grep -E '^Cap(Eff|Bnd|Prm|Inh|Amb)' /proc/self/status"),
    case("default-caps", &[], "grep -E '^Cap(Eff|Bnd|Prm|Inh|Amb)' /proc/self/status"),
    case(
        "privileged",
        &["--privileged"],
        "grep -E '^Cap(Eff|Bnd)' /proc/self/status; grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1",
    ),
    case("read-only", &["--read-only"], "touch /x 2>/dev/null || echo read-only; touch /tmp/x 2>/dev/null || echo tmp-read-only"),
    case("tmpfs", &["--tmpfs", "/scratch:size=1m"], "grep ' /scratch ' /proc/mounts | cut -d' ' -f1-3; touch /scratch/x && echo writable"),
    case("user", &["-u", "1000:1001"], "id"),
    case("volume", &["-v", "{vol}:/data:ro"], "cat /data/f; touch /data/x 2>/dev/null || echo read-only"),
    case("ulimit", &["--ulimit", "nofile=1024:2048"], "grep 'open files' /proc/self/limits"),
    case("sysctl", &["--sysctl", "kernel.msgmax=8192"], "cat /proc/sys/kernel/msgmax"),
    case("shm-size", &["--shm-size", "32m"], "df -k /dev/shm | tail -1 | awk '{print $2}'"),
    case("ipc-host", &["--ipc", "host"], "readlink /proc/self/ns/ipc"),
    case("pid-host", &["--pid", "host"], "readlink /proc/self/ns/pid; [ -d /proc/1 ] && echo sees-host-pid-1"),
    case("seccomp-default", &[], "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"),
    case("seccomp-unconfined", &["--security-opt", "seccomp=unconfined"], "grep -E '^Seccomp:' /proc/self/status"),
    case("no-new-privileges", &["--security-opt", "no-new-privileges"], "grep -E '^NoNewPrivs:' /proc/self/status"),
    case("init", &["--init"], "cat /proc/1/comm; grep PPid /proc/$$/status"),
    case("tty", &["-t"], "tty; stty size 2>/dev/null | wc -w"),
    case(
        "masked-paths",
        &[],
        "cat /proc/kcore 2>&1 | wc -c; ls /sys/firmware 2>/dev/null | wc -l; touch /proc/sysrq-trigger 2>/dev/null || echo ro",
    ),
];

/// Runs one case with `oci`: "exit=N" and the container's stdout.
fn run_case(e: &Engine, oci: Oci, c: &Case, vol: &str) -> String {
    let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
    args.extend(e.run_flags(oci));
    args.extend(c.flags.iter().map(|f| f.replace("{vol}", vol)));
    args.push(IMAGE.into());
    match c.script.strip_prefix("argv:") {
        Some(argv) => args.extend(argv.split(' ').map(String::from)),
        None => args.extend(["sh".into(), "-c".into(), format!("{CG}{}", c.script)]),
    }
    let out = e.command_for(oci).args(&args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let mut s = format!("exit={code}\n{}", stdout(&out));
    if code != c.exit {
        // Not the expected outcome: show why (it differs between runtimes in words only).
        s.push_str(&format!("[stderr: {}]", stderr(&out).trim()));
    }
    s
}

/// Compares runc and rind on each case; fails on a difference not in KNOWN
/// and on a case whose runc outcome is not the expected one (a broken case).
fn compare(e: &Engine, cases: &[Case]) {
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("f"), "from the host\n").unwrap();
    let vol = vol.path().display().to_string();
    let mut report = String::new();
    let mut failures = Vec::new();
    for c in cases {
        let runc = run_case(e, Oci::Runc, c, &vol);
        let rind = run_case(e, Oci::Rind, c, &vol);
        let same = runc == rind;
        let known = KNOWN.iter().find(|(eng, name, _)| *eng == e.name() && *name == c.name);
        report.push_str(&format!("{:>7} {:<22} {}\n", e.name(), c.name, if same { "same" } else { "DIFFERENT" }));
        match (same, known) {
            (true, Some(_)) => failures.push(format!("{}: listed in KNOWN but now the same: remove it", c.name)),
            (false, None) => failures.push(format!("{}:\n  runc: {runc:?}\n  rind: {rind:?}", c.name)),
            (false, Some((_, _, why))) => eprintln!("{}: differs, as known: {why}\n  runc: {runc:?}\n  rind: {rind:?}", c.name),
            (true, None) if !runc.starts_with(&format!("exit={}\n", c.exit)) => {
                failures.push(format!("{}: the case itself fails (under both):\n{runc}", c.name))
            }
            (true, None) => {}
        }
    }
    eprintln!("{report}");
    assert!(failures.is_empty(), "{} under {}:\n{}", failures.len(), e.name(), failures.join("\n"));
}

/// `-it` through a pseudo-terminal: the shell's prompt, a command's output
/// and the exit code come back; then `exec -it` into a running container.
fn interactive(e: &Engine, oci: Oci) -> String {
    let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "-it".into()];
    args.extend(e.run_flags(oci));
    args.extend([IMAGE.into(), "sh".into()]);
    let mut run = e.command_for(oci);
    run.args(&args);
    let (code, seen) = through_pty(run, b"echo $((6*7))x; exit 4\r", "42x");
    let mut summary = format!("run -it: exit={code} saw-42x={}\n", seen.contains("42x"));
    let name = format!("it-{}", unique_id("c"));
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
    args.extend(e.run_flags(oci));
    args.extend([IMAGE.into(), "sleep".into(), "1000".into()]);
    let out = e.command_for(oci).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut exec = e.command_for(oci);
    exec.args(["exec", "-it", &name, "sh"]);
    let (code, seen) = through_pty(exec, b"tty; exit 5\r", "/dev/pts/");
    summary.push_str(&format!("exec -it: exit={code} tty={}\n", seen.contains("/dev/pts/")));
    let _ = e.verb(oci, &["rm", "-f", &name]);
    summary
}

/// Runs `cmd` on a new pty, types `input` once `sh` shows a prompt, and
/// returns its exit code and everything the terminal showed.
fn through_pty(mut cmd: std::process::Command, input: &[u8], want: &str) -> (i32, String) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut child = cmd.stdin(slave(&pty.slave)).stdout(slave(&pty.slave)).stderr(slave(&pty.slave)).spawn().unwrap();
    // Only the child may hold the terminal's slave side: its exit then ends our reads.
    drop(cmd);
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let mut m = master.try_clone().unwrap();
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = m.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let deadline = Instant::now() + patience(Duration::from_secs(30));
    let mut sent = false;
    let mut nudged = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the terminal session did not end; it showed {:?}", seen.lock().unwrap());
        }
        // Typed once the shell shows its prompt (earlier, the engine's
        // client may not yet relay the terminal); an empty line asks again.
        if !sent && seen.lock().unwrap().contains("# ") {
            master.write_all(input).unwrap();
            sent = true;
        } else if !sent && nudged.elapsed() > Duration::from_secs(1) {
            master.write_all(b"\r").unwrap();
            nudged = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(master);
    reader.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(want), "the terminal showed {seen:?}");
    (status.code().unwrap_or(-1), seen)
}

/// A container's life: exec, pause and unpause, top, stats, update, a signal
/// the process traps, stop with the trap's exit code, restart policies.
fn lifecycle(e: &Engine, oci: Oci) -> String {
    let name = format!("life-{}", unique_id("c"));
    let v = |args: &[&str]| {
        let out = e.verb(oci, args);
        assert!(out.status.success(), "{} {args:?} with {}: {}", e.name(), oci.name(), stderr(&out));
        stdout(&out)
    };
    let inspect = |f: &str| v(&["inspect", "--format", f, &name]).trim().to_string();
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone(), "-m".into(), "64m".into()];
    args.extend(e.run_flags(oci));
    args.extend([IMAGE.into(), "sh".into(), "-c".into()]);
    args.push("trap 'echo got-usr1' USR1; trap 'exit 7' TERM; echo up; while true; do sleep 0.1; done".into());
    let out = e.command_for(oci).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut s = String::new();
    wait_until("the container's traps", Duration::from_secs(20), || v(&["logs", &name]).contains("up"));
    s += &format!("exec: {}", v(&["exec", &name, "sh", "-c", "echo exec-ok; exit 0"]));
    let out = e.verb(oci, &["exec", &name, "sh", "-c", "exit 3"]);
    s += &format!("exec exit: {:?}\n", out.status.code());
    s += &format!("exec -t: {}", v(&["exec", "-t", &name, "tty"]).replace("\r\n", "\n"));
    v(&["pause", &name]);
    s += &format!("paused: {}\n", inspect("{{.State.Status}}"));
    let out = e.verb(oci, &["exec", &name, "true"]);
    s += &format!("exec while paused fails: {}\n", !out.status.success());
    v(&["unpause", &name]);
    s += &format!("unpaused: {}\n", inspect("{{.State.Status}}"));
    s += &format!("top shows sleep: {}\n", v(&["top", &name]).contains("sleep"));
    let stats = v(&["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", &name]);
    s += &format!("stats: {} limit-64MiB={}\n", stats.starts_with(&name), stats.contains("64MiB") || stats.contains("67.11MB"));
    v(&["update", "--memory", "96m", "--memory-swap", "192m", &name]);
    let script = format!("{CG}cg memory.max memory/memory.limit_in_bytes");
    s += &format!("updated memory: {}", v(&["exec", &name, "sh", "-c", &script]));
    v(&["kill", "--signal", "USR1", &name]);
    wait_until("USR1 trapped", Duration::from_secs(20), || v(&["logs", &name]).contains("got-usr1"));
    s += &format!("running after USR1: {}\n", inspect("{{.State.Running}}"));
    v(&["stop", &name]);
    s += &format!("stopped: {} {}\n", inspect("{{.State.Status}}"), inspect("{{.State.ExitCode}}"));
    v(&["rm", &name]);
    // kill: SIGKILL's 137.
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
    args.extend(e.run_flags(oci));
    args.extend([IMAGE.into(), "sleep".into(), "1000".into()]);
    assert!(e.command_for(oci).args(&args).output().unwrap().status.success());
    v(&["kill", &name]);
    s += &format!("killed: {}", v(&["wait", &name]));
    v(&["rm", &name]);
    // --restart on-failure:2 gives up after two restarts.
    let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone(), "--restart".into(), "on-failure:2".into()];
    args.extend(e.run_flags(oci));
    args.extend([IMAGE.into(), "sh".into(), "-c".into(), "exit 1".into()]);
    assert!(e.command_for(oci).args(&args).output().unwrap().status.success());
    wait_until("two restarts", Duration::from_secs(60), || inspect("{{.RestartCount}} {{.State.Status}}") == "2 exited");
    s += &format!("restarts: {}\n", inspect("{{.RestartCount}} {{.State.ExitCode}}"));
    v(&["rm", &name]);
    s
}

fn compare_sessions(e: &Engine, what: &str, f: impl Fn(&Engine, Oci) -> String) {
    let runc = f(e, Oci::Runc);
    let rind = f(e, Oci::Rind);
    eprintln!("{} {what} with runc:\n{runc}", e.name());
    assert_eq!(runc, rind, "{} {what}: rind-runtime differs from runc", e.name());
}

#[test]
fn docker_cgroup_cases_match_runc() {
    compare(&Engine::docker(), CGROUP_CASES);
}

#[test]
fn docker_everyday_flags_match_runc() {
    compare(&Engine::docker(), OTHER_CASES);
}

#[test]
fn docker_lifecycle_and_terminals_match_runc() {
    let e = Engine::docker();
    compare_sessions(&e, "lifecycle", lifecycle);
    compare_sessions(&e, "terminals", interactive);
}

#[test]
fn podman_cgroup_cases_match_runc() {
    compare(&Engine::podman(), CGROUP_CASES);
}

#[test]
fn podman_everyday_flags_match_runc() {
    compare(&Engine::podman(), OTHER_CASES);
}

#[test]
fn podman_lifecycle_and_terminals_match_runc() {
    let e = Engine::podman();
    compare_sessions(&e, "lifecycle", lifecycle);
    compare_sessions(&e, "terminals", interactive);
}
