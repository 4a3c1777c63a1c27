//! What a process sees from inside a rind-runtime container: namespaces,
//! rootfs and mounts, devices, process attributes, seccomp and cgroups.
//! Each check runs busybox inside the container and reads its output.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::Duration;

use rind_tests::*;
use serde_json::json;

/// Runs `script` with sh in a container built from `b`, asserting success.
fn sh(rt: &Runtime, b: &mut Bundle, script: &str) -> String {
    b.config["process"]["args"] = json!(["sh", "-c", script]);
    let out = rt.run(b, &unique_id("iso"));
    assert!(out.status.success(), "{script:?} failed ({:?}): {}{}", out.status, stdout(&out), stderr(&out));
    stdout(&out)
}

fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}")).unwrap().to_string_lossy().into_owned()
}

#[test]
fn namespaces_are_new_and_isolated() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    let out = sh(&rt, &mut b, "echo pid=$$; hostname; ls /sys/class/net; for n in ipc uts net mnt; do readlink /proc/self/ns/$n; done");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "rindtest");
    assert_eq!(lines[2], "lo", "a new network namespace has only lo: {out}");
    for (line, kind) in lines[3..].iter().zip(["ipc", "uts", "net", "mnt"]) {
        assert_ne!(*line, host_ns(kind), "{kind} namespace is the host's");
    }
}

#[test]
fn namespaces_can_be_joined_by_path() {
    let rt = Runtime::new();
    // A network namespace made by the test: a sleeping process holds it.
    let mut holder = std::process::Command::new("unshare").args(["--net", "sleep", "60"]).spawn().unwrap();
    let ns_path = format!("/proc/{}/ns/net", holder.id());
    wait_until("holder netns", Duration::from_secs(5), || fs::read_link(&ns_path).ok() != fs::read_link("/proc/self/ns/net").ok());
    let want = fs::read_link(&ns_path).unwrap().to_string_lossy().into_owned();
    let mut b = Bundle::new(&[]);
    b.linux()["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": ns_path}]);
    b.config["hostname"] = json!(null);
    let out = sh(&rt, &mut b, "readlink /proc/self/ns/net");
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(out.trim(), want);
}

#[test]
fn user_namespace_maps_ids() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    let l = b.linux();
    l["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    l.insert("uidMappings".into(), json!([{"containerID": 0, "hostID": 200000, "size": 65536}]));
    l.insert("gidMappings".into(), json!([{"containerID": 0, "hostID": 200000, "size": 65536}]));
    let out = sh(&rt, &mut b, "cat /proc/self/uid_map /proc/self/gid_map; id -u");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "200000", "65536", "0", "200000", "65536", "0"], "{out}");
}

#[test]
fn cgroup_namespace_hides_the_host_path() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.linux()["namespaces"].as_array_mut().unwrap().push(json!({"type": "cgroup"}));
    b.linux().insert("cgroupsPath".into(), json!(format!("/rindtest/{}", unique_id("cgns"))));
    let out = sh(&rt, &mut b, "cat /proc/self/cgroup");
    for line in out.lines() {
        assert!(line.ends_with(":/"), "cgroup path visible inside a cgroup namespace: {line}");
    }
}

#[test]
fn rootfs_is_read_only_and_pivoted() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    let out = sh(&rt, &mut b, "touch /x 2>&1; ls /; cat /proc/self/mountinfo | head -1");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!out.contains("work"), "host paths visible: {out}");
    b.config["root"]["readonly"] = json!(false);
    let out = sh(&rt, &mut b, "touch /x && echo wrote");
    assert_eq!(out.trim(), "wrote");
}

