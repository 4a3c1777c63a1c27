//! rind-runtime lifecycle as the OCI runtime spec and runc's CLI define it.
//! Run against runc with RIND_TEST_RUNTIME=/usr/sbin/runc to check the tests.

use std::fs;
use std::time::Duration;

use rind_tests::*;

const LONG: &[&str] = &["sleep", "1000"];

#[test]
fn lifecycle_statuses_follow_the_spec() {
    let rt = Runtime::new();
    let b = Bundle::new(LONG);
    let id = unique_id("life");
    let c = rt.create(&b, &id);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.path().to_str().unwrap());
    let pid = c.pid();
    assert!(pid > 0 && pid_alive(pid));
    // created: the user program has not been executed yet
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(!exe.to_string_lossy().contains("busybox"), "init already exec'd: {}", exe.display());
    c.start();
    assert_eq!(c.status(), "running");
    assert!(fs::read_link(format!("/proc/{pid}/exe")).unwrap().to_string_lossy().contains("busybox"));
    rt.ok(&["kill", &id, "KILL"]);
    c.wait_status("stopped", Duration::from_secs(5));
    rt.ok(&["delete", &id]);
    let out = rt.exec(&["state", &id]);
    assert!(!out.status.success(), "state of a deleted container must fail");
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn run_exits_with_the_container_status() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "echo out; exit 7"]);
    let out = rt.run(&b, &unique_id("run"));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    // killed by a signal: 128 + signal, as a shell reports it
    b.config["process"]["args"] = serde_json::json!(LONG);
    b.write();
    let id = unique_id("run");
    let mut child = rt.cmd().args(["run", "--bundle", b.path().to_str().unwrap(), &id]).spawn().unwrap();
    wait_until("running", Duration::from_secs(5), || {
        let o = rt.exec(&["state", &id]);
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("running")
    });
    rt.ok(&["kill", &id, "KILL"]);
    assert_eq!(child.wait().unwrap().code(), Some(137));
    assert!(!rt.exec(&["state", &id]).status.success(), "run must delete the container after it exits");
}

#[test]
fn state_is_stopped_when_the_init_dies_behind_our_back() {
    let rt = Runtime::new();
    let b = Bundle::new(LONG);
    let id = unique_id("dead");
    let c = rt.create(&b, &id);
    c.start();
    let pid = c.pid();
    // SAFETY: signalling the container's init, a process this test created.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    c.wait_status("stopped", Duration::from_secs(5));
}

#[test]
fn start_and_kill_of_a_stopped_container_fail_and_change_nothing() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let id = unique_id("stopped");
    let c = rt.create(&b, &id);
    c.start();
    c.wait_status("stopped", Duration::from_secs(5));
    assert!(!rt.exec(&["start", &id]).status.success(), "start of a stopped container must fail");
    assert!(!rt.exec(&["kill", &id, "KILL"]).status.success(), "kill of a stopped container must fail");
    assert_eq!(c.status(), "stopped");
    rt.ok(&["delete", &id]);
}

#[test]
fn start_twice_fails_the_second_time() {
    let rt = Runtime::new();
    let b = Bundle::new(LONG);
    let id = unique_id("twice");
    let c = rt.create(&b, &id);
    c.start();
    assert!(!rt.exec(&["start", &id]).status.success());
    assert_eq!(c.status(), "running");
}

