//! One rindd per root and state dir: a second one on either is refused,
//! naming the first's pid; each rindd's shims and runtime state live under
//! its own state dir; what a rindd killed mid-load left is gone once the
//! next one starts.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rind_tests::daemon::Daemon;
use rind_tests::*;

/// Runs another rindd on these dirs; it must exit by itself (a rindd that
/// was not refused serves until killed: it is killed, and the test fails).
fn second_rindd(d: &Daemon, root: &Path, state: &Path) -> Output {
    let socket = state.join("second.sock");
    let mut child = Command::new(workspace_bin("rindd"))
        .arg("--root")
        .arg(root)
        .arg("--state")
        .arg(state)
        .arg("--socket")
        .arg(&socket)
        .arg("--config")
        .arg(d.dir.path().join("config.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + patience(Duration::from_secs(10));
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("a second rindd on {} and {} kept running: {}", root.display(), state.display(), stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_second_rindd_on_the_same_root_or_state_is_refused() {
    let d = Daemon::start();
    d.load_busybox();
    let pid = d.child.as_ref().unwrap().id();
    let other = tempfile::Builder::new().prefix("rindd2").tempdir_in("/run").unwrap();
    for (root, state) in [(d.root(), d.state()), (d.root(), other.path().join("run")), (other.path().join("lib"), d.state())] {
        let out = second_rindd(&d, &root, &state);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("another rindd") && err.contains(&format!("pid {pid}")), "{}, {}: {err}", root.display(), state.display());
    }
    // The first one still hears its shims: an exit reaches it.
    let out = d.rind(&["run", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(d.ok(&["wait", d.ok(&["ps", "-aq"]).trim()]).trim(), "7");
}

#[test]
fn shim_sockets_and_runtime_state_live_under_the_state_dir() {
    let d = Daemon::start();
    d.load_busybox();
    let id = d.ok(&["run", "-d", "busybox", "sleep", "1000"]).trim().to_string();
    let address = std::fs::read_to_string(d.state().join("containers").join(&id).join("address")).unwrap();
    let sockets = format!("unix://{}/", d.state().join("s").display());
    assert!(address.starts_with(&sockets), "the shim listens at {address}, not under {sockets}");
    assert!(Path::new(address.trim_start_matches("unix://")).exists());
    assert!(d.state().join("runtime/rind").join(&id).is_dir(), "the runtime's state is under the state dir");
    assert!(!Path::new("/run/rind/runtime/rind").join(&id).exists());
    // A terminal's console socket goes there too, and it works.
    let out = d.rind(&["run", "--rm", "-t", "busybox", "echo", "tty"]);
    assert!(out.status.success() && stdout(&out).contains("tty"), "{}", stderr(&out));
    d.ok(&["rm", "-f", &id]);
}

#[test]
fn a_load_cut_short_by_kill_9_leaves_nothing_after_restart() {
    let mut d = Daemon::start();
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    make_rootfs(&rootfs);
    let archive = t.path().join("busybox.tar");
    image::write_oci_archive(&rootfs, "busybox:cut", &["sh"], &archive);
    let bytes = std::fs::read(&archive).unwrap();
    // `rind load` streams what it reads: through a fifo, the test decides
    // how much of the archive rindd has when it dies.
    let fifo = t.path().join("archive.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let load = d.rind_cmd().arg("load").arg("-i").arg(&fifo).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&bytes[..bytes.len() / 2]).unwrap();
    // The layer, the archive's biggest blob, is half written when rindd dies.
    let partial = d.root().join("content/ingest");
    let writing = || std::fs::read_dir(&partial).map(|r| r.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0))).unwrap_or(false);
    d.wait_for("part of the layer written", Duration::from_secs(20), writing);
    d.kill9();
    drop(w);
    let out = load.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("rindd went away") && !err.contains("h2 protocol"), "{err}");
    d.spawn();
    let left = |dir: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    };
    for dir in [partial, d.root().join("content/blobs/sha256"), d.root().join("snapshots"), d.root().join("ingest")] {
        assert!(left(&dir).is_empty(), "left in {}: {:?}", dir.display(), left(&dir));
    }
    // And a whole load works.
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]), "busybox:cut\n");
}