#[test]
fn no_pivot_uses_move_and_chroot() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "ls /bin/busybox"]);
    let id = unique_id("nopivot");
    let out = rt.create_output(&b, &id, &["--no-pivot"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = Container { rt: &rt, id };
    c.start();
    c.wait_status("stopped", Duration::from_secs(5));
    assert_eq!(b.stdout().trim(), "/bin/busybox");
}

/// A bundle whose config lists every namespace but mount.
fn no_mount_ns_bundle(rt: &Runtime, args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    b.linux()["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "mount");
    if rt.bin.ends_with("runc") {
        // runc refuses these without a mount namespace ("unable to restrict
        // sys entries without a private MNT namespace"); crun and rind apply them.
        b.linux().remove("maskedPaths");
        b.linux().remove("readonlyPaths");
    }
    fs::write(b.rootfs().join("etc/marker"), "in-rootfs\n").unwrap();
    b
}

/// The propagation fields ("shared:N", "master:N") of each mount at `mount_point`.
fn propagation(mount_point: &str) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.get(4) == Some(&mount_point))
        .map(|f| f[6..].iter().take_while(|x| **x != "-").copied().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn no_mount_namespace_runs_in_the_runtimes_own() {
    // config-linux.md: a namespace type not listed is inherited from the runtime.
    let rt = Runtime::new();
    let b = no_mount_ns_bundle(&rt, &["sh", "-c", "cat /etc/marker; exec sleep 1000"]);
    let id = unique_id("nomntns");
    let c = rt.create(&b, &id);
    let pid = c.pid();
    let ns = fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(ns.to_string_lossy(), host_ns("mnt"), "the container is not in the runtime's mount namespace");
    assert_eq!(fs::read_link(format!("/proc/{pid}/root")).unwrap(), fs::canonicalize(b.rootfs()).unwrap(), "its root is not the rootfs");
    c.start();
    wait_until("the container's output", Duration::from_secs(5), || b.stdout() == "in-rootfs\n");
}

#[test]
fn no_mount_namespace_leaves_the_runtimes_mounts_as_they_were() {
    // What rind adds to runc and crun here: the host's propagation is left
    // alone (runc makes / rslave), exec enters the container's root, and
    // delete (or a failed create) undoes the mounts made in the runtime's
    // namespace (both leave them).
    let rt = Runtime::new();
    let mut b = no_mount_ns_bundle(&rt, &["sleep", "1000"]);
    let host_root = propagation("/");
    let id = unique_id("nomntns");
    let c = rt.create(&b, &id);
    c.start();
    assert_eq!(propagation("/"), host_root, "the runtime's / changed propagation");
    let mounted = mounts_under(&b.rootfs());
    let rootfs = fs::canonicalize(b.rootfs()).unwrap();
    for want in ["proc", "dev", "sys", "sys/firmware", "proc/sys"] {
        let path = rootfs.join(want).to_string_lossy().into_owned();
        assert!(mounted.contains(&path), "{want} is not mounted in the runtime's namespace: {mounted:?}");
    }
    let out = rt.ok(&["exec", &id, "sh", "-c", "cat /etc/marker; touch /x 2>&1 || true"]);
    let out = stdout(&out);
    assert!(out.starts_with("in-rootfs\n"), "exec did not enter the container's root: {out}");
    assert!(out.contains("Read-only file system"), "root.readonly was not applied: {out}");
    drop(c);
    assert_eq!(mounts_under(&b.rootfs()), Vec::<String>::new(), "mounts left after delete");
    assert_eq!(propagation("/"), host_root);

    // A create that fails after mounting undoes its mounts as well.
    b.config["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}]});
    let id = unique_id("nomntns");
    let out = rt.create_output(&b, &id, &[]);
    let _ = rt.exec(&["delete", "--force", &id]);
    assert!(!out.status.success(), "a failing createContainer hook must fail create");
    assert_eq!(mounts_under(&b.rootfs()), Vec::<String>::new(), "mounts left after a failed create");
}

#[test]
fn bind_tmpfs_and_option_mounts() {
    let rt = Runtime::new();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("hello"), "from-host").unwrap();
    let mut b = Bundle::new(&[]);
    let m = b.config["mounts"].as_array_mut().unwrap();
    m.push(json!({"destination": "/ro", "type": "bind", "source": host.path(), "options": ["rbind", "ro"]}));
    m.push(json!({"destination": "/rw", "type": "bind", "source": host.path(), "options": ["rbind", "rw"]}));
    m.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["noexec", "size=1m"]}));
    m.push(json!({"destination": "/etc/hello", "type": "bind", "source": host.path().join("hello"), "options": ["bind", "ro"]}));
    let out = sh(
        &rt,
        &mut b,
        "cat /ro/hello; echo; touch /ro/x 2>&1; touch /rw/y && echo rw-ok; cat /etc/hello; echo; \
        cp /bin/busybox /scratch/bb; /scratch/bb true 2>&1 || echo noexec-ok; grep ' /scratch ' /proc/self/mountinfo",
    );
    assert!(out.starts_with("from-host\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("rw-ok"));
    assert!(host.path().join("y").exists());
    assert!(out.contains("from-host\n") && out.matches("from-host").count() == 2, "{out}");
    assert!(out.contains("noexec-ok"), "{out}");
    assert!(out.contains("size=1024k"), "{out}");
    assert!(mounts_under(host.path()).is_empty(), "mount leaked to the host");
}

#[test]
fn masked_and_readonly_paths() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    // masked: a file reads as /dev/null, a directory as an empty read-only tmpfs
    assert!(std::path::Path::new("/proc/keys").exists() && std::path::Path::new("/sys/firmware").exists());
    let out = sh(&rt, &mut b, "wc -c < /proc/keys; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/ns_last_pid 2>&1 || echo ro-ok");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "/proc/keys not masked: {out}");
    assert_eq!(lines[1].trim(), "0", "/sys/firmware not masked: {out}");
    assert!(out.contains("ro-ok"), "{out}");
}

