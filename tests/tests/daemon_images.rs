//! Image layers unpacked into overlayfs snapshots: whiteouts and opaque
//! directories behave as the OCI layer spec says once the layers are stacked;
//! a layer must be what its image config says (its diff_id) to be shared;
//! `rind load` has limits and blocks nobody while it runs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rind_tests::daemon::Daemon;
use rind_tests::image::{busybox_config, Layer};
use rind_tests::*;
use rindd::content::Digest;
use rindd::images::unpack::unpack_layer;
use rindd::images::Limits;

/// Unpacks an uncompressed layer tar, which is its own diff_id.
fn unpack_tar(tar: &Path, dest: &Path) -> rindd::images::unpack::Stats {
    unpack_layer(tar, dest, &Digest::of(&fs::read(tar).unwrap()), u64::MAX).unwrap()
}

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
    unpack_tar(&t.path().join("l1.tar"), &s1);
    let stats = unpack_tar(&t.path().join("l2.tar"), &s2);
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
    let imgs = rindd::images::archive::import(&cs, &cs.lease(), fs::File::open(&archive).unwrap(), &Limits::default()).unwrap();
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0].names, vec!["docker.io/library/busybox:imp"]);
    assert_eq!(imgs[0].layers.len(), 1);
    let snap = t.path().join("snap");
    unpack_tar(&cs.path(&imgs[0].layers[0]), &snap);
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
    let store = std::sync::Mutex::new(rindd::store::Store::open(&t.path().join("meta.db")).unwrap());
    let load = || rindd::services::images::load(&root, &content, &store, fs::File::open(&archive).unwrap(), &Limits::default()).unwrap();
    assert_eq!(load()[0].unpacked, 1);
    assert_eq!(load()[0].unpacked, 0, "the second load shares the snapshot");
    let img = store.lock().unwrap().image("docker.io/library/busybox:load").unwrap().expect("image row");
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

/// Files in `dir` (none if it is not there).
fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

/// Loads `layers` as image `name` through the CLI.
fn load_image(d: &Daemon, name: &str, layers: &[Layer]) -> std::process::Output {
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("image.tar");
    image::write_oci_image(name, layers, busybox_config(&["sh"]), &archive);
    d.rind(&["load", "-i", archive.to_str().unwrap()])
}

/// The load was refused: its error, and nothing of it kept.
fn refused(d: &Daemon, out: std::process::Output) -> String {
    let err = stderr(&out);
    assert!(!out.status.success(), "loaded: {}", stdout(&out));
    assert_eq!(count(&d.root().join("content/blobs/sha256")), 0, "blobs left after a refused load: {err}");
    assert_eq!(count(&d.root().join("snapshots")), 0, "snapshot dirs left after a refused load: {err}");
    assert_eq!(d.ok(&["images", "-q"]), "");
    err
}

/// busybox's layer, and an attacker's: busybox's files and /POISONED, under
/// busybox's diff_id.
fn busybox_and_poison() -> (Layer, Layer) {
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    make_rootfs(&rootfs);
    let real = Layer::of_dir(&rootfs);
    fs::write(rootfs.join("POISONED"), "the attacker's file\n").unwrap();
    let evil = Layer::of_dir(&rootfs).claiming(&real.diff_id);
    (real, evil)
}

#[test]
fn a_layer_with_a_wrong_diff_id_is_refused_and_nothing_of_it_is_kept() {
    let d = Daemon::start();
    let claimed = image::digest(b"some other layer");
    let lying = Layer::of_files(&[("etc/motd", b"hi\n")]).claiming(&claimed);
    let err = refused(&d, load_image(&d, "liar:1", std::slice::from_ref(&lying)));
    assert!(
        err.contains(&format!("layer 1 of 1 of image liar:1 ({})", image::digest(&lying.blob)))
            && err.contains(&format!("uncompressed digest is {}", image::digest(&lying.blob)))
            && err.contains(&format!("diff_id says {claimed}")),
        "{err}"
    );
}

#[test]
fn an_image_cannot_poison_another_by_claiming_its_diff_id() {
    let d = Daemon::start();
    let (real, evil) = busybox_and_poison();
    // The attacker first: its layer is not what it claims.
    let err = refused(&d, load_image(&d, "evil:1", std::slice::from_ref(&evil)));
    assert!(err.contains("layer 1 of 1 of image evil:1") && err.contains(&real.diff_id), "{err}");
    let out = load_image(&d, "busybox:latest", &[real]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = d.rind(&["run", "--rm", "busybox", "cat", "/POISONED"]);
    assert!(!out.status.success(), "busybox runs with the attacker's file: {}", stdout(&out));
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "clean"]), "clean\n");
    // The attacker after: its claim is met by busybox's verified snapshot,
    // and its own content is never unpacked.
    let out = load_image(&d, "evil:2", &[evil]);
    assert!(out.status.success(), "{}", stderr(&out));
    for image in ["evil:2", "busybox"] {
        let out = d.rind(&["run", "--rm", image, "cat", "/POISONED"]);
        assert!(!out.status.success(), "{image} runs with the attacker's file: {}", stdout(&out));
    }
}

