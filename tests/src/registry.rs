//! A Docker registry for the root integration tests: Debian's distribution
//! 2.8 (`docker-registry`) on 127.0.0.1, plain, TLS (with or without client
//! certificates), htpasswd or bearer tokens from a token server the test
//! serves; `skopeo` puts images in and reads them back without rind.
//!
//! Each [`Registry`] lives in its own temp dir, laid out as:
//! ```text
//! <dir>/config.yml           the registry's configuration
//!       registry.log         its stderr (logrus text), see Registry::log
//!       storage/docker/registry/v2/blobs/sha256/<xx>/<hex>/data
//!       tls/ca.crt           the CA (tls modes), server.{crt,key}, client.{cert,key}
//!       htpasswd             user:bcrypt (htpasswd mode)
//!       token/signer.crt     the token server's signing cert (= rootcertbundle)
//!       skopeo-certs/<mode>/ cert dirs handed to skopeo (ca.crt, client.cert, client.key)
//! ```
//! The registry listens on `127.0.0.1:0` and the port is read from its log
//! ("listening on 127.0.0.1:PORT"): no window in which another process could
//! take a port we picked. Drop kills it and removes the dir.

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use crate::{require_root, stderr};

/// Debian's distribution 2.8 (package `docker-registry`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The `service` the registry names in its bearer challenge and expects as the token's `aud`.
pub const TOKEN_SERVICE: &str = "rind-test-registry";
/// The `iss` the registry trusts.
pub const TOKEN_ISSUER: &str = "rind-test-token-issuer";
/// The realm of the htpasswd mode's basic challenge.
pub const BASIC_REALM: &str = "rind-test-realm";

/// How a registry is set up; [`Registry`]'s constructors cover the usual ones.
#[derive(Clone, Debug, Default)]
pub struct RegistryBuilder {
    tls: bool,
    client_certs: bool,
    auth: Option<AuthMode>,
}

#[derive(Clone, Debug)]
enum AuthMode {
    Htpasswd { user: String, password: String },
    Token { user: String, password: String },
}

impl RegistryBuilder {
    /// HTTPS with a server cert for 127.0.0.1 and localhost, signed by a CA made here.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// HTTPS that also requires a client cert signed by the test CA (`http.tls.clientcas`).
    pub fn client_certs(mut self) -> Self {
        self.tls = true;
        self.client_certs = true;
        self
    }

    /// Basic auth (`auth.htpasswd`) for one user.
    pub fn htpasswd(mut self, user: &str, password: &str) -> Self {
        self.auth = Some(AuthMode::Htpasswd { user: user.into(), password: password.into() });
        self
    }

    /// Bearer tokens (`auth.token`) from a [`TokenServer`] that knows one user.
    pub fn token(mut self, user: &str, password: &str) -> Self {
        self.auth = Some(AuthMode::Token { user: user.into(), password: password.into() });
        self
    }

    /// Starts the registry and waits until it answers `GET /v2/`.
    pub fn start(self) -> Registry {
        Registry::start(self)
    }
}

/// The test CA and the certs it signed, as files in the registry's dir.
pub struct Tls {
    pub ca_pem: String,
    pub ca_path: PathBuf,
    /// The registry's cert (SAN 127.0.0.1 and localhost) and key.
    pub server_cert_path: PathBuf,
    pub server_key_path: PathBuf,
    /// A client cert and key (PEM) signed by the CA; the registry requires one
    /// only when started with client certs, but they are always made.
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub client_cert_path: PathBuf,
    pub client_key_path: PathBuf,
    pub client_certs_required: bool,
}

/// What a client brings to the registry: credentials, trust in the test CA,
/// the client cert. [`Registry::access`] gives everything the registry needs.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub creds: Option<(String, String)>,
    pub trust_ca: bool,
    pub client_cert: bool,
}

impl Access {
    /// No credentials.
    pub fn anonymous(mut self) -> Self {
        self.creds = None;
        self
    }

    pub fn creds(mut self, user: &str, password: &str) -> Self {
        self.creds = Some((user.into(), password.into()));
        self
    }

    /// Without the test CA: the registry's cert is signed by an unknown authority.
    pub fn without_ca(mut self) -> Self {
        self.trust_ca = false;
        self
    }

