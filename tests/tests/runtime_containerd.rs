//! Debian's containerd runs busybox with rind-runtime in place of runc
//! (`ctr run --runc-binary`), through its own runc shim.

use rind_tests::containerd::Containerd;
use rind_tests::*;

const IMAGE: &str = "docker.io/library/busybox:rindtest";

#[test]
fn ctr_runs_busybox_with_rind_runtime() {
    let runtime = std::env::var("RIND_TEST_RUNTIME").map(std::path::PathBuf::from).unwrap_or_else(|_| workspace_bin("rind-runtime"));
    let ctrd = Containerd::start();
    ctrd.import_busybox(IMAGE);
    let bin = runtime.to_str().unwrap();

    // foreground: output and exit status come back through containerd
    let id = unique_id("ctr");
    let out = ctrd.ctr(&["run", "--rm", "--runc-binary", bin, IMAGE, &id, "sh", "-c", "echo hello-from-rind; exit 3"]);
    assert_eq!(stdout(&out), "hello-from-rind\n", "{}\n{}", stderr(&out), ctrd.log_tail());
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // detached: exec into it, kill it, delete it
    let id = unique_id("ctrd");
    ctrd.ctr_ok(&["run", "-d", "--runc-binary", bin, IMAGE, &id, "sleep", "1000"]);
    let tasks = stdout(&ctrd.ctr_ok(&["task", "ls"]));
    assert!(tasks.lines().any(|l| l.contains(&id) && l.contains("RUNNING")), "{tasks}");
    let out = ctrd.ctr_ok(&["task", "exec", "--exec-id", "e1", &id, "sh", "-c", "echo exec-ok; hostname"]);
    assert!(stdout(&out).starts_with("exec-ok\n"), "{}", stdout(&out));
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    wait_until("task to stop", std::time::Duration::from_secs(10), || {
        stdout(&ctrd.ctr(&["task", "ls"])).lines().any(|l| l.contains(&id) && l.contains("STOPPED"))
    });
    ctrd.ctr_ok(&["task", "delete", &id]);
    ctrd.ctr_ok(&["container", "delete", &id]);
}
