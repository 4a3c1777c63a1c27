//! A private rindd for a test: its own root, state and socket under /run,
//! the workspace's shim and runtime, a busybox image; on Drop every
//! container is removed, the daemon and any shim it left are killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{image, make_rootfs, require_root, stderr, stdout, wait_until, workspace_bin};

pub struct Daemon {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// Environment rindd starts with, beside the test's own.
    pub env: Vec<(String, String)>,
    /// The network namespace rindd runs in (networked daemons only).
    pub netns: Option<TestNetns>,
}

/// A network namespace the test makes (`ip netns add`, loopback up) and
/// deletes on Drop: bridges, veths and firewall rules made in it die with it.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    #[allow(clippy::new_without_default)] // each call makes a namespace: not a value to default to
    pub fn new() -> TestNetns {
        let name = crate::unique_id("rindnet");
        let run = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap();
            assert!(o.status.success(), "ip {args:?}: {}", stderr(&o));
        };
        run(&["netns", "add", &name]);
        let ns = TestNetns { name };
        run(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `args` run inside the namespace (as the host side of rindd's containers).
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display())).arg("--").arg(program);
        c
    }

    /// Runs `f` on a thread inside the namespace (sockets it opens are
    /// the namespace's).
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(move || {
                let ns = std::fs::File::open(&path).unwrap();
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// `ip -n NAME …` output, failing the test if ip fails.
    pub fn ip(&self, args: &[&str]) -> String {
        let o = Command::new("ip").arg("-n").arg(&self.name).args(args).output().unwrap();
        assert!(o.status.success(), "ip {args:?}: {}", stderr(&o));
        stdout(&o)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with_config("debug = false\n")
    }

    /// A rindd whose config.toml holds `toml`.
    /// A rindd whose config.toml holds `toml`; without networks (`bridge =
    /// "none"`) unless `toml` says otherwise: only the network tests, in
    /// namespaces of their own, make bridges and firewall rules.
    pub fn start_with_config(toml: &str) -> Daemon {
        Daemon::start_with_env(toml, &[])
    }

    /// A rindd with networks (the default bridge unless `toml` says more),
    /// run in a network namespace of the test's own.
    pub fn start_networked(toml: &str) -> Daemon {
        require_root();
        let dir = tempfile::Builder::new().prefix("rindd").tempdir_in("/run").unwrap();
        std::fs::write(dir.path().join("config.toml"), toml).unwrap();
        let mut d = Daemon { child: None, dir, env: Vec::new(), netns: Some(TestNetns::new()) };
        d.spawn();
        d
    }

    /// A rindd whose config.toml holds `toml`, started with `env` set.
    pub fn start_with_env(toml: &str, env: &[(&str, &str)]) -> Daemon {
        require_root();
        let dir = tempfile::Builder::new().prefix("rindd").tempdir_in("/run").unwrap();
        let toml = if toml.lines().any(|l| l.trim_start().starts_with("bridge")) {
            toml.to_string()
        } else {
            format!("bridge = \"none\"\n{toml}")
        };
        std::fs::write(dir.path().join("config.toml"), toml).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut d = Daemon { child: None, dir, env, netns: None };
        d.spawn();
        d
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("lib")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// (Re)starts rindd on the same directories; waits until it answers.
    pub fn spawn(&mut self) {
        if !self.dir.path().join("config.toml").exists() {
            std::fs::write(self.dir.path().join("config.toml"), "debug = false\n").unwrap();
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("rindd.log")).unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.path().display())).arg("--").arg(workspace_bin("rindd"));
                c
            }
            None => Command::new(workspace_bin("rindd")),
        };
        let child = cmd
            .arg("--root")
            .arg(self.root())
            .arg("--state")
            .arg(self.state())
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_until("rindd answers", Duration::from_secs(20), || self.rind(&["version"]).status.success());
    }

    /// What containers' networks leave (a networked daemon): veths,
    /// addresses, pins, results, per-container iptables chains, mounts.
    pub fn network_leftovers(&self) -> Vec<String> {
        let ns = self.netns.as_ref().expect("a networked daemon");
        let mut out = Vec::new();
        let links = ns.ip(&["-o", "link", "show"]);
        out.extend(links.lines().filter(|l| l.contains("veth")).map(|l| format!("link: {l}")));
        for dir in ["net/ns", "net/results"] {
            for e in std::fs::read_dir(self.state().join(dir)).into_iter().flatten().flatten() {
                out.push(format!("{dir}: {}", e.file_name().to_string_lossy()));
            }
        }
        for e in std::fs::read_dir(self.state().join("net/ipam/bridge")).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.parse::<std::net::Ipv4Addr>().is_ok() {
                out.push(format!("ipam: {name}"));
            }
        }
        let rules = ns.cmd("iptables-save").output().unwrap();
        // Per container: portmap's CNI-DN-<hash> chains (and the jumps to them),
        // the bridge plugin's CNI-<24 hex> NAT chains. (portmap's shared
        // CNI-HOSTPORT-* chains stay, as the plugin leaves them.)
        let per_container = |l: &&str| {
            l.contains("CNI-DN-")
                || l.split("CNI-").skip(1).any(|rest| rest.len() >= 24 && rest.chars().take(24).all(|c| c.is_ascii_hexdigit()))
        };
        for l in stdout(&rules).lines().filter(per_container) {
            out.push(format!("iptables: {l}"));
        }
        out.extend(crate::mounts_under(&self.state().join("net")).into_iter().map(|m| format!("mount: {m}")));
        out
    }

    /// A "reboot" under the running `containers`: rindd, the shims and the
    /// containers die, the runtime forgets them, /run (the state dir) is
    /// emptied; a networked daemon gets a fresh namespace (no bridge, veth
    /// or firewall rule survives a reboot). rindd is not started again.
    pub fn reboot(&mut self, containers: &[&str]) {
        let field = |n: &str, f: &str| stdout(&self.rind(&["inspect", "--format", f, n])).trim().to_string();
        let ids: Vec<String> = containers.iter().map(|n| field(n, "{{.Id}}")).collect();
        let pids: Vec<i32> = containers.iter().map(|n| field(n, "{{.State.Pid}}").parse().unwrap()).collect();
        self.kill9();
        for p in pids.iter().copied().chain(self.shim_pids()) {
            // SAFETY: kill(2) on pids we own.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        wait_until("containers gone", Duration::from_secs(5), || pids.iter().all(|p| !crate::pid_alive(*p)));
        for id in &ids {
            let _ =
                Command::new(workspace_bin("rind-runtime")).args(["--root", "/run/rind/runtime/rind", "delete", "--force", id]).output();
        }
        // The shims' sockets are outside the state dir: they go too.
        for id in &ids {
            if let Ok(address) = std::fs::read_to_string(self.state().join("containers").join(id).join("address")) {
                let _ = std::fs::remove_file(address.trim().trim_start_matches("unix://"));
            }
        }
        for m in crate::mounts_under(&self.state()).iter().rev() {
            nix::mount::umount2(Path::new(m), nix::mount::MntFlags::MNT_DETACH).unwrap();
        }
        std::fs::remove_dir_all(self.state()).unwrap();
        if self.netns.is_some() {
            self.netns = Some(TestNetns::new());
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// wait_until, with the daemon's log in the failure.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let t0 = std::time::Instant::now();
        while !f() {
            assert!(t0.elapsed() < crate::patience(timeout), "timed out waiting for {what}; rindd's log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rindd.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.state().join("rind.sock").display())
    }

    pub fn rind(&self, args: &[&str]) -> Output {
        Command::new(workspace_bin("rind")).arg("-H").arg(self.host()).args(args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn rind_cmd(&self) -> Command {
        let mut c = Command::new(workspace_bin("rind"));
        c.arg("-H").arg(self.host());
        c
    }

    /// Runs rind and returns its stdout, failing the test if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.rind(args);
        assert!(o.status.success(), "rind {args:?} failed ({:?}): {}{}", o.status.code(), stderr(&o), stdout(&o));
        stdout(&o)
    }

    /// Loads a busybox image as busybox:latest.
    pub fn load_busybox(&self) {
        let t = tempfile::tempdir().unwrap();
        let rootfs = t.path().join("rootfs");
        make_rootfs(&rootfs);
        for d in ["etc", "tmp", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n").unwrap();
        let archive = t.path().join("busybox.tar");
        image::write_oci_archive(&rootfs, "busybox:latest", &["sh"], &archive);
        self.ok(&["load", "-i", archive.to_str().unwrap()]);
    }

    /// Shim processes whose bundle lies under this daemon's state dir.
    pub fn shim_pids(&self) -> Vec<i32> {
        let state = self.state();
        procs_with_cwd_under(&state).into_iter().filter(|(_, comm)| comm.starts_with("containerd-shim")).map(|(p, _)| p).collect()
    }
}

/// (pid, comm) of processes whose working directory is under `dir`.
pub fn procs_with_cwd_under(dir: &Path) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) else { continue };
        if cwd.starts_with(dir) {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default().trim().to_string();
            out.push((pid, comm));
        }
    }
    out
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = stdout(&self.rind(&["ps", "-aq"]));
            for id in ids.split_whitespace() {
                let _ = self.rind(&["rm", "-f", id]);
            }
        }
        self.kill9();
        // Whatever is left (a test that failed half-way): kill it.
        for (pid, _) in procs_with_cwd_under(&self.state()) {
            // SAFETY: kill(2) on a pid we found; no memory involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for m in crate::mounts_under(self.dir.path()).iter().rev() {
            let _ = nix::mount::umount2(Path::new(m), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