#[test]
fn default_and_configured_devices() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.linux().insert(
        "devices".into(),
        json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 0, "gid": 6}]),
    );
    b.config["linux"]["resources"]["devices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
    let out = sh(
        &rt,
        &mut b,
        "for d in null zero full random urandom tty mynull; do stat -c '%n %t:%T %a %u:%g %F' /dev/$d; done; \
        for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; echo x > /dev/mynull && echo write-ok",
    );
    for want in [
        "/dev/null 1:3 666 0:0 character special file",
        "/dev/zero 1:5 666",
        "/dev/full 1:7",
        "/dev/random 1:8",
        "/dev/urandom 1:9",
        "/dev/tty 5:0",
        "/dev/mynull 1:3 620 0:6",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    for want in ["/proc/self/fd\n", "/proc/self/fd/0\n", "/proc/self/fd/1\n", "/proc/self/fd/2\n", "pts/ptmx\n", "write-ok"] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn process_attributes() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    let p = &mut b.config["process"];
    p["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [2000, 2001], "umask": 0o027});
    p["cwd"] = json!("/work/dir");
    p["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    p["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}, {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]);
    p["oomScoreAdj"] = json!(123);
    b.config["root"]["readonly"] = json!(false);
    b.config["domainname"] = json!("example.test");
    let out = sh(
        &rt,
        &mut b,
        "id; pwd; echo \"$FOO\"; umask; ulimit -n; ulimit -Hn; ulimit -c; cat /proc/self/oom_score_adj; cat /proc/sys/kernel/domainname",
    );
    let l: Vec<&str> = out.lines().collect();
    assert!(l[0].starts_with("uid=1000 gid=1001"), "{out}");
    assert!(l[0].contains("2000") && l[0].contains("2001"), "{out}");
    assert_eq!(&l[1..], ["/work/dir", "bar baz", "0027", "256", "512", "0", "123", "example.test"], "{out}");
}

#[test]
fn capabilities_and_no_new_privileges() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    let out = sh(&rt, &mut b, "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status");
    // CAP_AUDIT_WRITE(29), CAP_KILL(5), CAP_NET_BIND_SERVICE(10)
    let want = format!("{:016x}", (1u64 << 29) | (1 << 5) | (1 << 10));
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert!(out.contains(&format!("{set}:\t{want}")), "{set} in:\n{out}");
    }
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    b.process()["noNewPrivileges"] = json!(false);
    b.config["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
    let out = sh(&rt, &mut b, "grep -E '^(CapInh|CapAmb|NoNewPrivs)' /proc/self/status");
    assert!(out.contains("NoNewPrivs:\t0"), "{out}");
    assert!(out.contains(&format!("CapInh:\t{:016x}", 1u64 << 5)), "{out}");
    assert!(out.contains(&format!("CapAmb:\t{:016x}", 1u64 << 5)), "ambient needs permitted+inheritable: {out}");
}

