//! rindd and rind, black-box: the daemon on a private root, state and
//! socket; the CLI against it.

use std::process::Command;

use rind_tests::daemon::Daemon;
use rind_tests::*;

#[test]
fn load_list_and_remove_images() {
    let d = Daemon::start();
    let v = stdout(&d.rind(&["version"]));
    assert!(v.contains("Server: ") && v.contains("API 1"), "{v}");
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    make_rootfs(&rootfs);
    let archive = t.path().join("busybox.tar");
    image::write_oci_archive(&rootfs, "docker.io/library/busybox:cli", &["sh"], &archive);
    let out = d.rind(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(stdout(&out), "Loaded image: docker.io/library/busybox:cli\n", "{}", stderr(&out));
    // docker's familiar name: docker.io/library/ left out.
    let list = stdout(&d.rind(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert_eq!(list, "busybox:cli\n");
    assert!(d.rind(&["rmi", "docker.io/library/busybox:cli"]).status.success());
    assert_eq!(stdout(&d.rind(&["images", "-q"])), "");
    let out = d.rind(&["rmi", "nope:1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nope:1"), "{}", stderr(&out));
}

#[test]
fn hostile_archive_is_refused_without_writing_outside_the_store() {
    let d = Daemon::start();
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("evil.tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    let evil = "../../../../tmp/rind-evil-file";
    h.as_old_mut().name[..evil.len()].copy_from_slice(evil.as_bytes());
    h.set_cksum();
    b.append(&h, &b"evil"[..]).unwrap();
    std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
    let out = d.rind(&["load", "-i", archive.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    assert!(!std::path::Path::new("/tmp/rind-evil-file").exists());
}

#[test]
fn a_clear_message_when_the_daemon_is_not_running() {
    let out = Command::new(workspace_bin("rind")).args(["-H", "unix:///nonexistent/rind.sock", "images"]).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("is it running") && err.contains("rindd"), "{err}");
}

#[test]
fn tag_inspect_and_rmi_collects_unused_layers() {
    let d = Daemon::start();
    d.load_busybox();
    let count = |p: std::path::PathBuf| std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0);
    let blobs = || count(d.root().join("content/blobs/sha256"));
    // Unpacked layers: snapshots/<n>, beside the by-chain/ links to them.
    let snaps =
        || std::fs::read_dir(d.root().join("snapshots")).map(|r| r.flatten().filter(|e| e.file_name() != "by-chain").count()).unwrap_or(0);
    assert!(blobs() >= 2 && snaps() == 1, "{} blobs, {} snapshots", blobs(), snaps());
    // A new busybox:latest (another config, maybe another layer) leaves the
    // old image dangling, as docker does; `image prune` leaves nothing of it.
    let before = (blobs(), d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]));
    let t = tempfile::tempdir().unwrap();
    make_rootfs(&t.path().join("rootfs"));
    let archive = t.path().join("b.tar");
    image::write_oci_archive(&t.path().join("rootfs"), "busybox:latest", &["sh", "-x"], &archive);
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_ne!(d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]), before.1, "a new image");
    let old = before.1.trim().trim_start_matches("sha256:")[..12].to_string();
    assert_eq!(d.ok(&["images", "-q", "--filter", "dangling=true"]), format!("{old}\n"));
    d.ok(&["image", "prune", "-f"]);
    assert_eq!((blobs(), snaps()), (before.0, 1), "the old image's blobs and snapshot are collected");
    d.ok(&["tag", "busybox", "mine:1"]);
    assert_eq!(d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]), "busybox:latest\nmine:1\n");
    let tags = d.ok(&["image", "inspect", "-f", "{{json .RepoTags}}", "mine:1"]);
    assert_eq!(tags.trim(), r#"["busybox:latest","mine:1"]"#);
    assert_eq!(d.ok(&["image", "inspect", "-f", "{{json .Config.Cmd}}", "busybox"]).trim(), r#"["sh","-x"]"#);
    d.ok(&["create", "--name", "user", "mine:1", "true"]);
    let out = d.rind(&["rmi", "mine:1"]);
    assert!(!out.status.success() && stderr(&out).contains("user"), "in use: {}", stderr(&out));
    d.ok(&["rmi", "busybox"]);
    assert!(blobs() >= 2 && snaps() == 1, "mine:1 still holds the layers");
    d.ok(&["rmi", "--force", "mine:1"]);
    assert_eq!(snaps(), 1, "the container still holds its layer");
    d.ok(&["start", "-a", "user"]);
    d.ok(&["rm", "user"]);
    assert_eq!((blobs(), snaps()), (0, 0), "nothing left once nothing uses it");
    assert_eq!(d.ok(&["images", "-q"]), "");
}

#[test]
fn completions_and_man_pages() {
    let out = Command::new(workspace_bin("rind")).args(["completion", "bash"]).output().unwrap();
    assert!(out.status.success());
    let s = stdout(&out);
    assert!(s.contains("_rind") && s.contains("--restart"), "bash completion names the commands and flags");
    let t = tempfile::tempdir().unwrap();
    let out = Command::new(workspace_bin("rind")).args(["man"]).arg(t.path()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(t.path().join("rind-run.1")).unwrap();
    assert!(page.contains("restart"), "man page for run");
    assert!(t.path().join("rind.1").exists());
}

#[test]
fn permission_denied_on_the_socket_says_so_naming_it() {
    let d = Daemon::start();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(workspace_bin("rind"))
        .args(["-H", &d.host(), "ps"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    let socket = d.host().trim_start_matches("unix://").to_string();
    assert!(err.contains("permission denied") && err.contains(&socket) && !err.contains("is it running"), "{err}");
}

#[test]
fn ps_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let d = Daemon::start();
    // `rind ps | head -0`: nobody reads the pipe rind writes to.
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let out = d.rind_cmd().args(["ps", "-a"]).stdout(std::process::Stdio::from(w)).output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {}", out.status, stderr(&out));
    assert_eq!(stderr(&out), "", "no panic, no message");
}

#[test]
fn exec_says_its_exit_code_is_unknown_when_rindd_goes_away() {
    use std::io::BufRead;
    let mut d = Daemon::start();
    d.load_busybox();
    d.ok(&["run", "-d", "--name", "host", "busybox", "sleep", "1000"]);
    let mut exec = d
        .rind_cmd()
        .args(["exec", "host", "sh", "-c", "echo started; exec sleep 1000"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(exec.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    d.kill9();
    let out = exec.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("rindd went away") && err.contains("exit code is unknown") && !err.contains("h2 protocol"), "{err}");
    d.spawn();
}

#[test]
fn names_follow_dockers_rule_on_create_and_rename() {
    let d = Daemon::start();
    d.load_busybox();
    for bad in [".", "..", "-x", "a"] {
        let out = d.rind(&["create", &format!("--name={bad}"), "busybox", "true"]);
        assert!(!out.status.success(), "created a container named {bad:?}");
        assert!(stderr(&out).contains("invalid container name"), "{bad}: {}", stderr(&out));
    }
    d.ok(&["create", "--name", "ok.name-1", "busybox", "true"]);
    let out = d.rind(&["rename", "ok.name-1", ".."]);
    assert!(!out.status.success() && stderr(&out).contains("invalid container name"), "{}", stderr(&out));
    assert_eq!(d.ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(), "ok.name-1");
}

/// A one-layer OCI archive of this layer tar.
fn archive_of_layer(layer: &[u8], name: &str, out: &std::path::Path) {
    use sha2::Digest as _;
    let digest = |d: &[u8]| format!("sha256:{:x}", sha2::Sha256::digest(d));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": layer.len()}]
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest), "size": manifest.len(),
                       "annotations": {"io.containerd.image.name": name}}]
    }))
    .unwrap();
    let mut ar = tar::Builder::new(std::fs::File::create(out).unwrap());
    let mut add = |path: &str, data: &[u8]| rind_tests::image::append_file(&mut ar, path, data);
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for blob in [layer, &config, &manifest] {
        add(&format!("blobs/sha256/{}", digest(blob).trim_start_matches("sha256:")), blob);
    }
    ar.finish().unwrap();
}

#[test]
fn a_refused_archive_leaves_no_blob_or_snapshot() {
    let d = Daemon::start();
    // A layer that writes through a symlink out of its snapshot: refused while unpacking,
    // after the archive's blobs are in the content store.
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    layer.append_link(&mut h, "escape", "/tmp").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    layer.append_data(&mut h, "escape/rind-refused-layer", &b"evil"[..]).unwrap();
    let layer = layer.into_inner().unwrap();
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("refused.tar");
    archive_of_layer(&layer, "refused:1", &archive);
    let out = d.rind(&["load", "-i", archive.to_str().unwrap()]);
    assert!(!out.status.success(), "loaded a layer that escapes");
    assert!(!std::path::Path::new("/tmp/rind-refused-layer").exists());
    let count = |p: std::path::PathBuf| std::fs::read_dir(&p).map(|r| r.count()).unwrap_or(0);
    assert_eq!(count(d.root().join("content/blobs/sha256")), 0, "blobs left after a refused load");
    assert_eq!(count(d.root().join("snapshots")), 0, "snapshot dirs left after a refused load");
    assert_eq!(count(d.root().join("ingest")), 0);
    assert_eq!(d.ok(&["images", "-q"]), "");
}