#[test]
fn load_limits_are_refused_with_clear_errors() {
    let d = Daemon::start_with_config("max_layer_size = \"1MiB\"\n");
    let big = Layer::of_files(&[("big", &vec![0u8; 2 << 20])]);
    let err = refused(&d, load_image(&d, "big:1", &[big]));
    assert!(
        err.contains("layer 1 of 1 of image big:1") && err.contains("larger than 1048576 bytes uncompressed (max_layer_size)"),
        "{err}"
    );

    let deep: Vec<Layer> = (0..=Limits::MAX_LAYERS).map(|i| Layer::of_files(&[(&format!("f{i}"), b"x")])).collect();
    let err = refused(&d, load_image(&d, "deep:1", &deep));
    assert!(
        err.contains(&format!("image deep:1 has {} layers: rind takes at most {}", Limits::MAX_LAYERS + 1, Limits::MAX_LAYERS)),
        "{err}"
    );

    let pad = "x".repeat(Limits::MAX_JSON_SIZE as usize);
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("fat-config.tar");
    image::write_oci_image("fat:1", &[], serde_json::json!({"Labels": {"pad": pad}}), &archive);
    let err = refused(&d, d.rind(&["load", "-i", archive.to_str().unwrap()]));
    assert!(err.contains("image config sha256:") && err.contains(&format!("is larger than {} bytes", Limits::MAX_JSON_SIZE)), "{err}");

    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "annotations": {"pad": pad}})).unwrap();
    fs::write(&archive, image::oci_layout("fat:2", &manifest, vec![]).0).unwrap();
    let err = refused(&d, d.rind(&["load", "-i", archive.to_str().unwrap()]));
    assert!(err.contains(&format!("manifest {} is larger than {} bytes", image::digest(&manifest), Limits::MAX_JSON_SIZE)), "{err}");
}

#[test]
fn an_image_of_200_layers_loads_and_runs() {
    let d = Daemon::start();
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    make_rootfs(&rootfs);
    let mut layers = vec![Layer::of_dir(&rootfs)];
    for i in 1..200 {
        let n = format!("{i}\n");
        layers.push(Layer::of_files(&[(&format!("layers/{i}"), n.as_bytes()), ("top", n.as_bytes())]));
    }
    let out = load_image(&d, "deep:1", &layers);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = d.ok(&["run", "--rm", "deep:1", "sh", "-c", "ls /layers | wc -l; cat /top /layers/1"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["199", "199", "1"], "{out}");
}

/// A container that runs until killed, and a way to see it exited.
fn victim(d: &Daemon) -> impl Fn() -> bool + '_ {
    d.load_busybox();
    d.ok(&["run", "-d", "--name", "victim", "busybox", "sleep", "1000"]);
    move || d.ok(&["ps", "-a"]).lines().any(|l| l.contains("victim") && l.contains("Exited"))
}

/// `rind load -i <path>`, running.
fn spawn_load(d: &Daemon, path: &Path) -> std::process::Child {
    d.rind_cmd().args(["load", "-i"]).arg(path).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn ps_answers_and_an_exit_is_recorded_while_a_load_waits_for_its_archive() {
    let d = Daemon::start();
    let exited = victim(&d);
    let layer = Layer::of_files(&[("slow", b"slow\n")]);
    let (archive, ends) = image::oci_image("slow:1", std::slice::from_ref(&layer), busybox_config(&["sh"]));
    let hex = image::digest(&layer.blob).trim_start_matches("sha256:").to_string();
    let (_, split) = ends.iter().find(|(path, _)| path.ends_with(&hex)).cloned().unwrap();
    let t = tempfile::tempdir().unwrap();
    let fifo = t.path().join("archive");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut load = spawn_load(&d, &fifo);
    // Opened once rind has it open to read (ENXIO before).
    let mut w = None;
    d.wait_for("rind load to open the fifo", Duration::from_secs(10), || {
        w = fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&fifo).ok();
        w.is_some()
    });
    let mut w = w.unwrap();
    // SAFETY: fcntl on an fd we own: blocking writes from here on.
    assert_eq!(unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&w), libc::F_SETFL, 0) }, 0);
    w.write_all(&archive[..split]).unwrap();
    // rindd has the layer, and waits for the rest of the archive.
    let blob = d.root().join("content/blobs/sha256").join(&hex);
    d.wait_for("the layer's blob", Duration::from_secs(20), || blob.exists());
    assert!(d.rind(&["ps"]).status.success());
    d.ok(&["kill", "victim"]);
    d.wait_for("the victim's exit in ps", Duration::from_secs(20), &exited);
    assert!(load.try_wait().unwrap().is_none(), "the load is still waiting for its archive");
    w.write_all(&archive[split..]).unwrap();
    drop(w);
    let out = load.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "Loaded image: slow:1\n", "{}", stderr(&out));
}

#[test]
fn ps_answers_and_an_exit_is_recorded_while_a_load_unpacks() {
    // Seconds of work for rindd (a debug build inflates, hashes and writes
    // about 30 MB/s), refused at the limit, half-way.
    let d = Daemon::start_with_config("max_layer_size = \"256MiB\"\n");
    let exited = victim(&d);
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("bomb.tar");
    image::write_oci_image("bomb:1", &[image::gzip_bomb(512 << 20)], busybox_config(&["sh"]), &archive);
    let mut load = spawn_load(&d, &archive);
    // Unpacking: the layer's temporary directory is there.
    let unpacking = || {
        fs::read_dir(d.root().join("snapshots")).into_iter().flatten().flatten().any(|snap| {
            fs::read_dir(snap.path()).into_iter().flatten().flatten().any(|e| e.file_name().to_string_lossy().contains(".unpacking-"))
        })
    };
    d.wait_for("the bomb to be unpacking", Duration::from_secs(30), unpacking);
    assert!(d.rind(&["ps"]).status.success());
    d.ok(&["kill", "victim"]);
    d.wait_for("the victim's exit in ps", Duration::from_secs(20), &exited);
    assert!(load.try_wait().unwrap().is_none() && unpacking(), "the load ended before ps answered: ps waited for it");
    let out = load.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains(&format!("larger than {} bytes uncompressed", 256 << 20)), "{err}");
    assert!(!unpacking());
    assert_eq!(d.ok(&["images", "-q"]), "busybox:latest\n");
}