    pub fn without_client_cert(mut self) -> Self {
        self.client_cert = false;
        self
    }
}

/// An HTTP reply read with curl.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// A running `docker-registry`, killed and its dir removed on drop.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: String,
    tls: Option<Tls>,
    creds: Option<(String, String)>,
    token: Option<TokenServer>,
}

impl Registry {
    /// Plain HTTP, no auth.
    pub fn plain() -> Registry {
        RegistryBuilder::default().start()
    }

    /// HTTPS with a CA the test makes ([`Registry::tls_config`]).
    pub fn tls() -> Registry {
        RegistryBuilder::default().tls().start()
    }

    /// HTTPS that requires a client cert signed by the test CA.
    pub fn tls_with_client_certs() -> Registry {
        RegistryBuilder::default().client_certs().start()
    }

    /// Plain HTTP with basic auth for `user`.
    pub fn htpasswd(user: &str, password: &str) -> Registry {
        RegistryBuilder::default().htpasswd(user, password).start()
    }

    /// Plain HTTP with bearer tokens from a [`TokenServer`] that knows `user`.
    pub fn token(user: &str, password: &str) -> Registry {
        RegistryBuilder::default().token(user, password).start()
    }

    /// Any combination (TLS with auth, …).
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    fn start(b: RegistryBuilder) -> Registry {
        require_root();
        assert!(Path::new(REGISTRY_BIN).exists(), "{REGISTRY_BIN} is missing: apt-get install docker-registry (scripts/install-deps.sh)");
        let dir = tempfile::Builder::new().prefix("registry").tempdir().unwrap();
        let tls = b.tls.then(|| make_tls(&dir.path().join("tls"), b.client_certs));
        let (auth_yaml, creds, token) = set_up_auth(b.auth.as_ref(), dir.path());
        let tls_yaml = tls.as_ref().map(tls_yaml).unwrap_or_default();
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: \"{}\"\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:0\n  secret: rind-test-secret\n{tls_yaml}{auth_yaml}",
            dir.path().join("storage").display()
        );
        fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // From here a panic drops the guard, which kills the registry.
        let mut reg = Registry { child: Some(child), dir, addr: String::new(), tls, creds, token };
        reg.addr = reg.wait_listening();
        reg.wait_for("the registry to answer GET /v2/", Duration::from_secs(20), |r| {
            r.get("/v2/", &r.access()).is_some_and(|r| r.status == 200 || r.status == 401)
        });
        reg
    }

    /// [`crate::wait_until`] with the registry's log in the failure; fails at
    /// once if the registry exited.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, mut f: impl FnMut(&Self) -> bool) {
        let end = std::time::Instant::now() + crate::patience(timeout);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("docker-registry exited ({status}) while waiting for {what}; its log:\n{}", self.log());
            }
            if f(self) {
                return;
            }
            assert!(std::time::Instant::now() < end, "timed out waiting for {what}; the registry's log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The address the registry logs once it listens (port 0 made concrete).
    fn wait_listening(&mut self) -> String {
        let mut addr = None;
        self.wait_for("the registry to listen", Duration::from_secs(20), |r| {
            addr = r.log().lines().find_map(|l| {
                let rest = &l[l.find("listening on ")? + "listening on ".len()..];
                let end = rest.find([',', '"', ' ']).unwrap_or(rest.len());
                Some(rest[..end].to_string())
            });
            addr.is_some()
        });
        addr.unwrap()
    }

    /// "127.0.0.1:PORT": the registry's host as image references name it.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// "http://127.0.0.1:PORT" or "https://…".
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls.is_some() { "https" } else { "http" }, self.addr)
    }

    /// `addr()/reference`, e.g. "127.0.0.1:PORT/library/busybox:latest".
    pub fn image(&self, reference: &str) -> String {
        format!("{}/{reference}", self.addr)
    }

    /// The registry's pid (None once dropped or killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The registry's temp dir (config, log, storage, certs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The storage root (`rootdirectory` of the filesystem driver).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's log so far (its stderr: startup, errors, access log).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The CA and certs in TLS modes. Panics for a plain registry.
    pub fn tls_config(&self) -> &Tls {
        self.tls.as_ref().expect("this registry has no TLS")
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The user and password of the auth modes.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The token server of [`Registry::token`]. Panics in other modes.
    pub fn token_server(&self) -> &TokenServer {
        self.token.as_ref().expect("this registry does not use bearer tokens")
    }

    /// Everything a client needs here: the credentials, the CA, the client cert.
    pub fn access(&self) -> Access {
        Access { creds: self.creds.clone(), trust_ca: self.tls.is_some(), client_cert: self.tls.is_some() }
    }

    /// Writes docker's layout for this registry under `certs_d`
    /// (`<certs_d>/127.0.0.1:PORT/ca.crt`, and `client.cert`/`client.key`
    /// when the registry requires them) and returns that host dir.
    pub fn write_certs_d(&self, certs_d: &Path) -> PathBuf {
        let t = self.tls_config();
        let host = certs_d.join(&self.addr);
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("ca.crt"), &t.ca_pem).unwrap();
        if t.client_certs_required {
            fs::write(host.join("client.cert"), &t.client_cert_pem).unwrap();
            fs::write(host.join("client.key"), &t.client_key_pem).unwrap();
        }
        host
    }

    /// A cert dir for skopeo holding what `a` trusts and presents (None for
    /// plain HTTP, or when it has neither).
    fn cert_dir(&self, a: &Access) -> Option<PathBuf> {
        let t = self.tls.as_ref()?;
        if !a.trust_ca && !a.client_cert {
            return None;
        }
        let d = self.dir.path().join("skopeo-certs").join(format!("ca{}-client{}", a.trust_ca as u8, a.client_cert as u8));
        fs::create_dir_all(&d).unwrap();
        if a.trust_ca {
            fs::write(d.join("ca.crt"), &t.ca_pem).unwrap();
        }
        if a.client_cert {
            fs::write(d.join("client.cert"), &t.client_cert_pem).unwrap();
            fs::write(d.join("client.key"), &t.client_key_pem).unwrap();
        }
        Some(d)
    }

    /// skopeo's flags for reaching this registry with `a`; `prefix` is "" for
    /// `inspect`, "dest-" or "src-" for `copy`.
    pub fn skopeo_flags(&self, a: &Access, prefix: &str) -> Vec<String> {
        // Without TLS verification skopeo falls back to plain HTTP.
        let mut f = vec![format!("--{prefix}tls-verify={}", self.tls.is_some())];
        if let Some(d) = self.cert_dir(a) {
            f.push(format!("--{prefix}cert-dir={}", d.display()));
        }
        match &a.creds {
            Some((u, p)) => f.push(format!("--{prefix}creds={u}:{p}")),
            None => f.push(format!("--{prefix}no-creds")),
        }
        f
    }

    fn skopeo() -> Command {
        let mut c = Command::new("skopeo");
        // No signature policy to honour: the test's own images.
        c.arg("--insecure-policy").stdin(Stdio::null());
        c
    }

    /// `skopeo copy --all --preserve-digests SRC docker://ADDR/REFERENCE` with
    /// `a`'s access; SRC is a skopeo transport ("oci-archive:/path", "oci:/dir:tag").
    pub fn skopeo_push(&self, src: &str, reference: &str, a: &Access, digest_file: &Path) -> Output {
        Self::skopeo()
            .args(["copy", "--all", "--preserve-digests", "--digestfile"])
            .arg(digest_file)
            .args(self.skopeo_flags(a, "dest-"))
            .arg(src)
            .arg(format!("docker://{}", self.image(reference)))
            .output()
            .unwrap()
    }

    /// `skopeo copy --all docker://ADDR/REFERENCE DEST` with `a`'s access
    /// (DEST e.g. "oci:/dir:tag"): skopeo checks every blob's digest.
    pub fn skopeo_pull(&self, reference: &str, dest: &str, a: &Access) -> Output {
        Self::skopeo()
            .args(["copy", "--all"])
            .args(self.skopeo_flags(a, "src-"))
            .arg(format!("docker://{}", self.image(reference)))
            .arg(dest)
            .output()
            .unwrap()
    }

    /// `skopeo inspect [--raw] docker://ADDR/REFERENCE` with `a`'s access; `extra`
    /// goes before `inspect` (global flags such as `--override-arch arm64`).
    pub fn skopeo_inspect(&self, reference: &str, a: &Access, raw: bool, extra: &[&str]) -> Output {
        let mut c = Self::skopeo();
        c.args(extra).arg("inspect").args(self.skopeo_flags(a, ""));
        if raw {
            c.arg("--raw");
        }
        c.arg(format!("docker://{}", self.image(reference))).output().unwrap()
    }

    /// Pushes SRC (a skopeo transport) as REFERENCE with full access, every
    /// platform, digests kept; returns the pushed manifest's digest.
    pub fn push(&self, src: &str, reference: &str) -> String {
        let t = tempfile::tempdir().unwrap();
        let digest_file = t.path().join("digest");
        self.expect_ok(self.skopeo_push(src, reference, &self.access(), &digest_file), &format!("skopeo copy {src} to {reference}"));
        fs::read_to_string(digest_file).unwrap().trim().to_string()
    }

    /// Pushes an OCI layout archive ([`crate::image::write_oci_archive`]) as REFERENCE.
    pub fn push_oci_archive(&self, archive: &Path, reference: &str) -> String {
        self.push(&format!("oci-archive:{}", archive.display()), reference)
    }

    /// Pushes the image `tag` of an OCI layout directory
    /// ([`crate::image::write_oci_index_layout`]: a multi-platform index) as REFERENCE.
    pub fn push_oci_layout(&self, layout: &Path, tag: &str, reference: &str) -> String {
        self.push(&format!("oci:{}:{tag}", layout.display()), reference)
    }

    /// The raw manifest (or index) REFERENCE names, read with full access.
    pub fn manifest(&self, reference: &str) -> Vec<u8> {
        self.expect_ok(self.skopeo_inspect(reference, &self.access(), true, &[]), &format!("skopeo inspect --raw {reference}")).stdout
    }

    /// `skopeo inspect` of REFERENCE (for an index, the host's platform), as JSON.
    pub fn inspect(&self, reference: &str) -> Value {
        let out = self.expect_ok(self.skopeo_inspect(reference, &self.access(), false, &[]), &format!("skopeo inspect {reference}"));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `out`, or a panic with its stderr and the registry's log.
    fn expect_ok(&self, out: Output, what: &str) -> Output {
        assert!(out.status.success(), "{what} failed: {}\nregistry log:\n{}", stderr(&out), self.log());
        out
    }

    /// Where the registry keeps a blob ("sha256:<hex>").
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
        self.storage().join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// Flips bytes of a stored blob in place, keeping its size: the registry
    /// still serves it under its digest (it does not check on reads), and a
    /// client that verifies what it reads must refuse it.
    pub fn corrupt_blob(&self, digest: &str) {
        let path = self.blob_path(digest);
        let mut data = fs::read(&path).unwrap_or_else(|e| panic!("blob {digest} is not in the registry ({}): {e}", path.display()));
        assert!(!data.is_empty(), "blob {digest} is empty");
        for i in [0, data.len() / 2, data.len() - 1] {
            data[i] ^= 0xff;
        }
        fs::write(&path, data).unwrap();
    }

    /// GET `path` (e.g. "/v2/") with curl and `a`'s access; None when no HTTP
    /// reply came (refused, TLS failed).
    pub fn get(&self, path: &str, a: &Access) -> Option<Reply> {
        self.get_with_headers(path, a, &[])
    }

    /// The same, with extra request headers ("Authorization: Bearer …").
    pub fn get_with_headers(&self, path: &str, a: &Access, headers: &[&str]) -> Option<Reply> {
        let mut c = Command::new("curl");
        c.args(["-sS", "-i", "--max-time", "10"]).stdin(Stdio::null());
        for h in headers {
            c.arg("-H").arg(h);
        }
        if let Some(t) = &self.tls {
            if a.trust_ca {
                c.arg("--cacert").arg(&t.ca_path);
            }
            if a.client_cert {
                c.arg("--cert").arg(&t.client_cert_path).arg("--key").arg(&t.client_key_path);
            }
        }
        if let Some((u, p)) = &a.creds {
            c.arg("-u").arg(format!("{u}:{p}"));
        }
        let out = c.arg(format!("{}{path}", self.url())).output().unwrap();
        if !out.status.success() {
            return None;
        }
        parse_reply(&out.stdout)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The token server stops in its own Drop; the dir goes after this.
    }
}

fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    Some(Reply { status, headers, body: raw[end + 4..].to_vec() })
}

/// The `auth` section of the config, the user's credentials and the token
/// server the mode needs (files under `dir`).
fn set_up_auth(auth: Option<&AuthMode>, dir: &Path) -> (String, Option<(String, String)>, Option<TokenServer>) {
    match auth {
        None => (String::new(), None, None),
        Some(AuthMode::Htpasswd { user, password }) => {
            // bcrypt's lowest cost: the registry checks the hash on every request.
            let hash = bcrypt::hash_with_result(password, 4).unwrap().format_for_version(bcrypt::Version::TwoY);
            let path = dir.join("htpasswd");
            fs::write(&path, format!("{user}:{hash}\n")).unwrap();
            let yaml = format!("auth:\n  htpasswd:\n    realm: \"{BASIC_REALM}\"\n    path: \"{}\"\n", path.display());
            (yaml, Some((user.clone(), password.clone())), None)
        }
        Some(AuthMode::Token { user, password }) => {
            let server = TokenServer::start(user, password, &dir.join("token"));
            let yaml = format!(
                "auth:\n  token:\n    realm: \"{}\"\n    service: \"{}\"\n    issuer: \"{}\"\n    rootcertbundle: \"{}\"\n",
                server.realm(),
                server.service(),
                server.issuer(),
                server.cert_path().display()
            );
            (yaml, Some((user.clone(), password.clone())), Some(server))
        }
    }
}

