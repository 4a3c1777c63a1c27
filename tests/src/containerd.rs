//! A private containerd (Debian's) for tests: own config, root, state and
//! socket; killed on drop with every shim it started, its mounts undone.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub namespace: String,
}

impl Containerd {
    pub fn start() -> Containerd {
        crate::require_root();
        let dir = tempfile::Builder::new().prefix("ctrd").tempdir_in("/run").unwrap();
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{0}/c.sock\"\n[ttrpc]\n  address = \"{0}/c.sock.ttrpc\"\n",
            d.display()
        );
        fs::write(d.join("config.toml"), config).unwrap();
        let mut c = Containerd { dir, child: None, namespace: crate::unique_id("rindtest") };
        c.spawn();
        c
    }

    /// (Re)starts the daemon on the same root, state and socket.
    pub fn spawn(&mut self) {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("containerd.log")).unwrap();
        // Our binaries first on PATH: containerd finds containerd-shim-rind-v2
        // there, and the shim finds rind-runtime.
        let path = format!("{}:{}", crate::target_dir().display(), std::env::var("PATH").unwrap_or_default());
        let child = Command::new("containerd")
            .env("PATH", path)
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is missing: apt-get install containerd");
        self.child = Some(child);
        let sock = self.socket();
        crate::wait_until("containerd socket", Duration::from_secs(20), || sock.exists() && self.ctr(&["version"]).status.success());
    }

    /// kill -9 of the daemon alone; shims and containers stay.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("c.sock")
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn ctr_ok(&self, args: &[&str]) -> Output {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed: {}\n{}\n--- containerd log tail ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        out
    }

    /// Imports a busybox image built at test time under `name`.
    pub fn import_busybox(&self, name: &str) {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        crate::make_rootfs(&rootfs);
        let archive = tmp.path().join("busybox.tar");
        crate::image::write_oci_archive(&rootfs, name, &["sh"], &archive);
        self.ctr_ok(&["image", "import", archive.to_str().unwrap()]);
    }

    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// Pids of processes whose command line mentions `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) {
            // arguments are NUL-separated
            let cmd: Vec<u8> = cmd.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
            if String::from_utf8_lossy(&cmd).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

fn unmount_below(dir: &Path) {
    let mut mounts = crate::mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let c = std::ffi::CString::new(m).unwrap();
        // SAFETY: umount2 of a path string we own; MNT_DETACH cannot hang.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Shims were started with our socket as -address; their containers die with them.
        let sock = self.socket().to_string_lossy().into_owned();
        for pid in pids_with_cmdline(&sock) {
            // SAFETY: killing processes this test started (shims of our containerd).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        self.kill9();
        // Containers outlive their shims: kill what is left in our namespace's
        // cgroups, then remove those cgroups and the runtime state.
        for base in cgroup_bases(&self.namespace) {
            if let Ok(rd) = fs::read_dir(&base) {
                for e in rd.flatten().filter(|e| e.path().is_dir()) {
                    for pid in fs::read_to_string(e.path().join("cgroup.procs")).unwrap_or_default().lines() {
                        if let Ok(pid) = pid.trim().parse::<i32>() {
                            // SAFETY: a process of a container our containerd ran.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                    }
                }
            }
        }
        for base in cgroup_bases(&self.namespace) {
            if let Ok(rd) = fs::read_dir(&base) {
                for e in rd.flatten().filter(|e| e.path().is_dir()) {
                    // A killed process leaves its cgroup once it is reaped: rmdir until it goes.
                    let end = std::time::Instant::now() + crate::patience(Duration::from_secs(5));
                    while fs::remove_dir(e.path()).is_err() && e.path().exists() && std::time::Instant::now() < end {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            let _ = fs::remove_dir(&base);
        }
        let _ = fs::remove_dir_all(Path::new("/run/containerd/runc").join(&self.namespace));
        let _ = fs::remove_dir_all(Path::new("/run/rind/runtime").join(&self.namespace));
        unmount_below(self.dir.path());
    }
}

/// The directories holding `namespace`'s container cgroups, in every hierarchy.
fn cgroup_bases(namespace: &str) -> Vec<PathBuf> {
    if crate::cgroup_v2() {
        return vec![Path::new("/sys/fs/cgroup").join(namespace)];
    }
    fs::read_dir("/sys/fs/cgroup").map(|rd| rd.flatten().map(|e| e.path().join(namespace)).collect()).unwrap_or_default()
}
