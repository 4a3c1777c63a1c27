//! The registry harness (tests/src/registry.rs) checked with skopeo, before
//! rind can pull: each set-up of Debian's docker-registry starts, takes an
//! image, gives it back, refuses what it must, and leaves nothing behind.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rind_tests::image::{self, Layer};
use rind_tests::registry::{Registry, BASIC_REALM, TOKEN_SERVICE};
use rind_tests::{make_rootfs, pid_alive, require_root, stderr, unique_id, wait_until};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A one-layer image whose only file holds `content`, as an OCI archive.
fn small_archive(dir: &Path, content: &str) -> PathBuf {
    let archive = dir.join(format!("{}.tar", unique_id("img")));
    let layer = Layer::of_files(&[("hello", content.as_bytes())]);
    image::write_oci_image("small:latest", &[layer], image::busybox_config(&["sh"]), &archive);
    archive
}

/// A repository name no other test uses.
fn repo(prefix: &str) -> String {
    format!("rind/{}", unique_id(prefix))
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn plain_registry_round_trips_busybox_by_tag_and_digest() {
    require_root();
    let reg = Registry::plain();
    assert!(reg.url().starts_with("http://127.0.0.1:"), "{}", reg.url());
    let v2 = reg.get("/v2/", &reg.access()).expect("the registry answers");
    assert_eq!(v2.status, 200);
    assert_eq!(v2.header("Docker-Distribution-API-Version"), Some("registry/2.0"));

    let t = tempfile::tempdir().unwrap();
    make_rootfs(&t.path().join("rootfs"));
    let archive = t.path().join("busybox.tar");
    image::write_oci_archive(&t.path().join("rootfs"), "busybox:latest", &["sh"], &archive);
    let want = image::oci_archive_manifest_digest(&archive);
    let name = repo("busybox");

    let pushed = reg.push_oci_archive(&archive, &format!("{name}:latest"));
    assert_eq!(pushed, want, "the registry holds the archive's manifest unchanged");
    let info = reg.inspect(&format!("{name}:latest"));
    assert_eq!(info["Digest"], want);
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Layers"].as_array().unwrap().len(), 1);

    let by_digest = reg.manifest(&format!("{name}@{want}"));
    assert_eq!(sha256(&by_digest), want);
    let manifest: Value = serde_json::from_slice(&by_digest).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert!(reg.blob_path(layer).is_file(), "the layer is stored where blob_path says");
}

#[test]
fn corrupted_blob_is_refused_by_a_verifying_client() {
    require_root();
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let name = repo("corrupt");
    reg.push_oci_archive(&small_archive(t.path(), "intact"), &format!("{name}:v1"));
    let manifest: Value = serde_json::from_slice(&reg.manifest(&format!("{name}:v1"))).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();

    let good = reg.skopeo_pull(&format!("{name}:v1"), &format!("oci:{}:v1", t.path().join("good").display()), &reg.access());
    assert!(good.status.success(), "an intact image copies: {}", stderr(&good));

    let size = std::fs::metadata(reg.blob_path(&layer)).unwrap().len();
    reg.corrupt_blob(&layer);
    assert_eq!(std::fs::metadata(reg.blob_path(&layer)).unwrap().len(), size, "corruption keeps the size");
    let bad = reg.skopeo_pull(&format!("{name}:v1"), &format!("oci:{}:v1", t.path().join("bad").display()), &reg.access());
    assert!(!bad.status.success(), "skopeo took a corrupted blob");
    let err = stderr(&bad);
    assert!(err.contains("igest") && err.contains(layer.trim_start_matches("sha256:")), "{err}");
}

#[test]
fn multi_platform_index_round_trips() {
    require_root();
    let reg = Registry::plain();
    let t = tempfile::tempdir().unwrap();
    let images = image::two_platform_images();
    let layout = t.path().join("layout");
    let index_digest = image::write_oci_index_layout(&layout, "v1", &images);
    let name = repo("multi");

    let pushed = reg.push_oci_layout(&layout, "v1", &format!("{name}:v1"));
    assert_eq!(pushed, index_digest);
    let raw = reg.manifest(&format!("{name}:v1"));
    assert_eq!(sha256(&raw), index_digest);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let archs: Vec<&str> = index["manifests"].as_array().unwrap().iter().map(|m| m["platform"]["architecture"].as_str().unwrap()).collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    assert_eq!(index["manifests"][1]["platform"]["variant"], "v8");

    let amd64 = reg.inspect(&format!("{name}:v1"));
    assert_eq!(amd64["Architecture"], "amd64");
    let arm_layer = image::digest(&images[1].layers[0].blob);
    let out = reg.skopeo_inspect(&format!("{name}:v1"), &reg.access(), false, &["--override-arch", "arm64"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let arm64 = json(&out);
    assert_eq!(arm64["Architecture"], "arm64");
    assert_eq!(arm64["Layers"][0], arm_layer);
}

#[test]
fn tls_registry_is_trusted_only_with_its_ca() {
    require_root();
    let reg = Registry::tls();
    assert_eq!(reg.url(), format!("https://{}", reg.addr()));
    let t = tempfile::tempdir().unwrap();
    let name = repo("tls");

    assert!(reg.get("/v2/", &reg.access().without_ca()).is_none(), "curl trusted an unknown CA");
    assert_eq!(reg.get("/v2/", &reg.access()).map(|r| r.status), Some(200));
    let archive = small_archive(t.path(), "over tls");
    let refused = reg.skopeo_push(
        &format!("oci-archive:{}", archive.display()),
        &format!("{name}:v1"),
        &reg.access().without_ca(),
        &t.path().join("d"),
    );
    assert!(!refused.status.success(), "skopeo pushed without the CA");
    assert!(stderr(&refused).contains("x509"), "{}", stderr(&refused));

    let digest = reg.push_oci_archive(&archive, &format!("{name}:v1"));
    assert_eq!(digest, image::oci_archive_manifest_digest(&archive));

    // docker's layout: <certs.d>/127.0.0.1:PORT/ca.crt, read by a Go client as is.
    let host_dir = reg.write_certs_d(&t.path().join("certs.d"));
    assert_eq!(host_dir, t.path().join("certs.d").join(reg.addr()));
    assert_eq!(std::fs::read_to_string(host_dir.join("ca.crt")).unwrap(), reg.tls_config().ca_pem);
    assert!(!host_dir.join("client.cert").exists(), "no client cert where none is required");
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--no-creds", "--raw"])
        .arg(format!("--cert-dir={}", host_dir.display()))
        .arg(format!("docker://{}", reg.image(&format!("{name}:v1"))))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sha256(&out.stdout), digest);
}

#[test]
fn tls_registry_with_client_certs_refuses_clients_without_one() {
    require_root();
    let reg = Registry::tls_with_client_certs();
    let t = tempfile::tempdir().unwrap();
    let name = repo("mtls");
    assert!(reg.get("/v2/", &reg.access().without_client_cert()).is_none(), "served a client without a cert");
    assert_eq!(reg.get("/v2/", &reg.access()).map(|r| r.status), Some(200));

    let digest = reg.push_oci_archive(&small_archive(t.path(), "mtls"), &format!("{name}:v1"));
    let refused = reg.skopeo_inspect(&format!("{name}:v1"), &reg.access().without_client_cert(), true, &[]);
    assert!(!refused.status.success(), "skopeo read without a client cert");
    assert!(stderr(&refused).contains("certificate"), "{}", stderr(&refused));
    let ok = reg.skopeo_inspect(&format!("{name}:v1"), &reg.access(), true, &[]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(sha256(&ok.stdout), digest);

    let host_dir = reg.write_certs_d(&t.path().join("certs.d"));
    for f in ["ca.crt", "client.cert", "client.key"] {
        assert!(host_dir.join(f).is_file(), "{f} missing from {}", host_dir.display());
    }
}

#[test]
fn htpasswd_registry_needs_the_right_credentials() {
    require_root();
    let reg = Registry::htpasswd("alice", "s3cret");
    let t = tempfile::tempdir().unwrap();
    let name = repo("basic");
    let anon = reg.access().anonymous();

    let challenge = reg.get("/v2/", &anon).unwrap();
    assert_eq!(challenge.status, 401);
    assert_eq!(challenge.header("WWW-Authenticate"), Some(format!("Basic realm=\"{BASIC_REALM}\"").as_str()));
    assert_eq!(reg.get("/v2/", &reg.access()).map(|r| r.status), Some(200));

    let archive = small_archive(t.path(), "basic");
    let src = format!("oci-archive:{}", archive.display());
    let reference = format!("{name}:v1");
    for (who, a) in [("anonymous", anon.clone()), ("wrong password", reg.access().creds("alice", "wrong"))] {
        let out = reg.skopeo_push(&src, &reference, &a, &t.path().join("d"));
        assert!(!out.status.success(), "{who} pushed");
        let err = stderr(&out).to_lowercase();
        assert!(err.contains("unauthorized") || err.contains("authentication required"), "{who}: {err}");
    }
    let digest = reg.push(&src, &reference);
    assert!(!reg.skopeo_inspect(&reference, &anon, true, &[]).status.success(), "anonymous read");
    let ok = reg.skopeo_inspect(&reference, &reg.access(), true, &[]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(sha256(&ok.stdout), digest);
}

#[test]
fn token_registry_accepts_tokens_from_the_test_server_only_for_what_they_grant() {
    require_root();
    let reg = Registry::token("bob", "hunter2");
    let ts = reg.token_server();
    let t = tempfile::tempdir().unwrap();
    let name = repo("token");
    let reference = format!("{name}:v1");
    let anon = reg.access().anonymous();

    let challenge = reg.get("/v2/", &anon).unwrap();
    assert_eq!(challenge.status, 401);
    let www = challenge.header("WWW-Authenticate").unwrap();
    assert_eq!(www, format!("Bearer realm=\"{}\",service=\"{TOKEN_SERVICE}\"", ts.realm()));

    let archive = small_archive(t.path(), "token");
    let src = format!("oci-archive:{}", archive.display());
    let out = reg.skopeo_push(&src, &reference, &anon, &t.path().join("d"));
    assert!(!out.status.success(), "anonymous push went through");
    let asked = ts.requests();
    assert!(!asked.is_empty(), "skopeo never asked for a token");
    assert!(asked.iter().all(|r| r.user.is_none() && r.granted.is_empty() && r.status == 200), "{asked:?}");

    let out = reg.skopeo_push(&src, &reference, &reg.access().creds("bob", "wrong"), &t.path().join("d"));
    assert!(!out.status.success(), "a wrong password pushed");
    assert!(ts.requests().iter().any(|r| r.user.as_deref() == Some("bob") && !r.authenticated && r.status == 401));

    let before = ts.tokens_issued();
    let digest = reg.push(&src, &reference);
    assert!(ts.tokens_issued() > before, "no token was issued for the push");
    let push_scope = format!("repository:{name}:pull,push");
    let granted = ts.requests().into_iter().find(|r| r.authenticated && r.scopes.contains(&push_scope));
    let granted = granted.unwrap_or_else(|| panic!("no authenticated request for {push_scope}: {:?}", ts.requests()));
    assert_eq!(granted.service.as_deref(), Some(TOKEN_SERVICE));
    assert_eq!(granted.granted, [push_scope]);

    // Anonymous reads: refused with an empty grant, accepted once pull is granted.
    assert!(!reg.skopeo_inspect(&reference, &anon, true, &[]).status.success(), "anonymous read with no grant");
    ts.set_anonymous_pull(true);
    let out = reg.skopeo_inspect(&reference, &anon, true, &[]);
    assert!(out.status.success(), "anonymous pull: {}", stderr(&out));
    assert_eq!(sha256(&out.stdout), digest);
    let out = reg.skopeo_push(&src, &format!("{name}:anon"), &anon, &t.path().join("d"));
    assert!(!out.status.success(), "anonymous pull rights pushed");

    // Injected failures: the next request fails, the one after works.
    ts.fail_next(1, 503);
    let n = ts.requests().len();
    let out = reg.skopeo_inspect(&reference, &reg.access(), true, &[]);
    assert!(!out.status.success(), "a 503 from the token server went unnoticed");
    assert_eq!(ts.requests()[n].status, 503);
    let out = reg.skopeo_inspect(&reference, &reg.access(), true, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// One raw HTTP/1.1 request; the reply's status and body.
fn http(addr: std::net::SocketAddr, request: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = reply.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn token_server_oauth_form_tokens_open_exactly_their_scope() {
    require_root();
    let reg = Registry::token("carol", "pw");
    let ts = reg.token_server();
    let t = tempfile::tempdir().unwrap();
    let name = repo("oauth");
    reg.push_oci_archive(&small_archive(t.path(), "oauth"), &format!("{name}:v1"));

    let form = |user: &str, scope: &str| {
        let body = format!("grant_type=password&service={TOKEN_SERVICE}&client_id=rind-tests&username={user}&password=pw&scope={scope}");
        let req = format!(
            "POST /token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            ts.addr(),
            body.len()
        );
        http(ts.addr(), &req)
    };
    let (status, _) = form("mallory", &format!("repository%3A{name}%3Apull"));
    assert_eq!(status, 401);
    let (status, reply) = form("carol", &format!("repository%3A{name}%3Apull"));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["scope"], format!("repository:{name}:pull"));
    let token = reply["access_token"].as_str().unwrap();
    let bearer = format!("Authorization: Bearer {token}");
    let tags = reg.get_with_headers(&format!("/v2/{name}/tags/list"), &reg.access().anonymous(), &[&bearer]).unwrap();
    assert_eq!(tags.status, 200, "the registry refused the token: {}", reg.log());
    let tags: Value = serde_json::from_slice(&tags.body).unwrap();
    assert_eq!(tags["tags"][0], "v1");
    // The same token opens no other repository.
    let other = reg.get_with_headers("/v2/rind/elsewhere/tags/list", &reg.access().anonymous(), &[&bearer]).unwrap();
    assert_eq!(other.status, 401);

    let (status, _) = http(ts.addr(), &format!("GET /nope HTTP/1.1\r\nHost: {}\r\n\r\n", ts.addr()));
    assert_eq!(status, 404);
}

#[test]
fn tls_and_token_auth_combine() {
    require_root();
    let reg = Registry::builder().tls().token("dave", "pw").start();
    let t = tempfile::tempdir().unwrap();
    let name = repo("tlstoken");
    let digest = reg.push_oci_archive(&small_archive(t.path(), "both"), &format!("{name}:v1"));
    assert!(reg.token_server().tokens_issued() > 0);
    let out = reg.skopeo_inspect(&format!("{name}:v1"), &reg.access().without_ca(), true, &[]);
    assert!(!out.status.success(), "read without the CA");
    assert_eq!(sha256(&reg.manifest(&format!("{name}:v1"))), digest);
}

#[test]
fn dropping_the_registry_leaves_no_process_server_or_files() {
    require_root();
    let reg = Registry::token("erin", "pw");
    let pid = reg.pid().unwrap() as i32;
    let dir = reg.dir().to_path_buf();
    let token_addr = reg.token_server().addr();
    assert!(pid_alive(pid));
    assert!(dir.join("registry.log").is_file());
    assert!(reg.log().contains("listening on"), "{}", reg.log());
    drop(reg);
    assert!(!pid_alive(pid), "docker-registry {pid} outlived its guard");
    assert!(!dir.exists(), "{} is left", dir.display());
    // A child another test is forking may hold a copy of the listener until
    // its exec closes it (close-on-exec): wait for that, not for the guard.
    wait_until("the token server's port to close", Duration::from_secs(10), || TcpStream::connect(token_addr).is_err());
}