/// The `http.tls` section of the config.
fn tls_yaml(t: &Tls) -> String {
    let mut yaml = format!("  tls:\n    certificate: \"{}\"\n    key: \"{}\"\n", t.server_cert_path.display(), t.server_key_path.display());
    if t.client_certs_required {
        yaml += &format!("    clientcas:\n      - \"{}\"\n", t.ca_path.display());
    }
    yaml
}

/// A CA, a server cert for 127.0.0.1 and localhost, a client cert; files under `dir`.
fn make_tls(dir: &Path, client_certs_required: bool) -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "rind test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let leaf = |names: Vec<String>, cn: &str, eku: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.extended_key_usages = vec![eku];
        (p.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()], "127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_pem, client_key) = leaf(Vec::new(), "rind test client", ExtendedKeyUsagePurpose::ClientAuth);

    let ca_pem = ca_cert.pem();
    let write = |name: &str, data: &str| {
        let p = dir.join(name);
        fs::write(&p, data).unwrap();
        p
    };
    let ca_path = write("ca.crt", &ca_pem);
    let server_cert_path = write("server.crt", &server_pem);
    let server_key_path = write("server.key", &server_key);
    let client_cert_path = write("client.cert", &client_pem);
    let client_key_path = write("client.key", &client_key);
    Tls {
        ca_pem,
        ca_path,
        server_cert_path,
        server_key_path,
        client_cert_pem: client_pem,
        client_key_pem: client_key,
        client_cert_path,
        client_key_path,
        client_certs_required,
    }
}