#[test]
fn hostname_sysctl_and_uts() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.config["hostname"] = json!("box-1");
    b.linux().insert("sysctl".into(), json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536"}));
    let out = sh(&rt, &mut b, "hostname; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax");
    assert_eq!(out, "box-1\n1\n65536\n");
    // a sysctl that is not namespaced would change the host: refused
    b.linux()["sysctl"] = json!({"vm.swappiness": "10"});
    b.config["process"]["args"] = json!(["true"]);
    let out = rt.run(&b, &unique_id("sysctl"));
    assert!(!out.status.success(), "a host-wide sysctl must be refused");
}

#[test]
fn seccomp_errno_and_argument_conditions() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.config["root"]["readonly"] = json!(false);
    b.linux().insert(
        "seccomp".into(),
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}
            ]
        }),
    );
    let out = sh(&rt, &mut b, "mkdir /newdir 2>&1; kill -0 $$ && echo sig0-ok; kill -USR1 $$ 2>&1; grep Seccomp: /proc/self/status");
    assert!(out.contains("Function not implemented"), "errno 38 expected: {out}");
    assert!(out.contains("sig0-ok"), "{out}");
    assert!(out.contains("Operation not permitted"), "kill USR1 should be EPERM: {out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

#[test]
fn seccomp_filter_without_no_new_privileges() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.process()["noNewPrivileges"] = json!(false);
    b.linux().insert(
        "seccomp".into(),
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        }),
    );
    let out = sh(&rt, &mut b, "grep -E 'Seccomp:|NoNewPrivs' /proc/self/status");
    assert!(out.contains("Seccomp:\t2") && out.contains("NoNewPrivs:\t0"), "{out}");
}

#[test]
fn cgroup_limits_are_applied_and_removed() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("cg");
    let path = format!("/rindtest/{id}");
    b.linux().insert("cgroupsPath".into(), json!(path));
    b.linux()["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 67108864, "reservation": 33554432},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 42}
    });
    let c = rt.create(&b, &id);
    let v2 = cgroup_v2();
    let read = |ctrl: &str, file: &str| fs::read_to_string(host_cgroup_dir(ctrl, &path).join(file)).unwrap().trim().to_string();
    if v2 {
        assert_eq!(read("", "memory.max"), "67108864");
        assert_eq!(read("", "cpu.max"), "50000 100000");
        assert_eq!(read("", "pids.max"), "42");
        assert_eq!(read("", "cpuset.cpus"), "0");
    } else {
        assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(read("memory", "memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("pids", "pids.max"), "42");
        assert_eq!(read("cpuset", "cpuset.cpus"), "0");
    }
    let procs = read("pids", "cgroup.procs");
    assert_eq!(procs, c.pid().to_string());
    drop(c);
    assert!(!host_cgroup_dir("pids", &path).exists(), "cgroup left after delete");
    assert!(!host_cgroup_dir("memory", &path).exists(), "cgroup left after delete");
    for ctrl in ["pids", "memory", "cpu", "cpuset", "devices"] {
        let _ = fs::remove_dir(host_cgroup_dir(ctrl, "/rindtest"));
    }
}

#[test]
fn pids_limit_is_enforced() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 3});
    b.config["process"]["args"] = json!(["sh", "-c", "for i in 1 2 3 4 5; do sleep 5 & done 2>&1; echo done"]);
    let out = stdout(&rt.run(&b, &unique_id("pids")));
    assert!(out.contains("can't fork") || out.contains("Resource temporarily unavailable"), "{out}");
}

