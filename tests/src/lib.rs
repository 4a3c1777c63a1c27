//! Helpers for the root integration tests: busybox bundles built at test time
//! from Debian's busybox-static, runtimes under test (rind-runtime, or runc
//! via RIND_TEST_RUNTIME to check the tests themselves), unique ids and Drop
//! guards that leave nothing running or mounted.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Fails loudly (never skips) when the tests do not run as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these integration tests need root: run them with sudo or as root");
}

/// A process-unique, run-unique container id.
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{}-{:x}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), nanos & 0xffff)
}

/// target/<profile>/ of the workspace, found from this executable's path
/// (a test binary lives in target/<profile>/deps, a bench binary beside the others).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub fn workspace_bin(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(p.exists(), "{} is missing: build the workspace first (cargo build --workspace)", p.display());
    p
}

pub struct Runtime {
    pub bin: PathBuf,
    pub root: tempfile::TempDir,
    pub is_runc: bool,
}

impl Runtime {
    /// rind-runtime, unless RIND_TEST_RUNTIME names another runc-compatible binary.
    pub fn new() -> Runtime {
        require_root();
        let bin = match std::env::var_os("RIND_TEST_RUNTIME") {
            Some(b) => PathBuf::from(b),
            None => workspace_bin("rind-runtime"),
        };
        let is_runc = bin.file_name().is_some_and(|n| n != "rind-runtime");
        Runtime { bin, root: tempfile::Builder::new().prefix("rt-root").tempdir_in("/run").unwrap(), is_runc }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path());
        c.stdin(Stdio::null());
        c
    }

    /// Runs a command and returns its output, whatever the exit status.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.exec(args);
        assert!(out.status.success(), "{} {:?} failed: {}", self.bin.display(), args, String::from_utf8_lossy(&out.stderr));
        out
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.ok(&["state", id]);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// `create` with the container's stdio going to files in the bundle.
    pub fn create(&self, bundle: &Bundle, id: &str) -> Container<'_> {
        let out = self.create_output(bundle, id, &[]);
        assert!(out.status.success(), "create {id} failed: {}", String::from_utf8_lossy(&out.stderr));
        Container { rt: self, id: id.to_string() }
    }

    pub fn create_output(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        bundle.write();
        let stdout = fs::File::create(bundle.dir.path().join("stdout")).unwrap();
        let stderr = fs::File::create(bundle.dir.path().join("stderr")).unwrap();
        // The container inherits stdout/stderr; the runtime's own errors go to --log.
        let log = bundle.dir.path().join("runtime.log");
        let mut c = self.cmd();
        c.arg("--log").arg(&log).args(["create", "--bundle"]).arg(bundle.dir.path()).args(extra).arg(id);
        let status = c.stdout(stdout).stderr(stderr).status().unwrap();
        let stderr = fs::read(&log).unwrap_or_default();
        Output { status, stdout: Vec::new(), stderr }
    }

    /// `run` in the foreground, capturing the container's output.
    pub fn run(&self, bundle: &Bundle, id: &str) -> Output {
        bundle.write();
        let out = self.cmd().args(["run", "--bundle"]).arg(bundle.dir.path()).arg(id).output().unwrap();
        // run deletes the container on exit; make sure nothing is left if it failed half-way.
        let _ = self.exec(&["delete", "--force", id]);
        out
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

/// A created container, force-deleted on drop.
pub struct Container<'a> {
    pub rt: &'a Runtime,
    pub id: String,
}

impl Container<'_> {
    pub fn pid(&self) -> i32 {
        self.rt.state(&self.id)["pid"].as_i64().unwrap() as i32
    }
    pub fn status(&self) -> String {
        self.rt.status(&self.id)
    }
    pub fn start(&self) {
        self.rt.ok(&["start", &self.id]);
    }
    /// Waits until the container's status is `want`.
    pub fn wait_status(&self, want: &str, timeout: Duration) {
        let end = Instant::now() + patience(timeout);
        loop {
            let s = self.status();
            if s == want {
                return;
            }
            assert!(Instant::now() < end, "container {} is {s}, not {want}", self.id);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A helper process (a server in a test's namespace) killed and reaped
/// when the test ends, however it ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.rt.exec(&["delete", "--force", &self.id]);
    }
}

/// A bundle with a busybox rootfs and runc's default config (terminal off).
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

pub fn busybox_path() -> PathBuf {
    let p = PathBuf::from("/bin/busybox");
    assert!(p.exists(), "/bin/busybox is missing: apt-get install busybox-static");
    p
}

/// Builds a busybox rootfs at `dir`: the static binary plus a link per applet.
pub fn make_rootfs(dir: &Path) {
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "root"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::copy(busybox_path(), dir.join("bin/busybox")).unwrap();
    let list = Command::new(busybox_path()).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = symlink("busybox", dir.join("bin").join(applet));
        }
    }
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n").unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

