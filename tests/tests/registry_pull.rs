//! Issue 11: `rind pull`, `push`, `login` and `logout` against Debian's
//! docker-registry, started by each test on 127.0.0.1 (plain HTTP, TLS with
//! the test's CA, htpasswd, bearer tokens from the test's token server).

use std::path::Path;
use std::process::Stdio;

use rind_tests::daemon::Daemon;
use rind_tests::fake_registry::{Blob, FakeRegistry};
use rind_tests::image::{self, Layer};
use rind_tests::registry::Registry;
use rind_tests::*;

/// busybox pushed into `reg` as `name` (REPO:TAG).
fn seed(reg: &Registry, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    make_rootfs(&rootfs);
    let archive = dir.path().join("busybox.tar");
    image::write_oci_archive(&rootfs, "busybox:latest", &["sh"], &archive);
    reg.push_oci_archive(&archive, name);
}

fn repo(prefix: &str) -> String {
    format!("rind/{}", unique_id(prefix))
}

/// A rindd whose certs.d is its own (removed with the returned dir).
fn daemon_with(extra: &str) -> (Daemon, tempfile::TempDir) {
    let certs = tempfile::Builder::new().prefix("certs").tempdir_in("/run").unwrap();
    let d = Daemon::start_with_config(&format!("debug = false\ncerts_dir = \"{}\"\n{extra}", certs.path().display()));
    (d, certs)
}