#[test]
fn device_rules_apply_in_order() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    // The configured rules apply as given, later ones winning (kmsg: allowed,
    // then its writes denied), and the default devices after them, as runc
    // and crun order them: a rule cannot take /dev/zero away.
    b.config["linux"]["devices"] = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600}]);
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "w"},
        {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "r"}
    ]);
    let out = sh(
        &rt,
        &mut b,
        "(true > /dev/kmsg) 2>/dev/null || echo kmsg-write-denied; echo x > /dev/null && echo null-ok; head -c1 /dev/zero | wc -c; head -c1 /dev/urandom | wc -c",
    );
    assert_eq!(out, "kmsg-write-denied\nnull-ok\n1\n1\n");
}

#[test]
fn no_host_fds_or_environment_leak_in() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.process()["env"] = json!(["PATH=/bin"]);
    // An fd without CLOEXEC in the runtime's caller must not reach the container.
    let f = fs::File::open("/etc/hostname").unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: clearing FD_CLOEXEC on our own open fd.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFD, 0) };
    let out = sh(&rt, &mut b, "ls /proc/self/fd | tr '\\n' ' '; echo; env | sort | tr '\\n' ' '");
    drop(f);
    let lines: Vec<&str> = out.lines().collect();
    // 0 1 2 and the fd ls opened for /proc/self/fd
    assert_eq!(lines[0].split_whitespace().count(), 4, "unexpected fds: {}", lines[0]);
    let vars: Vec<&str> = lines[1].split_whitespace().map(|v| v.split('=').next().unwrap()).collect();
    for v in vars {
        assert!(["PATH", "HOME", "PWD", "SHLVL", "HOSTNAME"].contains(&v), "unexpected env var {v} in {}", lines[1]);
    }
}

#[test]
fn preserve_fds_passes_extra_fds() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "cat <&3; ls /proc/self/fd | wc -l"]);
    b.write();
    let data = b.path().join("data");
    fs::write(&data, "via-fd3\n").unwrap();
    let id = unique_id("pfd");
    // The caller hands fd 3 to create, as a shell does with 3<file.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" --root \"$1\" create --preserve-fds 1 --bundle \"$2\" \"$3\" 3<\"$4\" >\"$2/stdout\"")
        .arg(&rt.bin)
        .arg(rt.root.path())
        .arg(b.path())
        .arg(&id)
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success());
    let c = Container { rt: &rt, id };
    c.start();
    c.wait_status("stopped", Duration::from_secs(5));
    // 0 1 2 3 and ls's own
    assert_eq!(b.stdout(), "via-fd3\n5\n");
}

