//! Docker and podman (Debian's) as a test would run them: private data,
//! state and sockets, rind-runtime registered beside runc, no network set
//! up on the host; everything removed on drop. Used to check that
//! rind-runtime is a drop-in for runc under the engines users run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::containerd::Containerd;
use crate::{make_rootfs, require_root, wait_until, workspace_bin};

/// The image every case runs.
pub const IMAGE: &str = "localhost/rindtest/busybox:latest";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

/// The runtimes compared: runc (the reference) and rind-runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oci {
    Runc,
    Rind,
}

impl Oci {
    pub fn name(self) -> &'static str {
        match self {
            Oci::Runc => "runc",
            Oci::Rind => "rind",
        }
    }
}

pub struct Engine {
    pub kind: Kind,
    pub dir: tempfile::TempDir,
    /// The engine's own cgroup parent, removed on drop.
    cgroup_parent: String,
    dockerd: Option<Child>,
    // Dropped after dockerd: its containerd.
    containerd: Option<Containerd>,
    rind: PathBuf,
    /// A network namespace the engine runs in, with its own default
    /// network (bridge, NAT, published ports); None: no network set up.
    netns: Option<PathBuf>,
}

impl Engine {
    /// dockerd with a containerd of its own (dockerd's own would die with it),
    /// rind-runtime registered as runtime "rind", no bridge or firewall rules.
    pub fn docker() -> Engine {
        Engine::start_docker(None)
    }

    /// dockerd run in the network namespace `netns`, with docker's default
    /// bridge, NAT and published ports there.
    pub fn docker_networked(netns: &Path) -> Engine {
        Engine::start_docker(Some(netns.to_path_buf()))
    }

    /// podman run in `netns`, with its default network there.
    pub fn podman_networked(netns: &Path) -> Engine {
        Engine::start_podman(Some(netns.to_path_buf()))
    }

