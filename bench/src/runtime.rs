//! `run` of a busybox `true` container with rind-runtime, runc and crun, on
//! one bundle, interleaved, in one private mount namespace where an empty
//! tmpfs covers /sys/fs/cgroup/unified (crun 1.8 refuses the hybrid layout;
//! all three see the same view, so the comparison stays fair).

use std::ffi::CString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::median;

struct Peer {
    name: &'static str,
    bin: PathBuf,
    wall_ms: Vec<f64>,
    rss_kib: Vec<f64>,
}

fn private_cgroup_view() -> anyhow::Result<()> {
    // SAFETY: plain syscalls on this single-threaded process's own namespace.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            bail!("unshare mount namespace: {}", std::io::Error::last_os_error());
        }
        let root = CString::new("/").unwrap();
        if libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_SLAVE, std::ptr::null()) != 0 {
            bail!("make / rslave: {}", std::io::Error::last_os_error());
        }
        let unified = Path::new("/sys/fs/cgroup/unified");
        if unified.exists() {
            let t = CString::new("tmpfs").unwrap();
            let p = CString::new(unified.to_str().unwrap()).unwrap();
            if libc::mount(t.as_ptr(), p.as_ptr(), t.as_ptr(), 0, std::ptr::null()) != 0 {
                bail!("mount tmpfs over {}: {}", unified.display(), std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Runs one `run` and returns (wall ms, peak RSS KiB of the runtime's process tree).
fn run_once(bin: &Path, root: &Path, bundle: &Path, id: &str) -> anyhow::Result<(f64, f64)> {
    let start = Instant::now();
    let child = Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))?;
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: wait4 on our own child fills the rusage struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed().as_secs_f64() * 1000.0;
    if rc != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if std::process::ExitStatus::from_raw(status).code() != Some(0) {
        let mut err = String::new();
        use std::io::Read;
        let _ = child.stderr.unwrap().read_to_string(&mut err);
        bail!("{} run failed: {err}", bin.display());
    }
    Ok((wall, ru.ru_maxrss as f64))
}

/// `full`: the default config plus rind's default (Docker's) seccomp profile and hooks
/// (prestart, poststart, poststop running /bin/cat).
fn full_profile(config: &mut serde_json::Value) {
    // The allow list of rind's default (Docker's) profile. Its conditional
    // clone/personality rules are left out: crun 1.8 fails to run with them.
    config["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": rindd::services::seccomp::ALLOWED, "action": "SCMP_ACT_ALLOW"}]
    });
    // cat reads the state it is given: crun fails a hook that exits before it wrote it (EPIPE).
    let hook = serde_json::json!([{"path": "/bin/cat", "args": ["cat"]}]);
    config["hooks"] = serde_json::json!({"prestart": hook, "poststart": hook, "poststop": hook});
}

pub fn bench(runs: usize, full: bool) -> anyhow::Result<()> {
    rind_tests::require_root();
    private_cgroup_view()?;
    let dir = tempfile::tempdir()?;
    let bundle = dir.path().join("bundle");
    rind_tests::make_rootfs(&bundle.join("rootfs"));
    let mut config = rind_tests::default_config(&["true"]);
    if full {
        full_profile(&mut config);
    }
    std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    let mut peers = vec![
        Peer { name: "rind-runtime", bin: rind_tests::workspace_bin("rind-runtime"), wall_ms: vec![], rss_kib: vec![] },
        Peer { name: "runc", bin: PathBuf::from("/usr/sbin/runc"), wall_ms: vec![], rss_kib: vec![] },
        Peer { name: "crun", bin: PathBuf::from("/usr/bin/crun"), wall_ms: vec![], rss_kib: vec![] },
    ];
    let root = dir.path().join("state");
    // One warm-up each, then interleaved runs.
    for i in 0..=runs {
        for p in &mut peers {
            let (wall, rss) = run_once(&p.bin, &root.join(p.name), &bundle, &format!("bench-{}-{i}", p.name))?;
            if i > 0 {
                p.wall_ms.push(wall);
                p.rss_kib.push(rss);
            }
        }
    }
    let runc_wall = median(&peers[1].wall_ms);
    let crun_wall = median(&peers[2].wall_ms);
    let crun_rss = median(&peers[2].rss_kib);
    let what = if full { "with the allow list of the default seccomp profile and 3 hooks" } else { "default config" };
    println!("runtime bench: `run` of busybox true, {what}, {runs} runs each, interleaved");
    println!("{:<14} {:>12} {:>12} {:>12} {:>14} {:>12}", "runtime", "median ms", "vs runc", "vs crun", "peak RSS KiB", "vs crun");
    for p in &peers {
        let w = median(&p.wall_ms);
        let r = median(&p.rss_kib);
        println!("{:<14} {:>12.2} {:>12.2} {:>12.2} {:>14.0} {:>12.2}", p.name, w, w / runc_wall, w / crun_wall, r, r / crun_rss);
    }
    Ok(())
}
