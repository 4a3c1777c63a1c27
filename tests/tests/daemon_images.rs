//! Image layers unpacked into overlayfs snapshots: whiteouts and opaque
//! directories behave as the OCI layer spec says once the layers are stacked.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::process::Command;

use rind_tests::*;
use rindd::images::unpack::unpack_layer;

fn tar_of(dir: &std::path::Path, out: &std::path::Path) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_layers() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    // lower: foo, dir/a, keep
    let l1 = t.path().join("l1");
    fs::create_dir_all(l1.join("dir")).unwrap();
    fs::write(l1.join("foo"), "foo").unwrap();
    fs::write(l1.join("dir/a"), "a").unwrap();
    fs::write(l1.join("keep"), "keep").unwrap();
    // upper: deletes foo, makes dir opaque with only b
    let l2 = t.path().join("l2");
    fs::create_dir_all(l2.join("dir")).unwrap();
    fs::write(l2.join(".wh.foo"), "").unwrap();
    fs::write(l2.join("dir/.wh..wh..opq"), "").unwrap();
    fs::write(l2.join("dir/b"), "b").unwrap();
    tar_of(&l1, &t.path().join("l1.tar"));
    tar_of(&l2, &t.path().join("l2.tar"));
    let (s1, s2) = (t.path().join("snap1"), t.path().join("snap2"));
    unpack_layer(&t.path().join("l1.tar"), &s1).unwrap();
    let stats = unpack_layer(&t.path().join("l2.tar"), &s2).unwrap();
    assert_eq!(stats.whiteouts, 2);
    let wh = fs::symlink_metadata(s2.join("foo")).unwrap();
    assert!(wh.file_type().is_char_device(), "whiteout is a char device");
    // Stack them and look.
    let (upper, work, merged) = (t.path().join("upper"), t.path().join("work"), t.path().join("merged"));
    for d in [&upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    let opts = format!("lowerdir={}:{},upperdir={},workdir={}", s2.display(), s1.display(), upper.display(), work.display());
    assert!(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&merged).status().unwrap().success());
    let foo = merged.join("foo").exists();
    let mut dir: Vec<String> =
        fs::read_dir(merged.join("dir")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    dir.sort();
    let keep = fs::read_to_string(merged.join("keep")).ok();
    let _ = Command::new("umount").arg(&merged).status();
    assert!(!foo, "a whiteout hides the lower file");
    assert_eq!(dir, vec!["b".to_string()], "an opaque dir hides the lower dir's entries");
    assert_eq!(keep.as_deref(), Some("keep"));
    assert!(mounts_under(t.path()).is_empty());
}

#[test]
fn oci_archive_imports_and_unpacks() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    make_rootfs(&rootfs);
    let archive = t.path().join("busybox.tar");
    image::write_oci_archive(&rootfs, "docker.io/library/busybox:imp", &["sh"], &archive);
    let cs = rindd::content::ContentStore::open(&t.path().join("content")).unwrap();
    let imgs = rindd::images::archive::import(&cs, fs::File::open(&archive).unwrap()).unwrap();
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0].names, vec!["docker.io/library/busybox:imp"]);
    assert_eq!(imgs[0].layers.len(), 1);
    let snap = t.path().join("snap");
    unpack_layer(&cs.path(&imgs[0].layers[0]), &snap).unwrap();
    let meta = fs::metadata(snap.join("bin/busybox")).unwrap();
    assert_eq!(meta.len(), fs::metadata("/bin/busybox").unwrap().len());
    assert_eq!(fs::read_link(snap.join("bin/sh")).unwrap(), std::path::PathBuf::from("busybox"));
}

#[test]
fn load_shares_snapshots_and_a_container_rootfs_mounts() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("lib");
    let rootfs = t.path().join("rootfs");
    make_rootfs(&rootfs);
    let archive = t.path().join("busybox.tar");
    image::write_oci_archive(&rootfs, "docker.io/library/busybox:load", &["sh"], &archive);
    let content = rindd::content::ContentStore::open(&root.join("content")).unwrap();
    let mut store = rindd::store::Store::open(&t.path().join("meta.db")).unwrap();
    let first = rindd::services::images::load(&root, &content, &mut store, fs::File::open(&archive).unwrap()).unwrap();
    assert_eq!(first[0].unpacked, 1);
    let again = rindd::services::images::load(&root, &content, &mut store, fs::File::open(&archive).unwrap()).unwrap();
    assert_eq!(again[0].unpacked, 0, "the second load shares the snapshot");
    let img = store.image("docker.io/library/busybox:load").unwrap().expect("image row");
    let layers: Vec<_> = img.layers.iter().map(|l| rindd::content::Digest::parse(l).unwrap()).collect();
    let config = rindd::content::Digest::parse(&img.config).unwrap();
    let diffs = rindd::services::images::diff_ids(&content, &config).unwrap();
    assert_eq!(diffs.len(), layers.len());
    let chains = rindd::snapshots::chain_ids(&diffs);
    let snaps = rindd::snapshots::Snapshots::new(&root);
    let (upper, work, merged) = (t.path().join("upper"), t.path().join("work"), t.path().join("merged"));
    for d in [&upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    let opts = snaps.overlay_options(&chains, &upper, &work);
    assert!(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&merged).status().unwrap().success());
    let ok = merged.join("bin/busybox").is_file();
    fs::write(merged.join("new-file"), "x").unwrap();
    let _ = Command::new("umount").arg(&merged).status();
    assert!(ok);
    assert!(upper.join("new-file").exists(), "writes land in the container's upper dir");
    assert!(!snaps.dir(&chains[0]).join("new-file").exists(), "snapshots stay read-only");
}

#[test]
fn generated_spec_runs_with_rind_runtime() {
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    let img: oci_spec::image::ImageConfiguration = serde_json::from_str(
        r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["sh","-c","echo $GREETING; id -u; grep -E 'CapBnd|Seccomp:' /proc/self/status"],"Env":["GREETING=hi"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
    )
    .unwrap();
    let opts = rindd::services::spec::RunOptions {
        user: Some("0".into()),
        pids_limit: Some(20),
        hostname: Some("gen".into()),
        ..Default::default()
    };
    let spec = rindd::services::spec::container_spec(&img, &opts).unwrap();
    spec.save(b.path().join("config.json")).unwrap();
    let out = rt.cmd().args(["run", "--bundle", b.path().to_str().unwrap(), &unique_id("gen")]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("hi\n0\n"), "{text}");
    // Docker's default set: 14 capabilities
    assert!(text.contains("CapBnd:\t00000000a80425fb"), "{text}");
    // and Docker's seccomp policy, under which the shell still works
    assert!(text.contains("Seccomp:\t2"), "{text}");
}