    /// `program` as is, or entering `netns` first.
    fn in_netns(netns: Option<&Path>, program: &str) -> Command {
        match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("--").arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn start_docker(netns: Option<PathBuf>) -> Engine {
        require_root();
        let rind = workspace_bin("rind-runtime");
        let containerd = Containerd::start();
        let dir = tempfile::Builder::new().prefix("dockerd").tempdir_in("/run").unwrap();
        let cgroup_parent = crate::unique_id("rindtest-docker");
        let d = dir.path();
        let config = serde_json::json!({"runtimes": {"rind": {"path": rind}}});
        fs::write(d.join("daemon.json"), config.to_string()).unwrap();
        let log = fs::File::create(d.join("dockerd.log")).unwrap();
        let network_flags: &[&str] = if netns.is_some() {
            &["--ip6tables=false", "--userland-proxy=false"]
        } else {
            &["--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--userland-proxy=false"]
        };
        let child = Engine::in_netns(netns.as_deref(), "/usr/sbin/dockerd")
            .arg("--containerd")
            .arg(containerd.socket())
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .args(network_flags)
            .args(["--storage-driver", "overlay2", "--log-level", "warn"])
            .arg(format!("--cgroup-parent=/{cgroup_parent}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd is missing: apt-get install docker.io");
        let e = Engine { kind: Kind::Docker, dir, cgroup_parent, dockerd: Some(child), containerd: Some(containerd), rind, netns };
        wait_until("dockerd answers", Duration::from_secs(60), || e.cli(&["version"]).status.success());
        e.load_busybox();
        e
    }

    /// podman with its own storage, run and tmp dirs, cgroupfs, file events.
    pub fn podman() -> Engine {
        Engine::start_podman(None)
    }

    fn start_podman(netns: Option<PathBuf>) -> Engine {
        require_root();
        let rind = workspace_bin("rind-runtime");
        let dir = tempfile::Builder::new().prefix("podman").tempdir_in("/run").unwrap();
        let cgroup_parent = crate::unique_id("rindtest-podman");
        let e = Engine { kind: Kind::Podman, dir, cgroup_parent, dockerd: None, containerd: None, rind, netns };
        e.load_busybox();
        e
    }

    fn load_busybox(&self) {
        let t = tempfile::tempdir().unwrap();
        let rootfs = t.path().join("rootfs");
        make_rootfs(&rootfs);
        let archive = t.path().join("busybox.tar");
        crate::image::write_docker_archive(&rootfs, IMAGE, &["sh"], &archive);
        let out = self.cli(&["load", "-i", archive.to_str().unwrap()]);
        assert!(out.status.success(), "load: {}{}", crate::stderr(&out), self.log_tail());
    }

    /// The engine's CLI with this engine's global flags.
    pub fn command(&self) -> Command {
        let d = self.dir.path();
        let mut c = match self.kind {
            Kind::Docker => {
                // Debian's CLI, not whatever else is first on PATH.
                let mut c = Engine::in_netns(self.netns.as_deref(), "/usr/bin/docker");
                c.arg("--host").arg(format!("unix://{}", d.join("docker.sock").display()));
                c
            }
            Kind::Podman => {
                let mut c = Engine::in_netns(self.netns.as_deref(), "/usr/bin/podman");
                c.arg("--root").arg(d.join("root")).arg("--runroot").arg(d.join("runroot")).arg("--tmpdir").arg(d.join("tmp"));
                // Its network configs its own, not the host's /etc/cni/net.d.
                c.arg("--network-config-dir").arg(d.join("net.d"));
                c.args(["--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
                c
            }
        };
        // conmon writes an `oom` file into its working directory when a
        // container is OOM-killed: keep that in ours.
        c.stdin(Stdio::null()).current_dir(d);
        c
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// The flags `run`/`create` (through `command_for`) need to use `oci` (and, for podman, this
    /// machine's quirks: no network, and rlimits root may set without
    /// CAP_SYS_RESOURCE).
    pub fn run_flags(&self, oci: Oci) -> Vec<String> {
        match (self.kind, oci) {
            (Kind::Docker, o) => vec!["--runtime".into(), o.name().into()],
            (Kind::Podman, o) => {
                // (The runtime is a global flag: command_for.)
                let _ = o;
                let mut f: Vec<String> = vec![format!("--cgroup-parent=/{}", self.cgroup_parent)];
                if self.netns.is_none() {
                    f.extend(["--network".into(), "none".into()]);
                }
                for l in ["nofile=4096:4096", "nproc=4096:4096"] {
                    f.extend(["--ulimit".into(), l.into()]);
                }
                f
            }
        }
    }

    /// The CLI for verbs on a container that `oci` runs (podman keeps the
    /// runtime per container, but its CLI resolves it again by path).
    pub fn command_for(&self, oci: Oci) -> Command {
        let mut c = self.command();
        if self.kind == Kind::Podman {
            c.arg("--runtime").arg(self.runtime_path(oci));
        }
        c
    }

    pub fn verb(&self, oci: Oci, args: &[&str]) -> Output {
        self.command_for(oci).args(args).output().unwrap()
    }

    fn runtime_path(&self, oci: Oci) -> String {
        match oci {
            Oci::Runc => "/usr/sbin/runc".to_string(),
            Oci::Rind => self.rind.display().to_string(),
        }
    }

    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let ids = crate::stdout(&self.cli(&["ps", "-aq"]));
        for id in ids.split_whitespace() {
            let _ = self.cli(&["rm", "-f", id]);
        }
        if let Some(mut c) = self.dockerd.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let end = std::time::Instant::now() + crate::patience(Duration::from_secs(10));
            while c.try_wait().ok().flatten().is_none() && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.kind == Kind::Podman {
            let _ = self.cli(&["system", "reset", "--force"]);
        }
        self.containerd.take();
        let parents: Vec<PathBuf> = if crate::cgroup_v2() {
            vec![Path::new("/sys/fs/cgroup").join(&self.cgroup_parent)]
        } else {
            fs::read_dir("/sys/fs/cgroup").map(|r| r.flatten().map(|e| e.path().join(&self.cgroup_parent)).collect()).unwrap_or_default()
        };
        for p in parents.iter().filter(|p| p.exists()) {
            // Emptied as the engine's last processes are reaped.
            wait_until("the engine's cgroups to empty", Duration::from_secs(10), || remove_cgroup_tree(p));
        }
        for m in crate::mounts_under(self.dir.path()).iter().rev() {
            let _ = nix::mount::umount2(Path::new(m), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// rmdir of a cgroup and every cgroup below it (podman leaves a `conmon`
/// child in its parent); true once it is gone.
fn remove_cgroup_tree(dir: &Path) -> bool {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            remove_cgroup_tree(&e.path());
        }
    }
    fs::remove_dir(dir).is_ok() || !dir.exists()
}