#[test]
fn terminal_through_console_socket() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; stty size"]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    let sock_path = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let id = unique_id("tty");
    let out = rt.create_output(&b, &id, &["--console-socket", sock_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c = Container { rt: &rt, id };
    let (conn, _) = listener.accept().unwrap();
    let (master, _) = recv_fd(&conn);
    c.start();
    let text = read_pty(master);
    assert!(text.contains("is-a-tty"), "{text:?}");
    assert!(text.contains("33 101"), "{text:?}");
}

#[test]
fn exec_joins_the_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.config["hostname"] = json!("exec-box");
    let id = unique_id("exec");
    let c = rt.create(&b, &id);
    c.start();
    let out = rt.ok(&[
        "exec",
        "--env",
        "X=1",
        "--cwd",
        "/bin",
        "--user",
        "7:8",
        &id,
        "sh",
        "-c",
        "hostname; echo $X; pwd; id -u; id -g; ls /proc | grep -c '^[0-9]'; grep -E ':pids:|^0::' /proc/self/cgroup | head -1",
    ]);
    let text = stdout(&out);
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(&l[..5], ["exec-box", "1", "/bin", "7", "8"], "{text}");
    // sees the container's processes only: init, sh, ls/grep children
    assert!(l[5].parse::<u32>().unwrap() <= 5, "{text}");
    let init_cg = fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap();
    // v1: the pids hierarchy; v2: the unified one
    let init_pids = init_cg.lines().find(|x| x.contains(":pids:") || x.starts_with("0::")).unwrap().to_string();
    assert!(init_pids.ends_with(l[6].rsplit(':').next().unwrap()), "exec not in the container's cgroup: {} vs {init_pids}", l[6]);
    // the exit status comes back
    let out = rt.exec(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    // a missing program is an error naming it
    let out = rt.exec(&["exec", &id, "no-such-prog"]);
    assert!(!out.status.success());
    // exec into a stopped container fails
    rt.ok(&["kill", &id, "KILL"]);
    c.wait_status("stopped", Duration::from_secs(5));
    assert!(!rt.exec(&["exec", &id, "true"]).status.success());
}

#[test]
fn exec_with_process_json() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("execp");
    let c = rt.create(&b, &id);
    c.start();
    let pj = b.path().join("process.json");
    fs::write(&pj, serde_json::to_vec(&json!({"args": ["sh", "-c", "echo from-json; echo $Y"], "env": ["PATH=/bin", "Y=2"], "cwd": "/", "user": {"uid": 0, "gid": 0}})).unwrap()).unwrap();
    let out = rt.ok(&["exec", "--process", pj.to_str().unwrap(), &id]);
    assert_eq!(stdout(&out), "from-json\n2\n");
}

#[test]
fn nothing_is_left_mounted_after_delete() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("mnt");
    let c = rt.create(&b, &id);
    c.start();
    drop(c);
    assert!(mounts_under(&b.rootfs()).is_empty());
    let meta = fs::metadata(b.rootfs().join("bin/busybox")).unwrap();
    assert!(meta.is_file() && !meta.file_type().is_char_device() && meta.nlink() >= 1);
}

#[test]
fn seccomp_notify_hands_the_fd_to_the_agent() {
    use std::os::fd::{AsRawFd, IntoRawFd};
    let rt = Runtime::new();
    let mut b = Bundle::new(&["sh", "-c", "mkdir /tmp/x 2>&1; echo after"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    let sock = b.path().join("agent.sock");
    b.linux().insert(
        "seccomp".into(),
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "meta-42",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let id = unique_id("notify");
    // The agent: take the fd and the state, answer the first notification with EXDEV.
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (fd, text) = recv_fd(&conn);
        let text = String::from_utf8_lossy(&text).into_owned();
        let req = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()).unwrap();
        libseccomp::ScmpNotifResp::new_error(req.id, -libc::EXDEV, libseccomp::ScmpNotifRespFlags::empty())
            .respond(fd.as_raw_fd())
            .unwrap();
        let _ = fd.into_raw_fd();
        text
    });
    let c = rt.create(&b, &id);
    c.start();
    c.wait_status("stopped", Duration::from_secs(10));
    let text = agent.join().unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["fds"], json!(["seccompFd"]));
    assert_eq!(v["metadata"], "meta-42");
    assert_eq!(v["state"]["id"], id.as_str());
    assert!(b.stdout().contains("cross-device"), "the agent's answer did not reach the container: {}", b.stdout());
    assert!(b.stdout().contains("after"));
}