/// One request the token server answered.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// GET (docker's and skopeo's token fetch) or POST (the OAuth2 form).
    pub method: String,
    pub service: Option<String>,
    pub account: Option<String>,
    /// The scopes asked for, as sent ("repository:NAME:pull,push").
    pub scopes: Vec<String>,
    /// The user of the credentials that came with it, if any came.
    pub user: Option<String>,
    /// The credentials came and were right.
    pub authenticated: bool,
    /// The scopes granted ("type:name:actions"; empty when none were).
    pub granted: Vec<String>,
    /// The HTTP status answered.
    pub status: u16,
}

struct TokenState {
    user: String,
    password: String,
    requests: Vec<TokenRequest>,
    failures: VecDeque<u16>,
    lifetime: Duration,
    anonymous_pull: bool,
}

struct TokenShared {
    stop: AtomicBool,
    state: Mutex<TokenState>,
    signer: ring::signature::EcdsaKeyPair,
    cert_der: Vec<u8>,
    jti: AtomicU64,
}

/// A token endpoint for the registry's `auth.token`, served on 127.0.0.1 by
/// a thread (HTTP/1.1, one request per connection).
///
/// It checks basic credentials (GET with `Authorization: Basic`, as docker
/// and skopeo fetch tokens) or the OAuth2 password form (POST), then issues a
/// JWT signed ES256 with a P-256 key made here. distribution 2.8 verifies
/// tokens in `registry/auth/token/token.go`: `iss` must be the configured
/// issuer, `aud` the service, `exp`/`nbf` within 60 s of leeway, and the
/// signing key must come from the header: `x5c` (a chain verified against
/// `rootcertbundle`), a `jwk`, or a `kid` that is the libtrust fingerprint of
/// a key in the bundle. Here the header carries `x5c` = [the signing cert],
/// self-signed and the whole rootcertbundle. `access` grants what was asked:
/// every action with the right credentials, `pull` alone to anonymous
/// requests when [`TokenServer::set_anonymous_pull`] allows it, else nothing
/// (as Docker Hub answers anonymous requests for private repositories);
/// wrong credentials get 401.
pub struct TokenServer {
    addr: SocketAddr,
    shared: Arc<TokenShared>,
    thread: Option<JoinHandle<()>>,
    cert_path: PathBuf,
    cert_pem: String,
}

