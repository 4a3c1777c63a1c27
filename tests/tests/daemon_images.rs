//! Image layers unpacked into overlayfs snapshots: whiteouts and opaque
//! directories behave as the OCI layer spec says once the layers are stacked;
//! a layer must be what its image config says (its diff_id) to be shared;
//! `rind load` has limits and blocks nobody while it runs; `rind save`
//! writes what `rind load`, `docker load` and skopeo read; `history`,
//! `image prune` and `images` answer as docker's do.

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
    assert_eq!(d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]), "busybox:latest\n");
}

/// `layer` gzipped (by the system's gzip, without a name or time: the same
/// bytes each time), claiming the same diff_id.
fn gzipped(layer: &Layer) -> Layer {
    let t = tempfile::tempdir().unwrap();
    let tar = t.path().join("layer.tar");
    fs::write(&tar, &layer.blob).unwrap();
    let out = Command::new("gzip").args(["-n", "-c"]).arg(&tar).output().unwrap();
    assert!(out.status.success(), "gzip: {}", stderr(&out));
    Layer { blob: out.stdout, diff_id: layer.diff_id.clone() }
}

/// Loads `layered:1`: busybox's layer, then a gzip layer with /etc/motd.
fn load_layered(d: &Daemon) {
    let top = gzipped(&Layer::of_files(&[("etc/motd", b"saved\n")]));
    let out = load_image(d, "layered:1", &[image::busybox_layer(), top]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn image_id(d: &Daemon, name: &str) -> String {
    d.ok(&["image", "inspect", "-f", "{{.Id}}", name]).trim().to_string()
}

fn blobs(d: &Daemon) -> usize {
    count(&d.root().join("content/blobs/sha256"))
}

#[test]
fn save_then_load_gives_back_the_same_images() {
    let d = Daemon::start();
    d.load_busybox();
    load_layered(&d);
    d.ok(&["tag", "busybox", "mine:1"]);
    let ids = (image_id(&d, "busybox"), image_id(&d, "layered:1"));
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("saved.tar");
    let names = ["busybox", "mine:1", "layered:1"];
    d.ok(&[&["save", "-o", file.to_str().unwrap()][..], &names].concat());
    // To stdout (not a terminal here): the same bytes, the archive being deterministic.
    let out = d.rind(&[&["save"][..], &names].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == fs::read(&file).unwrap(), "stdout and -o differ");
    for n in names {
        d.ok(&["rmi", n]);
    }
    assert_eq!((d.ok(&["images", "-q"]), blobs(&d)), (String::new(), 0), "nothing left before the load");
    let out = d.ok(&["load", "-i", file.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: busybox:latest\nLoaded image: mine:1\nLoaded image: layered:1\n");
    assert_eq!((image_id(&d, "busybox"), image_id(&d, "layered:1")), ids, "the same image ids");
    assert_eq!(image_id(&d, "mine:1"), ids.0);
    assert_eq!(d.ok(&["run", "--rm", "layered:1", "cat", "/etc/motd"]), "saved\n");
    // Saved by id: it comes back dangling, known by its id.
    let by_id = t.path().join("by-id.tar");
    d.ok(&["save", "-o", by_id.to_str().unwrap(), &ids.1[7..19]]);
    d.ok(&["rmi", "layered:1"]);
    assert_eq!(d.ok(&["load", "-i", by_id.to_str().unwrap()]), format!("Loaded image ID: {}\n", ids.1));
    assert_eq!(d.ok(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]), format!("{}\n", ids.1));
}

#[test]
fn save_refuses_a_terminal_and_writes_nothing_for_a_missing_image() {
    let d = Daemon::start();
    d.load_busybox();
    let pty = nix::pty::openpty(None, None).unwrap();
    let out = d.rind_cmd().args(["save", "busybox"]).stdout(Stdio::from(pty.slave)).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cowardly refusing to save to a terminal"), "{}", stderr(&out));
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("saved.tar");
    let out = d.rind(&["save", "-o", file.to_str().unwrap(), "busybox", "nope:1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no such image: nope:1"), "{}", stderr(&out));
    assert_eq!(count(t.path()), 0, "no archive, no partial file");
}

/// skopeo's command line, with no signature policy to honour (our own images).
fn skopeo(args: &[&str]) -> std::process::Output {
    let out = Command::new("skopeo").arg("--insecure-policy").args(args).output().expect("skopeo is missing: scripts/install-deps.sh");
    assert!(out.status.success(), "skopeo {args:?}: {}", stderr(&out));
    out
}

/// A rindd with `layered:1`, its id, and a dir holding it saved as `saved.tar`.
fn saved_layered() -> (Daemon, String, tempfile::TempDir) {
    let d = Daemon::start();
    load_layered(&d);
    let id = image_id(&d, "layered:1");
    let t = tempfile::tempdir().unwrap();
    d.ok(&["save", "-o", t.path().join("saved.tar").to_str().unwrap(), "layered:1"]);
    (d, id, t)
}

#[test]
fn skopeo_reads_the_docker_and_the_oci_halves_of_a_saved_archive() {
    let (_d, id, t) = saved_layered();
    let file = t.path().join("saved.tar");
    let docker = format!("docker-archive:{}", file.display());
    let oci = format!("oci-archive:{}", file.display());
    // The docker half: its config is the image's.
    let config = skopeo(&["inspect", "--raw", "--config", &docker]).stdout;
    assert_eq!(image::digest(&config), id);
    let layers = serde_json::from_slice::<serde_json::Value>(&skopeo(&["inspect", &docker]).stdout).unwrap();
    assert_eq!(layers["Layers"].as_array().map(Vec::len), Some(2), "{layers}");
    // The OCI half: a manifest naming the config and each layer's compression.
    let manifest: serde_json::Value = serde_json::from_slice(&skopeo(&["inspect", "--raw", &oci]).stdout).unwrap();
    assert_eq!(manifest["config"]["digest"], serde_json::json!(id));
    let types: Vec<&str> = manifest["layers"].as_array().unwrap().iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
    assert_eq!(types, ["application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip"]);
    // Whole, picked by name: every blob read and verified on the way out.
    skopeo(&["copy", &format!("{docker}:layered:1"), &format!("dir:{}", t.path().join("from-docker").display())]);
    skopeo(&["copy", &format!("{oci}:1"), &format!("dir:{}", t.path().join("from-oci").display())]);
}

#[test]
fn docker_loads_what_rind_saves() {
    let (_d, id, t) = saved_layered();
    let file = t.path().join("saved.tar");
    let docker = rind_tests::engines::Engine::docker();
    let out = docker.cli(&["load", "-i", file.to_str().unwrap()]);
    assert!(out.status.success(), "docker load: {}{}", stderr(&out), docker.log_tail());
    assert!(stdout(&out).contains("Loaded image: layered:1"), "{}", stdout(&out));
    let out = docker.cli(&["image", "inspect", "-f", "{{.Id}}", "layered:1"]);
    assert_eq!(stdout(&out).trim(), id, "docker's id is rind's: {}", stderr(&out));
    let out = docker.cli(&["run", "--rm", "--network", "none", "layered:1", "cat", "/etc/motd"]);
    assert_eq!(stdout(&out), "saved\n", "{}{}", stderr(&out), docker.log_tail());
}

#[test]
fn history_shows_the_configs_lines_newest_first() {
    let d = Daemon::start();
    let (base, top) = (Layer::of_files(&[("a", b"12345")]), Layer::of_files(&[("etc/motd", b"hi\n")]));
    let add = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef0123456789abcdef in / ";
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-03T00:00:00Z",
        "config": busybox_config(&["sh"]),
        "rootfs": {"type": "layers", "diff_ids": [base.diff_id, top.diff_id]},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": add, "comment": "base"},
            {"created": "2024-01-02T00:00:00Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true},
            {"created": "2024-01-03T00:00:00Z", "created_by": "/bin/sh -c echo hi > /etc/motd"},
        ],
    }))
    .unwrap();
    let layer = |l: &Layer| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": image::digest(&l.blob), "size": l.blob.len()});
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": image::digest(&config), "size": config.len()},
        "layers": [layer(&base), layer(&top)],
    }))
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("h.tar");
    fs::write(&archive, image::oci_layout("hist:1", &manifest, vec![&base.blob, &top.blob, &config]).0).unwrap();
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    let id = image::digest(&config);
    assert_eq!(d.ok(&["history", "-q", "hist:1"]), format!("{}\n<missing>\n<missing>\n", &id[7..19]));
    let lines = d.ok(&["image", "history", "--format", "{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "hist:1"]);
    let cut: String = add.chars().take(44).collect();
    assert_eq!(lines, format!("/bin/sh -c echo hi > /etc/motd|3B|\n/bin/sh -c #(nop)  CMD [\"sh\"]|0B|\n{cut}…|5B|base\n"));
    let full = d.ok(&["history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}", "hist:1"]);
    assert_eq!(full.lines().last().unwrap(), format!("<missing> {add}"));
    assert!(full.starts_with(&format!("{id} ")), "{full}");
    let table = d.ok(&["history", "hist:1"]);
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("IMAGE          CREATED") && header.contains("CREATED BY") && header.ends_with("COMMENT"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(table.lines().nth(3).unwrap().contains("ago") && table.lines().nth(3).unwrap().ends_with("base"), "{table}");
    let out = d.rind(&["history", "nope:1"]);
    assert!(!out.status.success() && stderr(&out).contains("no such image: nope:1"), "{}", stderr(&out));
}

#[test]
fn image_prune_removes_dangling_images_then_every_unused_one() {
    let d = Daemon::start();
    d.load_busybox();
    let old = image_id(&d, "busybox");
    d.ok(&["create", "--name", "user", "busybox", "true"]);
    // Another busybox:latest: the old one is dangling, but a container uses it.
    let out = load_image(&d, "busybox:latest", &[image::busybox_layer()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new = image_id(&d, "busybox");
    assert_ne!(old, new);
    assert_eq!(d.ok(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]), format!("{old}\n"));
    let table = d.ok(&["images"]);
    assert!(table.lines().any(|l| l.starts_with("<none>   ") && l.contains(&old[7..19])), "{table}");
    assert_eq!(d.ok(&["image", "prune", "-f"]), "Total reclaimed space: 0B\n", "the container's image stays");
    d.ok(&["rm", "user"]);
    let before = blobs(&d);
    let out = d.ok(&["image", "prune", "-f"]);
    assert!(out.starts_with(&format!("Deleted Images:\ndeleted: {old}\n\nTotal reclaimed space: ")), "{out}");
    assert!(!out.ends_with(" 0B\n"), "{out}");
    assert!(blobs(&d) < before, "the old config and layer went: {} blobs of {before}", blobs(&d));
    assert_eq!(d.ok(&["images", "-q", "--filter", "dangling=true"]), "");
    // -a: every image no container uses.
    let out = load_image(&d, "extra:1", &[Layer::of_files(&[("x", b"x")])]);
    assert!(out.status.success(), "{}", stderr(&out));
    let extra = image_id(&d, "extra:1");
    d.ok(&["create", "--name", "keeper", "busybox", "true"]);
    let out = d.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.starts_with(&format!("Deleted Images:\nuntagged: extra:1\ndeleted: {extra}\n\nTotal reclaimed space: ")), "{out}");
    assert_eq!(d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]), "busybox:latest\n", "the container's image stays");
    d.ok(&["rm", "keeper"]);
    let out = d.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.starts_with(&format!("Deleted Images:\nuntagged: busybox:latest\ndeleted: {new}\n")), "{out}");
    assert_eq!((d.ok(&["images", "-q"]), blobs(&d), count(&d.root().join("snapshots"))), (String::new(), 0, 0), "nothing left");
}