#[test]
fn delete_of_a_running_container_needs_force() {
    let rt = Runtime::new();
    let b = Bundle::new(LONG);
    let id = unique_id("del");
    let c = rt.create(&b, &id);
    c.start();
    let pid = c.pid();
    let out = rt.exec(&["delete", &id]);
    assert!(!out.status.success(), "delete of a running container must fail without --force");
    assert_eq!(c.status(), "running");
    assert!(pid_alive(pid));
    rt.ok(&["delete", "--force", &id]);
    wait_until("init to die", Duration::from_secs(5), || !pid_alive(pid));
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn delete_of_a_created_container_kills_it() {
    // containerd deletes created-but-never-started tasks without --force.
    let rt = Runtime::new();
    let b = Bundle::new(LONG);
    let id = unique_id("delc");
    let c = rt.create(&b, &id);
    let pid = c.pid();
    rt.ok(&["delete", &id]);
    wait_until("init to die", Duration::from_secs(5), || !pid_alive(pid));
}

#[test]
fn duplicate_id_is_refused_and_the_first_container_is_untouched() {
    let rt = Runtime::new();
    let b = Bundle::new(LONG);
    let id = unique_id("dup");
    let c = rt.create(&b, &id);
    let out = rt.create_output(&b, &id, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("exist"), "error should say the container exists: {}", stderr(&out));
    assert_eq!(c.status(), "created");
}

#[test]
fn unknown_id_gives_an_error_for_every_verb() {
    let rt = Runtime::new();
    let id = unique_id("nope");
    for args in [vec!["state", &id], vec!["start", &id], vec!["kill", &id, "KILL"], vec!["delete", &id]] {
        let out = rt.exec(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr(&out).contains(&id) || stderr(&out).contains("not exist"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn bad_bundles_are_refused_with_clear_errors() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    // missing bundle
    let out = rt.exec(&["create", "--bundle", "/nonexistent/bundle", &unique_id("bad")]);
    assert!(!out.status.success());
    // malformed config.json
    b.write();
    fs::write(b.path().join("config.json"), "{ not json").unwrap();
    let id = unique_id("bad");
    let out = rt.exec(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("config.json"), "{}", stderr(&out));
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn invalid_config_is_refused_before_anything_is_made() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["args"] = serde_json::json!([]);
    let id = unique_id("inval");
    let out = rt.create_output(&b, &id, &[]);
    assert!(!out.status.success());
    assert!(!rt.root.path().join(&id).exists());
    b.config["process"]["args"] = serde_json::json!(["true"]);
    b.config["process"]["capabilities"]["bounding"] = serde_json::json!(["CAP_NOT_A_CAPABILITY"]);
    let out = rt.create_output(&b, &id, &[]);
    assert!(!out.status.success(), "an unknown capability must be an error");
    b.config["process"]["capabilities"]["bounding"] = serde_json::json!([]);
    b.config["process"]["rlimits"] = serde_json::json!([{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]);
    let out = rt.create_output(&b, &id, &[]);
    let _ = rt.exec(&["delete", "--force", &id]);
    assert!(!out.status.success(), "an unknown rlimit must be an error");
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn missing_executable_fails_create_with_its_name() {
    let rt = Runtime::new();
    let b = Bundle::new(&["no-such-program"]);
    let id = unique_id("noexe");
    let out = rt.create_output(&b, &id, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such-program"), "{}", stderr(&out));
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn failed_create_leaves_nothing_behind() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    let id = unique_id("leak");
    let cg = format!("/rindtest/{id}");
    b.linux().insert("cgroupsPath".into(), cg.clone().into());
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(serde_json::json!({"destination": "/data", "type": "bind", "source": "/nonexistent/source", "options": ["rbind"]}));
    let out = rt.create_output(&b, &id, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("/nonexistent/source"), "error must name the object: {err}");
    assert!(!rt.root.path().join(&id).exists(), "state dir left behind");
    assert!(!host_cgroup_dir("pids", &cg).exists(), "cgroup left behind");
    assert!(mounts_under(&b.rootfs()).is_empty(), "mounts left behind");
    let _ = fs::remove_dir(host_cgroup_dir("pids", "/rindtest"));
}

#[test]
fn concurrent_starts_are_serialised() {
    let rt = Runtime::new();
    let b = Bundle::new(LONG);
    let id = unique_id("conc");
    let c = rt.create(&b, &id);
    let mut children: Vec<_> = (0..4).map(|_| rt.cmd().args(["start", &id]).stderr(std::process::Stdio::null()).spawn().unwrap()).collect();
    // A start that hangs counts as a failure (runc 1.1 hangs here), and is killed.
    let deadline = std::time::Instant::now() + patience(Duration::from_secs(10));
    let mut oks = 0;
    for ch in &mut children {
        loop {
            if let Some(st) = ch.try_wait().unwrap() {
                oks += st.success() as usize;
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = ch.kill();
                let _ = ch.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert_eq!(oks, 1, "exactly one start must succeed");
    assert_eq!(c.status(), "running");
}

#[test]
fn pid_file_and_list() {
    let rt = Runtime::new();
    let b = Bundle::new(LONG);
    let id = unique_id("list");
    let pidfile = b.path().join("init.pid");
    let out = rt.create_output(&b, &id, &["--pid-file", pidfile.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = Container { rt: &rt, id: id.clone() };
    assert_eq!(fs::read_to_string(&pidfile).unwrap().trim(), c.pid().to_string());
    let out = rt.ok(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = v.as_array().unwrap().iter().find(|e| e["id"] == id.as_str()).expect("listed");
    assert_eq!(entry["status"], "created");
    assert!(stdout(&rt.ok(&["list"])).contains(&id));
}

#[test]
fn kill_all_signals_every_process() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let id = unique_id("killall");
    let c = rt.create(&b, &id);
    c.start();
    let pid = c.pid();
    wait_until("children to start", Duration::from_secs(5), || {
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).is_ok_and(|s| s.split_whitespace().count() == 2)
    });
    let children: Vec<i32> =
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap().split_whitespace().map(|x| x.parse().unwrap()).collect();
    rt.ok(&["kill", "--all", &id, "KILL"]);
    c.wait_status("stopped", Duration::from_secs(5));
    wait_until("children to die", Duration::from_secs(5), || children.iter().all(|p| !pid_alive(*p)));
}

#[test]
fn kill_accepts_names_and_numbers() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "trap 'echo got-usr1' USR1; echo trapped; while true; do sleep 0.05; done"]);
    let id = unique_id("sig");
    let c = rt.create(&b, &id);
    c.start();
    wait_until("the trap installed", Duration::from_secs(5), || b.stdout().contains("trapped"));
    rt.ok(&["kill", &id, "USR1"]);
    wait_until("trap output", Duration::from_secs(5), || b.stdout().contains("got-usr1"));
    rt.ok(&["kill", &id, "9"]);
    c.wait_status("stopped", Duration::from_secs(5));
    assert!(!rt.exec(&["kill", &id, "NOTASIGNAL"]).status.success());
}

#[test]
fn errors_go_to_the_log_as_json_lines() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let out = rt.cmd().args(["--log", log.to_str().unwrap(), "--log-format", "json", "state", "does-not-exist"]).output().unwrap();
    assert!(!out.status.success());
    let text = fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does-not-exist"));
    assert!(line["time"].is_string());
}

#[test]
fn spec_writes_a_config_this_runtime_runs() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    rt.cmd().args(["spec", "--bundle", b.path().to_str().unwrap()]).status().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fs::read(b.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["root"]["path"], "rootfs");
    assert!(v["linux"]["namespaces"].as_array().unwrap().len() >= 4);
    // a second spec refuses to overwrite
    assert!(!rt.exec(&["spec", "--bundle", b.path().to_str().unwrap()]).status.success());
}

#[test]
fn features_is_json_with_the_namespaces() {
    let rt = Runtime::new();
    let out = rt.ok(&["features"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ns: Vec<&str> = v["linux"]["namespaces"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    for want in ["pid", "mount", "network", "uts", "ipc", "user", "cgroup"] {
        assert!(ns.contains(&want), "{want}");
    }
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
}