pub fn default_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "rindtest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                            "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new().prefix("bundle").tempdir().unwrap();
        make_rootfs(&dir.path().join("rootfs"));
        Bundle { dir, config: default_config(args) }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn write(&self) {
        fs::write(self.dir.path().join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }

    /// What the container wrote to stdout when created with `Runtime::create`.
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    pub fn linux(&mut self) -> &mut serde_json::Map<String, Value> {
        self.config["linux"].as_object_mut().unwrap()
    }

    pub fn process(&mut self) -> &mut serde_json::Map<String, Value> {
        self.config["process"].as_object_mut().unwrap()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// How many times slower than a quiet machine this one runs: measured once
/// per test process (the median of a few fork+exec of the static busybox,
/// about 1 ms on a quiet host), or taken from `RIND_TEST_SLOWNESS`. Tests
/// assert behaviour, not speed; where a bound on time is unavoidable (a
/// deadline for something that must happen) it is scaled by this.
pub fn slowness() -> f64 {
    static FACTOR: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *FACTOR.get_or_init(|| {
        if let Some(f) = std::env::var("RIND_TEST_SLOWNESS").ok().and_then(|s| s.parse::<f64>().ok()) {
            return f.max(1.0);
        }
        let mut runs: Vec<Duration> = (0..7)
            .map(|_| {
                let t = Instant::now();
                let _ = Command::new(busybox_path()).arg("true").stdin(Stdio::null()).status();
                t.elapsed()
            })
            .collect();
        runs.sort();
        const QUIET: f64 = 0.002;
        (runs[runs.len() / 2].as_secs_f64() / QUIET).clamp(1.0, 60.0)
    })
}

/// A deadline of `d` on a quiet machine, scaled by [`slowness`].
pub fn patience(d: Duration) -> Duration {
    d.mul_f64(slowness())
}

/// Waits for a condition, failing the test after `timeout` (scaled by [`slowness`]).
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + patience(timeout);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what} (slowness factor {:.1})", slowness());
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn cgroup_v2() -> bool {
    let st = nix_statfs_magic("/sys/fs/cgroup");
    st == 0x63677270
}

fn nix_statfs_magic(p: &str) -> i64 {
    let c = std::ffi::CString::new(p).unwrap();
    // SAFETY: statfs fills the zeroed struct we pass.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        if libc::statfs(c.as_ptr(), &mut s) != 0 {
            return 0;
        }
        s.f_type as i64
    }
}

/// The host directory of cgroup `path` for `controller` (v1) or the unified one (v2).
pub fn host_cgroup_dir(controller: &str, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if cgroup_v2() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(controller).join(rel)
    }
}

pub fn pid_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let st = s.rsplit(')').next().unwrap_or("").split_whitespace().next().unwrap_or("");
        st != "Z" && st != "X"
    })
}

/// Every mount point in this mount namespace that lies below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy();
    info.lines().filter_map(|l| l.split_whitespace().nth(4)).filter(|m| m.starts_with(d.as_ref())).map(String::from).collect()
}

pub mod containerd;
pub mod daemon;
pub mod engines;
pub mod fake_registry;
pub mod image;
pub mod proxy;
pub mod registry;

/// Receives one fd sent with SCM_RIGHTS, and the bytes that came with it.
pub fn recv_fd(sock: &std::os::unix::net::UnixStream) -> (std::os::fd::OwnedFd, Vec<u8>) {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut data = vec![0u8; 65536];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    let mut cmsg = [0u8; 64];
    // SAFETY: msghdr points at live buffers; we read one SCM_RIGHTS fd back.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = cmsg.len();
        let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, 0);
        assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
        let hdr = libc::CMSG_FIRSTHDR(&msg);
        assert!(!hdr.is_null(), "no fd received");
        assert_eq!((*hdr).cmsg_type, libc::SCM_RIGHTS);
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(hdr) as *const i32);
        data.truncate(n as usize);
        (std::os::fd::OwnedFd::from_raw_fd(fd), data)
    }
}

/// Reads a pty master until the slave side is closed (EIO) and returns the text.
pub fn read_pty(master: std::os::fd::OwnedFd) -> String {
    use std::io::Read;
    let mut f = fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}
