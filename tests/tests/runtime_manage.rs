//! Managing running containers: pause/resume, ps, update and events.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use rind_tests::*;
use serde_json::{json, Value};

#[test]
fn pause_and_resume_freeze_the_container() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("pause");
    let c = rt.create(&b, &id);
    assert!(!rt.exec(&["pause", &id]).status.success(), "a created container cannot be paused");
    c.start();
    rt.ok(&["pause", &id]);
    assert_eq!(c.status(), "paused");
    assert!(!rt.exec(&["exec", &id, "true"]).status.success(), "exec into a paused container must fail");
    assert!(!rt.exec(&["pause", &id]).status.success(), "pausing twice must fail");
    rt.ok(&["resume", &id]);
    assert_eq!(c.status(), "running");
    rt.ok(&["exec", &id, "true"]);
    assert!(!rt.exec(&["resume", &id]).status.success(), "resuming a running container must fail");
    // a paused container can still be force-deleted
    rt.ok(&["pause", &id]);
    let pid = c.pid();
    rt.ok(&["delete", "--force", &id]);
    wait_until("init to die", Duration::from_secs(5), || !pid_alive(pid));
}

#[test]
fn ps_lists_the_container_processes() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "sleep 1000 & wait"]);
    let id = unique_id("ps");
    let c = rt.create(&b, &id);
    c.start();
    let pid = c.pid();
    wait_until("child", Duration::from_secs(5), || {
        let out = rt.ok(&["ps", "--format", "json", &id]);
        serde_json::from_slice::<Vec<i32>>(&out.stdout).unwrap().len() == 2
    });
    let pids: Vec<i32> = serde_json::from_slice(&rt.ok(&["ps", "--format", "json", &id]).stdout).unwrap();
    assert!(pids.contains(&pid));
    let table = stdout(&rt.ok(&["ps", &id]));
    assert!(table.lines().next().unwrap().contains("PID"));
    assert!(table.contains("sleep 1000"), "{table}");
}

#[test]
fn update_changes_resources_of_a_running_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("upd");
    let path = format!("/rindtest/{id}");
    b.linux().insert("cgroupsPath".into(), json!(path));
    b.config["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 10});
    let c = rt.create(&b, &id);
    c.start();
    rt.ok(&["update", "--memory", "33554432", "--pids-limit", "20", &id]);
    let (mem_file, mem_ctrl) = if cgroup_v2() { ("memory.max", "") } else { ("memory.limit_in_bytes", "memory") };
    let read = |ctrl: &str, f: &str| fs::read_to_string(host_cgroup_dir(ctrl, &path).join(f)).unwrap().trim().to_string();
    assert_eq!(read(mem_ctrl, mem_file), "33554432");
    assert_eq!(read("pids", "pids.max"), "20");
    let res = b.path().join("res.json");
    fs::write(&res, r#"{"pids":{"limit":30}}"#).unwrap();
    rt.ok(&["update", "--resources", res.to_str().unwrap(), &id]);
    assert_eq!(read("pids", "pids.max"), "30");
    assert_eq!(read(mem_ctrl, mem_file), "33554432", "unlisted resources must not change");
    // devices stay as they were: the container can still use /dev/null
    rt.ok(&["exec", &id, "sh", "-c", "echo x > /dev/null"]);
    fs::write(&res, "{not json").unwrap();
    assert!(!rt.exec(&["update", "--resources", res.to_str().unwrap(), &id]).status.success());
    drop(c);
    for ctrl in ["pids", "memory", "cpu", "cpuset", "devices"] {
        let _ = fs::remove_dir(host_cgroup_dir(ctrl, "/rindtest"));
    }
}

#[test]
fn events_stats_reports_usage() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("stats");
    let c = rt.create(&b, &id);
    c.start();
    let v: Value = serde_json::from_slice(&rt.ok(&["events", "--stats", &id]).stdout).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], id.as_str());
    assert!(v["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{v}");
    assert!(v["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{v}");
}

#[test]
fn events_stream_reports_oom_kills() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "sleep 0.5; x=$(head -c 64m /dev/zero | tr '\\0' a); sleep 1000"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 16777216});
    let id = unique_id("oom");
    let c = rt.create(&b, &id);
    let mut ev = rt.cmd().args(["events", "--interval", "1s", &id]).stdout(Stdio::piped()).spawn().unwrap();
    c.start();
    let reader = BufReader::new(ev.stdout.take().unwrap());
    let mut saw_oom = false;
    let mut saw_stats = false;
    let deadline = std::time::Instant::now() + patience(Duration::from_secs(20));
    for line in reader.lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        saw_stats |= v["type"] == "stats";
        if v["type"] == "oom" {
            saw_oom = true;
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no oom event");
    }
    let _ = ev.kill();
    let _ = ev.wait();
    assert!(saw_stats && saw_oom);
}