/// CVE-2019-5736: a hostile image makes `exec` run the runtime itself inside
/// the container (`#!/proc/self/exe`) while a container process tries to
/// reopen that binary for writing.
#[test]
fn container_cannot_rewrite_the_runtime_binary() {
    let rt = Runtime::new();
    let mut b = Bundle::new(&["/bin/steal_exe", "/bin/", "20"]);
    // Embedded, so the test binary runs where its source tree is not (the VM).
    let probe_src = b.path().join("steal_exe.c");
    fs::write(&probe_src, include_str!("../probe/steal_exe.c")).unwrap();
    let out = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(b.rootfs().join("bin/steal_exe"))
        .arg(&probe_src)
        .output()
        .unwrap();
    assert!(out.status.success(), "cc: {}", String::from_utf8_lossy(&out.stderr));
    fs::write(b.rootfs().join("evil"), "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(b.rootfs().join("evil"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // the attacker needs ptrace-free access to /proc/<pid>/exe of container processes
    b.config["process"]["capabilities"] = json!({"bounding": ["CAP_SYS_PTRACE", "CAP_KILL"], "effective": ["CAP_SYS_PTRACE", "CAP_KILL"], "permitted": ["CAP_SYS_PTRACE", "CAP_KILL"]});
    let before = fs::read(&rt.bin).unwrap();
    let id = unique_id("cve");
    let c = rt.create(&b, &id);
    c.start();
    for _ in 0..200 {
        if c.status() != "running" {
            break;
        }
        let _ = rt.exec(&["exec", &id, "/evil"]);
    }
    c.wait_status("stopped", Duration::from_secs(30));
    let verdict = b.stdout();
    assert!(!verdict.contains("WRITABLE"), "the container could open the runtime binary for writing");
    assert!(verdict.starts_with("caught"), "the probe never caught the runtime inside the container: {verdict:?}");
    assert_eq!(fs::read(&rt.bin).unwrap(), before, "runtime binary changed");
}

#[test]
fn init_is_not_dumpable_before_exec() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("dump");
    let c = rt.create(&b, &id);
    // Same uid, no CAP_SYS_PTRACE: a dumpable process's environ would be readable.
    let before = rt.exec(&["exec", &id, "sh", "-c", "cat /proc/1/environ >/dev/null 2>&1 && echo readable || echo denied"]);
    assert_eq!(stdout(&before), "denied\n", "the created init is readable from the container: {}", stderr(&before));
    c.start();
    let after = rt.ok(&["exec", &id, "sh", "-c", "cat /proc/1/environ >/dev/null 2>&1 && echo readable || echo denied"]);
    assert_eq!(stdout(&after), "readable\n", "after its execve the init is an ordinary process again");
}

#[test]
fn seccomp_kill_trap_and_log_actions() {
    let rt = Runtime::new();
    for (action, want) in
        [("SCMP_ACT_KILL_PROCESS", 128 + 31), ("SCMP_ACT_KILL", 128 + 31), ("SCMP_ACT_TRAP", 128 + 31), ("SCMP_ACT_LOG", 0)]
    {
        let mut b = Bundle::new(&["sh", "-c", "exec uname"]);
        b.linux()
            .insert("seccomp".into(), json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": action}]}));
        let out = rt.run(&b, &unique_id("scact"));
        assert_eq!(out.status.code(), Some(want), "{action}: {}", stderr(&out));
    }
}

#[test]
fn exec_with_a_terminal() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("exectty");
    let c = rt.create(&b, &id);
    c.start();
    let sock_path = b.path().join("exec-console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let mut child = rt
        .cmd()
        .args(["exec", "--tty", "--console-socket", sock_path.to_str().unwrap(), &id, "sh", "-c", "test -t 1 && echo exec-tty"])
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let (master, _) = recv_fd(&conn);
    let text = read_pty(master);
    assert!(child.wait().unwrap().success());
    assert!(text.contains("exec-tty"), "{text:?}");
}