impl TokenServer {
    /// Serves on a free port of 127.0.0.1 (the listener is bound here: no race);
    /// writes the signing cert to `dir`/signer.crt.
    pub fn start(user: &str, password: &str, dir: &Path) -> TokenServer {
        fs::create_dir_all(dir).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "rind test token signer");
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        let cert_path = dir.join("signer.crt");
        fs::write(&cert_path, cert.pem()).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let signer =
            ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, key.serialized_der(), &rng)
                .unwrap();
        let shared = Arc::new(TokenShared {
            stop: AtomicBool::new(false),
            state: Mutex::new(TokenState {
                user: user.into(),
                password: password.into(),
                requests: Vec::new(),
                failures: VecDeque::new(),
                lifetime: Duration::from_secs(300),
                anonymous_pull: false,
            }),
            signer,
            cert_der: cert.der().to_vec(),
            jti: AtomicU64::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve_token_conn(conn, &s));
            }
        });
        TokenServer { addr, shared, thread: Some(thread), cert_path, cert_pem: cert.pem() }
    }

    /// "http://127.0.0.1:PORT/token": the registry's `realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn service(&self) -> &'static str {
        TOKEN_SERVICE
    }

    pub fn issuer(&self) -> &'static str {
        TOKEN_ISSUER
    }

    /// The signing cert (the registry's `rootcertbundle`).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// How many tokens were issued (requests answered 200).
    pub fn tokens_issued(&self) -> usize {
        self.requests().iter().filter(|r| r.status == 200).count()
    }

    /// The next `n` requests get `status` (e.g. 500, 503, 401) and no token.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.state.lock().unwrap().failures.extend(std::iter::repeat_n(status, n));
    }

    /// Anonymous requests get `pull` (true) or an empty grant (false, the default).
    pub fn set_anonymous_pull(&self, allow: bool) {
        self.shared.state.lock().unwrap().anonymous_pull = allow;
    }

    /// How long issued tokens live (`expires_in`, `exp`); 300 s unless set.
    /// The registry accepts a token up to 60 s past its `exp`.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.shared.state.lock().unwrap().lifetime = lifetime;
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_token_conn(conn: TcpStream, s: &TokenShared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut r = BufReader::new(&conn);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut authorization = None;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.trim().to_string()),
                "content-length" => length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let (status, reply) = s.answer(&method, &target, authorization.as_deref(), &body);
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    let reply = reply.to_string();
    let mut w = &conn;
    let _ = write!(
        w,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

impl TokenShared {
    fn answer(&self, method: &str, target: &str, authorization: Option<&str>, body: &[u8]) -> (u16, Value) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != "/token" {
            return (404, json!({"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]}));
        }
        let form = match method {
            "POST" => parse_form(&String::from_utf8_lossy(body)),
            _ => parse_form(query),
        };
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        // GET sends one `scope` per resource; POST's form joins them with spaces.
        let scopes =
            form.iter().filter(|(n, _)| n == "scope").flat_map(|(_, v)| v.split(' ')).filter(|s| !s.is_empty()).map(String::from).collect();
        let mut req = TokenRequest {
            method: method.into(),
            service: field("service"),
            account: field("account"),
            scopes,
            user: None,
            authenticated: false,
            granted: Vec::new(),
            status: 0,
        };
        let (status, reply) = self.decide(&mut req, authorization, &form);
        req.status = status;
        self.state.lock().unwrap().requests.push(req);
        (status, reply)
    }

    /// Checks the credentials and grants what they allow; fills in `req`.
    fn decide(&self, req: &mut TokenRequest, authorization: Option<&str>, form: &[(String, String)]) -> (u16, Value) {
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let creds = match req.method.as_str() {
            "GET" => authorization.and_then(basic_creds),
            "POST" if field("grant_type").as_deref() == Some("password") => field("username").zip(field("password")),
            "POST" => return (400, json!({"error": "unsupported_grant_type"})),
            _ => return (400, json!({"error": "unsupported_method"})),
        };
        let mut st = self.state.lock().unwrap();
        req.user = creds.as_ref().map(|(u, _)| u.clone());
        req.authenticated = creds.as_ref().is_some_and(|(u, p)| *u == st.user && *p == st.password);
        if let Some(status) = st.failures.pop_front() {
            return (status, json!({"errors": [{"code": "UNAVAILABLE", "message": "failure injected by the test"}]}));
        }
        if creds.is_some() && !req.authenticated {
            return (401, json!({"errors": [{"code": "UNAUTHORIZED", "message": "wrong user name or password"}]}));
        }
        let (lifetime, anonymous_pull) = (st.lifetime, st.anonymous_pull);
        drop(st);
        let mut access = Vec::new();
        for scope in &req.scopes {
            let Some((kind, rest)) = scope.split_once(':') else { continue };
            let Some((name, actions)) = rest.rsplit_once(':') else { continue };
            let actions: Vec<&str> =
                actions.split(',').filter(|a| !a.is_empty() && (req.authenticated || (anonymous_pull && *a == "pull"))).collect();
            if !actions.is_empty() {
                access.push(json!({"type": kind, "name": name, "actions": actions}));
                req.granted.push(format!("{kind}:{name}:{}", actions.join(",")));
            }
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claims = json!({
            "iss": TOKEN_ISSUER,
            "sub": if req.authenticated { req.user.clone().unwrap_or_default() } else { String::new() },
            "aud": TOKEN_SERVICE,
            "exp": now + lifetime.as_secs(),
            "nbf": now,
            "iat": now,
            "jti": format!("rind-test-{}", self.jti.fetch_add(1, Ordering::SeqCst)),
            "access": access
        });
        let token = self.sign(&claims);
        (200, json!({"token": token, "access_token": token, "expires_in": lifetime.as_secs(), "scope": req.granted.join(" ")}))
    }

    /// A compact JWS (ES256) of `claims` whose header carries the signing cert.
    fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&self.cert_der)]});
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let rng = ring::rand::SystemRandom::new();
        let sig = self.signer.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

/// user and password of an `Authorization: Basic …` header.
fn basic_creds(header: &str) -> Option<(String, String)> {
    let (scheme, b64) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (u, p) = raw.split_once(':')?;
    Some((u.into(), p.into()))
}

/// application/x-www-form-urlencoded pairs (a query string or a form body).
fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = match b.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, b[i]) {
            (Some(v), _) => {
                out.push(v);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, c) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decodes_percent_and_plus() {
        let f = parse_form("scope=repository%3Afoo%2Fbar%3Apull%2Cpush&service=reg+x&account=");
        assert_eq!(f[0], ("scope".into(), "repository:foo/bar:pull,push".into()));
        assert_eq!(f[1], ("service".into(), "reg x".into()));
        assert_eq!(f[2], ("account".into(), String::new()));
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41%zz"), "A%zz");
    }

    #[test]
    fn basic_creds_reads_user_and_password() {
        let h = format!("Basic {}", STANDARD.encode("alice:s3:cret"));
        assert_eq!(basic_creds(&h), Some(("alice".into(), "s3:cret".into())));
        assert_eq!(basic_creds("Bearer abc"), None);
    }

    #[test]
    fn reply_parses_status_and_headers() {
        let r = parse_reply(b"HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"x\"\r\n\r\n{}").unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.header("WWW-Authenticate"), Some("Bearer realm=\"x\""));
        assert_eq!(r.body, b"{}");
    }
}
