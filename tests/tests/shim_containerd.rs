//! Debian's containerd drives containerd-shim-rind-v2 as runtime
//! io.containerd.rind.v2, with rind-runtime under it.

use std::process::Command;
use std::time::Duration;

use rind_tests::containerd::{pids_with_cmdline, Containerd};
use rind_tests::*;

const IMAGE: &str = "docker.io/library/busybox:rindshim";
const RUNTIME: &str = "io.containerd.rind.v2";

#[test]
fn ctr_runs_containers_through_the_rind_shim() {
    workspace_bin("containerd-shim-rind-v2");
    let ctrd = Containerd::start();
    ctrd.import_busybox(IMAGE);

    // foreground: output and the exact exit status
    let id = unique_id("shim");
    let out = ctrd.ctr(&["run", "--rm", "--runtime", RUNTIME, IMAGE, &id, "sh", "-c", "echo hello-from-shim; exit 7"]);
    assert_eq!(stdout(&out), "hello-from-shim\n", "{}\n{}", stderr(&out), ctrd.log_tail());
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // detached: exec, pause/resume, kill, delete with the real status
    let id = unique_id("shimd");
    ctrd.ctr_ok(&["run", "-d", "--runtime", RUNTIME, IMAGE, &id, "sleep", "1000"]);
    let tasks = stdout(&ctrd.ctr_ok(&["task", "ls"]));
    assert!(tasks.lines().any(|l| l.contains(&id) && l.contains("RUNNING")), "{tasks}");
    let out = ctrd.ctr_ok(&["task", "exec", "--exec-id", "e1", &id, "sh", "-c", "echo exec-ok"]);
    assert_eq!(stdout(&out), "exec-ok\n");
    let out = ctrd.ctr(&["task", "exec", "--exec-id", "e2", &id, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "exec exit status: {}", stderr(&out));
    ctrd.ctr_ok(&["task", "pause", &id]);
    assert!(stdout(&ctrd.ctr_ok(&["task", "ls"])).lines().any(|l| l.contains(&id) && l.contains("PAUSED")));
    ctrd.ctr_ok(&["task", "resume", &id]);
    let metrics = stdout(&ctrd.ctr_ok(&["task", "metrics", "--format", "json", &id]));
    assert!(metrics.contains("pids") && metrics.contains("memory"), "{metrics}");
    let ps = stdout(&ctrd.ctr_ok(&["task", "ps", &id]));
    assert!(ps.lines().count() >= 2, "{ps}");
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    wait_until("task to stop", Duration::from_secs(10), || {
        stdout(&ctrd.ctr(&["task", "ls"])).lines().any(|l| l.contains(&id) && l.contains("STOPPED"))
    });
    let out = ctrd.ctr_ok(&["task", "delete", &id]);
    let _ = out;
    ctrd.ctr_ok(&["container", "delete", &id]);
    // the shim is gone once its task is deleted
    wait_until("shim to exit", Duration::from_secs(10), || pids_with_cmdline(&format!("-id {id}")).is_empty());
}

#[test]
fn tasks_survive_kill_9_of_containerd() {
    let mut ctrd = Containerd::start();
    ctrd.import_busybox(IMAGE);
    let id = unique_id("survive");
    ctrd.ctr_ok(&["run", "-d", "--runtime", RUNTIME, IMAGE, &id, "sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"]);
    ctrd.kill9();
    ctrd.spawn();
    let tasks = stdout(&ctrd.ctr_ok(&["task", "ls"]));
    assert!(tasks.lines().any(|l| l.contains(&id) && l.contains("RUNNING")), "after restart: {tasks}");
    let out = ctrd.ctr_ok(&["task", "exec", "--exec-id", "after", &id, "echo", "still-here"]);
    assert_eq!(stdout(&out), "still-here\n");
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGTERM", &id]);
    wait_until("task to stop", Duration::from_secs(10), || {
        stdout(&ctrd.ctr(&["task", "ls"])).lines().any(|l| l.contains(&id) && l.contains("STOPPED"))
    });
    // ctr reports a non-zero exit status of the deleted task on stderr
    let out = ctrd.ctr_ok(&["task", "delete", &id]);
    assert!(stderr(&out).contains("42"), "exit status: {}{}", stdout(&out), stderr(&out));
    ctrd.ctr_ok(&["container", "delete", &id]);
}

#[test]
fn ctr_run_with_a_terminal() {
    let ctrd = Containerd::start();
    ctrd.import_busybox(IMAGE);
    let id = unique_id("tty");
    // ctr -t needs a terminal of its own: script(1) gives it one.
    let ctr = format!(
        "ctr --address {} --namespace {} run -t --rm --runtime {RUNTIME} {IMAGE} {id} sh -c 'test -t 0 && echo in-a-tty; tty; exit 5'",
        ctrd.socket().display(),
        ctrd.namespace
    );
    let out = Command::new("script").args(["-qec", &ctr, "/dev/null"]).stdin(std::process::Stdio::null()).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("in-a-tty"), "{text}{}", stderr(&out));
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");
}
