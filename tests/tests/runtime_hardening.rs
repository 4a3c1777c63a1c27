//! Hardening and the rest of the spec: hostile symlinks in the rootfs,
//! rootfsPropagation modes, personality, I/O priority, scheduler, time
//! namespace offsets and exec with a terminal.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rind_tests::*;
use serde_json::json;

fn run_sh(rt: &Runtime, b: &mut Bundle, script: &str) -> std::process::Output {
    b.config["process"]["args"] = json!(["sh", "-c", script]);
    rt.run(b, &unique_id("hard"))
}

#[test]
fn proc_over_a_symlink_is_refused() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::os::unix::fs::symlink("/", b.rootfs().join("proc")).unwrap();
    let host_proc_mounts = mounts_under(Path::new("/proc")).len();
    let out = run_sh(&rt, &mut b, "true");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
    assert_eq!(mounts_under(Path::new("/proc")).len(), host_proc_mounts);
    assert!(mounts_under(&b.rootfs()).is_empty());
}

#[test]
fn mount_destinations_through_symlinks_stay_in_the_rootfs() {
    let rt = Runtime::new();
    let host = tempfile::tempdir().unwrap();
    let mut b = Bundle::new(&[]);
    // an absolute link to a host path, and a relative one climbing out
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", b.rootfs().join("up")).unwrap();
    b.config["root"]["readonly"] = json!(false);
    let m = b.config["mounts"].as_array_mut().unwrap();
    m.push(json!({"destination": "/evil/m", "type": "tmpfs", "source": "tmpfs"}));
    m.push(json!({"destination": "/up/tmp/upm", "type": "tmpfs", "source": "tmpfs"}));
    let out = run_sh(&rt, &mut b, "touch /evil/m/f /up/tmp/upm/g && echo ok");
    assert_eq!(stdout(&out), "ok\n", "{}", stderr(&out));
    assert!(!host.path().join("m").exists(), "a mount followed a symlink onto the host");
    assert!(!Path::new("/tmp/upm").exists(), "a mount climbed out of the rootfs");
    assert!(b.rootfs().join(host.path().strip_prefix("/").unwrap()).join("m").is_dir(), "the mount point belongs inside the rootfs");
}

/// A host directory made a shared mount for the test, unmounted on drop.
struct SharedDir(tempfile::TempDir);

impl SharedDir {
    fn new() -> SharedDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_str().unwrap().to_string();
        assert!(Command::new("mount").args(["--bind", &p, &p]).status().unwrap().success());
        assert!(Command::new("mount").args(["--make-rshared", &p]).status().unwrap().success());
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::create_dir(d.path().join("back")).unwrap();
        SharedDir(d)
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        for m in ["back", "sub", ""] {
            let _ = Command::new("umount").arg("-l").arg(self.0.path().join(m)).status();
        }
    }
}

/// Returns (container saw the host's new mount, host saw the container's mount).
fn propagation(mode: &str) -> (bool, bool) {
    let rt = Runtime::new();
    let shared = SharedDir::new();
    let s = shared.0.path();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "while [ ! -e /s/go ]; do sleep 0.02; done; ls /s/sub; mount -t tmpfs none /s/back; echo mounted; sleep 1000",
    ]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/s", "type": "bind", "source": s, "options": ["rbind"]}));
    b.linux().insert("rootfsPropagation".into(), json!(mode));
    let caps = json!(["CAP_SYS_ADMIN", "CAP_KILL"]);
    b.config["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    let id = unique_id("prop");
    let c = rt.create(&b, &id);
    c.start();
    assert!(Command::new("mount").args(["-t", "tmpfs", "none"]).arg(s.join("sub")).status().unwrap().success());
    fs::write(s.join("sub/hostfile"), "x").unwrap();
    fs::write(s.join("go"), "").unwrap();
    wait_until("container mount", Duration::from_secs(10), || b.stdout().contains("mounted"));
    let saw_host = b.stdout().contains("hostfile");
    let host_saw = mounts_under(&s.join("back")).iter().any(|m| Path::new(m) == s.join("back"));
    drop(c);
    (saw_host, host_saw)
}

#[test]
fn rootfs_propagation_modes_behave_as_named() {
    assert_eq!(propagation("rprivate"), (false, false), "private: nothing crosses");
    assert_eq!(propagation("rslave"), (true, false), "slave: host to container only");
    assert_eq!(propagation("rshared"), (true, true), "shared: both ways");
}

#[test]
fn unbindable_root_cannot_be_bind_mounted() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.linux().insert("rootfsPropagation".into(), json!("unbindable"));
    let caps = json!(["CAP_SYS_ADMIN"]);
    b.config["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"}));
    let out = run_sh(&rt, &mut b, "mount --bind / /mnt 2>&1 && echo bound; awk '$5 == \"/\"' /proc/self/mountinfo");
    let text = stdout(&out);
    assert!(!text.contains("bound"), "{text}");
    assert!(text.contains("unbindable"), "{text}");
}

#[test]
fn personality_ioprio_and_scheduler() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.linux().insert("personality".into(), json!({"domain": "LINUX32"}));
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    let out = run_sh(&rt, &mut b, "uname -m; ionice -p $$; cut -d' ' -f19,41 /proc/self/stat");
    let text = stdout(&out);
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(l.len(), 3, "{text}{}", stderr(&out));
    assert_eq!(l[0], "i686");
    assert!(l[1].contains("best-effort") && l[1].contains('6'), "{text}");
    assert_eq!(l[2], "7 3", "nice 7, policy SCHED_BATCH: {text}");
}

#[test]
fn time_namespace_offsets() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
    b.linux().insert("timeOffsets".into(), json!({"boottime": {"secs": 1000000, "nanosecs": 0}}));
    let out = run_sh(&rt, &mut b, "cut -d. -f1 /proc/uptime");
    let up: u64 = stdout(&out).trim().parse().unwrap_or_else(|_| panic!("{}{}", stdout(&out), stderr(&out)));
    assert!(up >= 1_000_000, "uptime {up}");
}

#[test]
fn unsupported_features_fail_clearly() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["true"]);
    b.linux().insert("intelRdt".into(), json!({"closID": "x"}));
    let out = run_sh(&rt, &mut b, "true");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("intelRdt"), "{}", stderr(&out));
    let b = Bundle::new(&["true"]);
    b.write();
    let out = rt.exec(&["--systemd-cgroup", "run", "--bundle", b.path().to_str().unwrap(), &unique_id("sd")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("systemd"), "{}", stderr(&out));
}