#[test]
fn images_shows_dockers_columns_and_filters() {
    let d = Daemon::start();
    d.load_busybox();
    d.ok(&["tag", "busybox", "mine:1"]);
    let out = load_image(&d, "app:v1", &[Layer::of_files(&[("a", b"12345")])]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (bb, app) = (image_id(&d, "busybox")[7..19].to_string(), image_id(&d, "app:v1")[7..19].to_string());
    let table = d.ok(&["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "REPOSITORY   TAG       IMAGE ID       CREATED   SIZE", "{table}");
    assert_eq!(lines[1], format!("app          v1        {app}   N/A       5B"), "{table}");
    assert!(lines[2].starts_with(&format!("busybox      latest    {bb}   N/A       ")) && lines[2].ends_with("MB"), "{table}");
    assert!(lines[3].starts_with(&format!("mine         1         {bb}   ")), "{table}");
    assert_eq!(d.ok(&["images", "-q"]), format!("{app}\n{bb}\n{bb}\n"));
    assert_eq!(d.ok(&["image", "ls", "-a", "-q", "--no-trunc", "app"]), format!("{}\n", image_id(&d, "app:v1")));
    let names = |args: &[&str]| d.ok(&[&["images", "--format", "{{.Repository}}:{{.Tag}}"][..], args].concat());
    assert_eq!(names(&["--filter", "reference=busy*"]), "busybox:latest\n");
    assert_eq!(names(&["--filter", "reference=*:v1", "--filter", "reference=mine"]), "app:v1\nmine:1\n");
    assert_eq!(names(&["mine:1"]), "mine:1\n");
    assert_eq!(names(&["--filter", "dangling=false"]), "app:v1\nbusybox:latest\nmine:1\n");
    assert_eq!(names(&["--filter", "dangling=true"]), "");
    let digests = d.ok(&["images", "--digests", "app"]);
    assert_eq!(digests.lines().next().unwrap(), "REPOSITORY   TAG       DIGEST    IMAGE ID       CREATED   SIZE", "{digests}");
    assert_eq!(digests.lines().nth(1).unwrap(), format!("app          v1        <none>    {app}   N/A       5B"));
    let out = d.rind(&["images", "--filter", "label=x"]);
    assert!(!out.status.success() && stderr(&out).contains("invalid filter \"label=x\""), "{}", stderr(&out));
}
