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
    let list = stdout(&d.rind(&["images", "-q"]));
    assert_eq!(list, "docker.io/library/busybox:cli\n");
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
    let snaps = || count(d.root().join("snapshots"));
    assert!(blobs() >= 2 && snaps() == 1, "{} blobs, {} snapshots", blobs(), snaps());
    // A new busybox:latest (another config, maybe another layer) leaves nothing of the old one behind.
    let before = (blobs(), d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]));
    let t = tempfile::tempdir().unwrap();
    make_rootfs(&t.path().join("rootfs"));
    let archive = t.path().join("b.tar");
    image::write_oci_archive(&t.path().join("rootfs"), "busybox:latest", &["sh", "-x"], &archive);
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_ne!(d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]), before.1, "a new image");
    assert_eq!((blobs(), snaps()), (before.0, 1), "the old image's blobs and snapshot are collected");
    d.ok(&["tag", "busybox", "mine:1"]);
    assert_eq!(d.ok(&["images", "-q"]), "busybox:latest\nmine:1\n");
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