/// `rind` with its own docker config dir.
fn rind_in(d: &Daemon, config: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut c = d.rind_cmd();
    c.args(args).env("DOCKER_CONFIG", config).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn blobs(d: &Daemon) -> usize {
    std::fs::read_dir(d.root().join("content/blobs/sha256")).map(|r| r.count()).unwrap_or(0)
}

#[test]
fn push_then_pull_round_trip_with_identical_digests() {
    let reg = Registry::plain();
    let (d, _certs) = daemon_with("");
    d.load_busybox();
    let name = reg.image(&format!("{}:v1", repo("rt")));
    d.ok(&["tag", "busybox:latest", &name]);
    let pushed = d.ok(&["push", &name]);
    assert!(pushed.contains("Pushed"), "{pushed}");
    let digest = pushed
        .lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .expect("a digest line")
        .to_string();
    // The registry holds what rind says it pushed.
    assert_eq!(reg.inspect(name.split_once('/').unwrap().1)["Digest"], digest);
    // A second push finds every layer there.
    assert!(d.ok(&["push", &name]).contains("Layer already exists"));

    d.ok(&["rmi", &name]);
    d.ok(&["rmi", "busybox:latest"]);
    d.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(blobs(&d), 0, "nothing of the image is left before the pull");
    let out = d.ok(&["pull", &name]);
    // Plain lines (stdout is no terminal): docker's, no escapes.
    assert!(!out.contains('\x1b'), "{out:?}");
    for want in [
        "v1: Pulling from",
        ": Pulling fs layer",
        ": Verifying Checksum",
        ": Download complete",
        ": Pull complete",
        &format!("Digest: {digest}"),
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
    assert!(out.contains(&format!("Status: Downloaded newer image for {name}")), "{out}");
    assert_eq!(d.ok(&["run", "--rm", &name, "echo", "pulled"]).trim(), "pulled");
    // Pulled again: nothing to fetch.
    let again = d.ok(&["pull", &name]);
    assert!(again.contains("Already exists") && again.contains("Image is up to date"), "{again}");
    // By digest, the same image.
    let by_digest = format!("{}@{digest}", name.rsplit_once(':').unwrap().0);
    assert!(d.ok(&["pull", "-q", &by_digest]).contains(&digest));
    // Pulled by tag, the image knows its repository digest (docker's RepoDigests).
    let inspect: serde_json::Value = serde_json::from_str(&d.ok(&["image", "inspect", &name])).unwrap();
    assert_eq!(inspect[0]["RepoDigests"], serde_json::json!([by_digest]), "{inspect}");
    let listed = d.ok(&["images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"]);
    let repo_name = name.rsplit_once(':').unwrap().0;
    assert!(listed.lines().any(|l| l == format!("{repo_name} v1 {digest}")), "{listed}");
    // The last tag of the repository goes, and its digest reference with it.
    d.ok(&["rmi", &name]);
    assert_eq!(d.ok(&["images", "-q"]), "", "{}", d.ok(&["images", "--digests"]));
}

#[test]
fn a_second_repository_mounts_the_layers_the_first_pushed() {
    let reg = Registry::plain();
    let (d, _certs) = daemon_with("");
    d.load_busybox();
    let (first, second) = (reg.image(&format!("{}:v1", repo("one"))), reg.image(&format!("{}:v1", repo("two"))));
    d.ok(&["tag", "busybox:latest", &first]);
    assert!(d.ok(&["push", &first]).contains("Pushed"));
    d.ok(&["tag", "busybox:latest", &second]);
    let out = d.ok(&["push", &second]);
    let from = first.split_once('/').unwrap().1.rsplit_once(':').unwrap().0;
    assert!(out.contains(&format!("Mounted from {from}")) && !out.contains("Pushed"), "{out}");
    // rmi takes several names; one that fails does not stop the others.
    let o = d.rind(&["rmi", "no-such-image:x", &second, &first, "busybox:latest"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-image"), "{o:?}");
    assert!(!d.ok(&["images"]).contains("rind/"), "the others were removed");
    d.ok(&["pull", &second]);
    assert!(d.ok(&["run", "--rm", &second, "echo", "mounted"]).contains("mounted"));
}

#[test]
fn pulls_go_through_the_proxy_the_environment_names_unless_no_proxy_says_not() {
    let reg = Registry::plain();
    let name = format!("{}:v1", repo("proxy"));
    seed(&reg, &name);
    let proxy = rind_tests::proxy::Proxy::start();
    let certs = tempfile::Builder::new().prefix("certs").tempdir_in("/run").unwrap();
    let config = format!("debug = false\ncerts_dir = \"{}\"\n", certs.path().display());
    let d = Daemon::start_with_env(&config, &[("HTTP_PROXY", &proxy.url()), ("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", "")]);
    d.ok(&["pull", &reg.image(&name)]);
    let manifest = format!("GET http://{}/v2/{}/manifests/v1 HTTP/1.1", reg.addr(), name.split_once(':').unwrap().0);
    assert!(proxy.seen().contains(&manifest), "{manifest:?} in {:?}", proxy.seen());
    drop(d);
    let (before, host) = (proxy.seen().len(), reg.addr().split_once(':').unwrap().0.to_string());
    let d = Daemon::start_with_env(&config, &[("HTTP_PROXY", &proxy.url()), ("NO_PROXY", &host)]);
    d.ok(&["pull", &reg.image(&name)]);
    assert_eq!(proxy.seen().len(), before, "NO_PROXY={host} goes direct: {:?}", proxy.seen());
}

#[test]
fn on_a_terminal_pull_draws_bars_on_stdout() {
    let reg = Registry::plain();
    let name = format!("{}:v1", repo("tty"));
    seed(&reg, &name);
    let (d, _certs) = daemon_with("");
    // script(1) gives rind a terminal; its stdout is what the terminal showed.
    let line = format!("{} -H {} pull {} 2>/dev/null", workspace_bin("rind").display(), d.host(), reg.image(&name));
    let o = std::process::Command::new("script").args(["-qec", &line, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let shown = stdout(&o);
    assert!(shown.contains("\x1b["), "a terminal gets escapes: {shown:?}");
    for want in ["Pull complete", "Digest: sha256:", "Status: Downloaded newer image"] {
        assert!(shown.contains(want), "{want:?} in {shown:?}");
    }
}

#[test]
fn run_pulls_a_missing_image_and_pull_never_does_not() {
    let reg = Registry::plain();
    let name = format!("{}:v1", repo("run"));
    seed(&reg, &name);
    let (d, _certs) = daemon_with("");
    let full = reg.image(&name);
    let never = d.rind(&["run", "--rm", "--pull", "never", &full, "true"]);
    assert_eq!(never.status.code(), Some(125));
    assert!(stderr(&never).contains("no such image"), "{}", stderr(&never));
    let o = d.rind(&["run", "--rm", &full, "echo", "hello"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Pull progress goes to stderr: stdout is the container's alone.
    assert_eq!(stdout(&o), "hello\n");
    assert!(stderr(&o).contains(&format!("Unable to find image '{full}' locally")), "{}", stderr(&o));
}

#[test]
fn a_multi_platform_index_gives_the_asked_platform() {
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    image::write_oci_index_layout(&layout, "v1", &image::two_platform_images());
    let name = format!("{}:v1", repo("multi"));
    reg.push_oci_layout(&layout, "v1", &name);
    let (d, _certs) = daemon_with("");
    let full = reg.image(&name);
    d.ok(&["pull", "--platform", "linux/arm64", &full]);
    let arm = d.ok(&["image", "inspect", "-f", "{{.Architecture}}", &full]);
    assert_eq!(arm.trim(), "arm64");
    // The host's platform (amd64 here) is the default.
    d.ok(&["pull", &full]);
    assert_eq!(d.ok(&["run", "--rm", &full, "echo", "amd64 runs"]).trim(), "amd64 runs");
    let none = d.rind(&["pull", "--platform", "linux/s390x", &full]);
    assert!(!none.status.success());
    assert!(
        stderr(&none).contains("no manifest for platform linux/s390x") && stderr(&none).contains("linux/arm64/v8"),
        "{}",
        stderr(&none)
    );
    let bad = d.rind(&["pull", "--platform", "linux", &full]);
    assert!(stderr(&bad).contains("invalid platform \"linux\""), "{}", stderr(&bad));
}

#[test]
fn a_mirror_serves_docker_hub_names() {
    let reg = Registry::plain();
    // What the mirror holds under Docker Hub's path for `busybox`.
    seed(&reg, "library/busybox:latest");
    let (d, _certs) = daemon_with(&format!("[registries.\"docker.io\"]\nmirrors = [\"http://{}\"]\n", reg.addr()));
    let out = d.ok(&["pull", "busybox"]);
    assert!(out.contains("Status: Downloaded newer image for busybox:latest"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "from the mirror"]).trim(), "from the mirror");
    assert!(reg.log().contains("GET /v2/library/busybox/manifests/latest"), "the mirror was asked");
}

#[test]
fn a_corrupted_blob_is_refused_and_nothing_kept() {
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let archive = t.path().join("small.tar");
    image::write_oci_image(
        "small:latest",
        &[Layer::of_files(&[("hello", b"intact".as_slice())])],
        image::busybox_config(&["sh"]),
        &archive,
    );
    let name = format!("{}:v1", repo("bad"));
    reg.push_oci_archive(&archive, &name);
    let manifest: serde_json::Value = serde_json::from_slice(&reg.manifest(&name)).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    reg.corrupt_blob(&layer);
    let (d, _certs) = daemon_with("");
    let o = d.rind(&["pull", &reg.image(&name)]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&format!("blob {layer}")) && e.contains("digest mismatch"), "{e}");
    assert_eq!(d.ok(&["images", "-q"]), "", "no image recorded");
    let layer_hex = layer.trim_start_matches("sha256:");
    assert!(!d.root().join("content/blobs/sha256").join(layer_hex).exists(), "the bad blob is not kept");
    let ingest: Vec<_> = std::fs::read_dir(d.root().join("content/ingest")).unwrap().flatten().collect();
    assert!(ingest.is_empty(), "no partial download kept: {ingest:?}");
}

#[test]
fn an_interrupted_pull_leaves_no_image_and_the_next_one_succeeds() {
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    // Big enough that the pull is still downloading when it is cut.
    let big: Vec<u8> = (0..48u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let archive = t.path().join("big.tar");
    image::write_oci_image(
        "big:latest",
        &[image::busybox_layer(), Layer::of_files(&[("big", &big)])],
        image::busybox_config(&["sh"]),
        &archive,
    );
    let name = reg.image(&format!("{}:v1", repo("cut")));
    reg.push_oci_archive(&archive, name.split_once('/').unwrap().1);
    let (mut d, _certs) = daemon_with("");
    let mut pull = d.rind_cmd().args(["pull", &name]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    // The pull has started on its layers: then rindd dies.
    let mut out = std::io::BufReader::new(pull.stdout.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0 && !line.contains("Pulling fs layer") {
        line.clear();
    }
    d.kill9();
    let _ = pull.wait();
    d.spawn();
    assert_eq!(d.ok(&["images", "-q"]), "", "no half image");
    let out = d.ok(&["pull", &name]);
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", &name, "sh", "-c", "wc -c < /big"]).trim(), (48u32 << 20).to_string());
}

#[test]
fn tls_registry_with_the_ca_in_certs_d() {
    let reg = Registry::tls();
    let name = format!("{}:v1", repo("tls"));
    seed(&reg, &name);
    let (d, certs) = daemon_with("");
    // Without the CA: refused, with a TLS error.
    let o = d.rind(&["pull", &reg.image(&name)]);
    assert!(!o.status.success(), "an unknown CA is refused");
    reg.write_certs_d(certs.path());
    d.ok(&["pull", &reg.image(&name)]);
}

#[test]
fn a_registry_that_requires_client_certs_gets_the_ones_in_certs_d() {
    let reg = Registry::tls_with_client_certs();
    let (d, certs) = daemon_with("");
    d.load_busybox();
    let name = reg.image(&format!("{}:v1", repo("mtls")));
    d.ok(&["tag", "busybox:latest", &name]);
    let host = reg.write_certs_d(certs.path());
    // The CA alone is not enough: the registry asks for a client cert.
    let key = std::fs::read(host.join("client.key")).unwrap();
    std::fs::remove_file(host.join("client.key")).unwrap();
    let o = d.rind(&["push", &name]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("client.cert has no client.key beside it"), "{err}");
    std::fs::remove_file(host.join("client.cert")).unwrap();
    assert!(!d.rind(&["push", &name]).status.success(), "no client cert: the registry refuses");
    reg.write_certs_d(certs.path());
    assert_eq!(std::fs::read(host.join("client.key")).unwrap(), key);
    let pushed = d.ok(&["push", &name]);
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    d.ok(&["rmi", &name]);
    d.ok(&["pull", &name]);
    assert!(d.ok(&["run", "--rm", &name, "echo", "mtls"]).contains("mtls"));
}

#[test]
fn login_logout_and_basic_auth_pulls() {
    let reg = Registry::htpasswd("alice", "s3cret");
    let name = format!("{}:v1", repo("auth"));
    seed(&reg, &name);
    let (d, _certs) = daemon_with("");
    let config = tempfile::tempdir().unwrap();
    let full = reg.image(&name);
    let anon = rind_in(&d, config.path(), &["pull", &full], None);
    assert!(!anon.status.success(), "anonymous pull refused");
    let wrong = rind_in(&d, config.path(), &["login", "-u", "alice", "--password-stdin", reg.addr()], Some("nope\n"));
    assert!(!wrong.status.success(), "a wrong password is refused: {}", stdout(&wrong));
    assert!(!config.path().join("config.json").exists(), "nothing stored for a refused login");
    let ok = rind_in(&d, config.path(), &["login", "-u", "alice", "--password-stdin", reg.addr()], Some("s3cret\n"));
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok).trim(), "Login Succeeded");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(config.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["auths"][reg.addr()]["auth"], "YWxpY2U6czNjcmV0", "docker's base64 user:password");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(config.path().join("config.json")).unwrap().permissions().mode() & 0o777, 0o600);
    let pulled = rind_in(&d, config.path(), &["pull", &full], None);
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    let out = rind_in(&d, config.path(), &["logout", reg.addr()], None);
    assert_eq!(stdout(&out).trim(), format!("Removing login credentials for {}", reg.addr()));
    let out = rind_in(&d, config.path(), &["logout", reg.addr()], None);
    assert_eq!(stdout(&out).trim(), format!("Not logged in to {}", reg.addr()));
}

#[test]
fn bearer_tokens_from_the_registrys_token_server() {
    let reg = Registry::token("bob", "hunter2");
    let name = format!("{}:v1", repo("tok"));
    seed(&reg, &name);
    let (d, _certs) = daemon_with("");
    let config = tempfile::tempdir().unwrap();
    let full = reg.image(&name);
    let before = reg.token_server().tokens_issued();
    let ok = rind_in(&d, config.path(), &["login", "-u", "bob", "--password-stdin", reg.addr()], Some("hunter2\n"));
    assert!(ok.status.success(), "{}", stderr(&ok));
    let pulled = rind_in(&d, config.path(), &["pull", &full], None);
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert!(reg.token_server().tokens_issued() > before, "tokens came from the token server");
    let asked = reg.token_server().requests();
    assert!(asked.iter().any(|r| r.scopes.iter().any(|s| s.contains(&format!("{}:pull", name.split(':').next().unwrap())))), "{asked:?}");
    // Push with the same login: a token with push rights.
    let pushed_name = format!("{}/{}:v2", reg.addr(), repo("tokpush"));
    d.ok(&["tag", &full, &pushed_name]);
    let pushed = rind_in(&d, config.path(), &["push", &pushed_name], None);
    assert!(pushed.status.success(), "{}", stderr(&pushed));
}

#[test]
fn bad_names_and_unknown_images_are_clear_errors() {
    let reg = Registry::plain();
    let (d, _certs) = daemon_with("");
    let o = d.rind(&["pull", "Not/Valid"]);
    assert!(stderr(&o).contains("invalid reference format \"Not/Valid\""), "{}", stderr(&o));
    let missing = reg.image("rind/absent:v1");
    let o = d.rind(&["pull", &missing]);
    assert!(stderr(&o).contains(&format!("manifest for {missing} not found")), "{}", stderr(&o));
}

#[test]
fn a_registry_that_sends_too_much_is_cut_at_the_size() {
    let reg = FakeRegistry::start(Blob::TooLong);
    let (d, _certs) = daemon_with("");
    let o = d.rind(&["pull", &format!("{}/x:v1", reg.addr())]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&format!("blob {}", reg.layer())) && e.contains("sent more than its"), "{e}");
    assert_eq!(d.ok(&["images", "-q"]), "");
    assert_eq!(blobs(&d), 0, "nothing kept: {:?}", std::fs::read_dir(d.root().join("content/blobs/sha256")).map(|r| r.count()));
}

#[test]
fn a_registry_that_goes_silent_times_out_and_nothing_is_kept() {
    let reg = FakeRegistry::start(Blob::Hang(usize::MAX));
    // Silence longer than this is a timeout; scaled, so a busy machine's slow answers are not one.
    let timeout = patience(std::time::Duration::from_secs(1)).as_secs_f64().ceil() as u64;
    let (d, _certs) = daemon_with(&format!("registry_timeout = {timeout}\n"));
    let o = d.rind(&["pull", &format!("{}/x:v1", reg.addr())]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&format!("blob {}", reg.layer())) && e.contains("timed out"), "{e}");
    let tries = reg.requests().iter().filter(|r| r.ends_with(&reg.layer())).count();
    assert!(tries > 1, "a silent registry is tried again: {:?}", reg.requests());
    assert_eq!(d.ok(&["images", "-q"]), "");
    assert_eq!(blobs(&d), 0, "nothing kept");
    // What arrived waits in the ingest directory for the next pull to resume.
    let partial = d.root().join("content/ingest").join(format!("pull-{}", reg.layer().trim_start_matches("sha256:")));
    assert!(std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0), "{}", partial.display());
    // Silent once, then answering: the pull goes on.
    let reg = FakeRegistry::start(Blob::Hang(1));
    let name = format!("{}/x:v1", reg.addr());
    d.ok(&["pull", &name]);
    let gets = reg.requests().iter().filter(|r| r.ends_with(&reg.layer())).count();
    assert_eq!(gets, 2, "one silent answer, then the blob: {:?}", reg.requests());
    assert_eq!(d.ok(&["run", "--rm", &name, "cat", "/hello"]), "from the fake registry\n");
}

#[test]
fn a_registry_that_fails_for_a_while_is_tried_again() {
    let reg = FakeRegistry::start(Blob::Unavailable(2));
    let (d, _certs) = daemon_with("");
    let name = format!("{}/x:v1", reg.addr());
    d.ok(&["pull", &name]);
    let gets = reg.requests().iter().filter(|r| r.ends_with(&reg.layer())).count();
    assert_eq!(gets, 3, "two 503s, then the blob: {:?}", reg.requests());
    assert_eq!(d.ok(&["run", "--rm", &name, "cat", "/hello"]), "from the fake registry\n");
}

#[test]
fn a_blob_redirected_to_another_host_is_followed() {
    let reg = FakeRegistry::start(Blob::Redirect);
    let (d, _certs) = daemon_with("");
    let name = format!("{}/x:v1", reg.addr());
    d.ok(&["pull", &name]);
    assert_eq!(d.ok(&["run", "--rm", &name, "cat", "/hello"]), "from the fake registry\n");
}

#[test]
fn a_malformed_manifest_is_a_clear_error() {
    let reg = FakeRegistry::malformed();
    let (d, _certs) = daemon_with("");
    let o = d.rind(&["pull", &format!("{}/x:v1", reg.addr())]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("malformed manifest"), "{}", stderr(&o));
    assert_eq!(d.ok(&["images", "-q"]), "");
}
