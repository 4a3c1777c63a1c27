//! Where a registry is reached: its mirrors first (containerd's hosts.toml
//! order), then the registry itself; over HTTPS with the system roots and
//! the CAs of `certs.d/HOST[:PORT]/` (docker's layout), plain HTTP only for
//! loopback hosts and registries marked insecure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::{Client, Reference};

use super::RegistryError;
use crate::config::RegistryConfig;

pub const DEFAULT_CERTS_DIR: &str = "/etc/rind/certs.d";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Https,
    Http,
}

/// One place to ask for a repository's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// HOST[:PORT]
    pub host: String,
    pub scheme: Scheme,
    /// HTTPS that may fall back to plain HTTP, and unverified TLS.
    pub insecure: bool,
    pub mirror: bool,
}

impl Endpoint {
    /// `reference` asked of this endpoint (a mirror serves the same repository path).
    pub fn reference(&self, r: &Reference) -> Reference {
        match (r.tag(), r.digest()) {
            (_, Some(d)) => Reference::with_digest(self.host.clone(), r.repository().to_string(), d.to_string()),
            (Some(t), None) => Reference::with_tag(self.host.clone(), r.repository().to_string(), t.to_string()),
            (None, None) => Reference::with_tag(self.host.clone(), r.repository().to_string(), "latest".into()),
        }
    }
}

/// HTTPS failed because of the server's certificate: plain HTTP would not
/// help (the server speaks TLS), and the TLS error is the one to show.
pub fn certificate_error(message: &str) -> bool {
    message.contains("certificate") || message.contains("UnknownIssuer")
}

/// Loopback registries may speak plain HTTP, as docker allows.
pub fn loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// The endpoints for `registry`, in the order they are tried (pure).
pub fn plan(registry: &str, config: &BTreeMap<String, RegistryConfig>) -> Vec<Endpoint> {
    let own = config.get(registry).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for m in &own.mirrors {
        let (scheme, rest) = match m.split_once("://") {
            Some(("http", r)) => (Scheme::Http, r),
            Some((_, r)) => (Scheme::Https, r),
            None => (Scheme::Https, m.as_str()),
        };
        let host = rest.trim_end_matches('/').to_string();
        let insecure = config.get(&host).map(|c| c.insecure).unwrap_or(false) || loopback(&host);
        out.push(Endpoint { host, scheme, insecure, mirror: true });
    }
    out.push(Endpoint { host: registry.to_string(), scheme: Scheme::Https, insecure: own.insecure || loopback(registry), mirror: false });
    out
}

/// Clients for registry endpoints. A new client for each pull, push or
/// login: oci-client keeps the first credentials a client saw for a registry
/// and the CAs it was built with, so a shared one would pull with another
/// user's login or an old certs.d; within one pull its tokens are reused
/// across the layers.
pub struct Hosts {
    config: BTreeMap<String, RegistryConfig>,
    certs_dir: PathBuf,
    /// How long a registry may stay silent (connect, or between reads).
    timeout: Duration,
}

impl Hosts {
    pub fn new(config: BTreeMap<String, RegistryConfig>, certs_dir: Option<PathBuf>, timeout: Duration) -> Hosts {
        Hosts { config, certs_dir: certs_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_CERTS_DIR)), timeout }
    }

    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        plan(registry, &self.config)
    }

    /// The client for `ep` over `scheme`.
    pub fn client(&self, ep: &Endpoint, scheme: Scheme) -> Result<Client, RegistryError> {
        let dir = self.certs_dir.join(&ep.host);
        let roots = read_cas(&dir, &ep.host)?;
        let client_identity = read_identity(&dir, &ep.host)?;
        let (https_proxy, http_proxy, no_proxy) = (proxy_env("HTTPS_PROXY"), proxy_env("HTTP_PROXY"), proxy_env("NO_PROXY"));
        let config = ClientConfig {
            protocol: if scheme == Scheme::Http { ClientProtocol::Http } else { ClientProtocol::Https },
            accept_invalid_certificates: ep.insecure && !loopback(&ep.host),
            extra_root_certificates: roots,
            connect_timeout: Some(self.timeout.min(Duration::from_secs(30))),
            read_timeout: Some(self.timeout),
            platform_resolver: None,
            user_agent: concat!("rind/", env!("CARGO_PKG_VERSION")),
            https_proxy,
            http_proxy,
            no_proxy,
            client_identity,
            ..Default::default()
        };
        Client::try_from(config).map_err(|e| super::remote(&ep.host, e))
    }
}

fn proxy_env(name: &str) -> Option<String> {
    std::env::var(name).or_else(|_| std::env::var(name.to_ascii_lowercase())).ok().filter(|v| !v.is_empty())
}

/// `client.cert` with `client.key` (docker's names), PEM, as one identity;
/// one without the other is an error naming the missing file.
fn read_identity(dir: &Path, host: &str) -> Result<Option<Vec<u8>>, RegistryError> {
    let (cert, key) = (dir.join("client.cert"), dir.join("client.key"));
    let certs_error = |reason: String| RegistryError::Certs { host: host.into(), dir: dir.to_path_buf(), reason };
    match (cert.exists(), key.exists()) {
        (false, false) => return Ok(None),
        (true, false) => return Err(certs_error(format!("{} has no client.key beside it", cert.display()))),
        (false, true) => return Err(certs_error(format!("{} has no client.cert beside it", key.display()))),
        (true, true) => {}
    }
    let mut pem = Vec::new();
    for p in [&cert, &key] {
        let data = std::fs::read(p).map_err(|e| certs_error(format!("read {}: {e}", p.display())))?;
        if !data.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(certs_error(format!("{} holds no PEM", p.display())));
        }
        pem.extend_from_slice(&data);
        pem.push(b'\n');
    }
    Ok(Some(pem))
}

/// Every `*.crt` in `dir` (docker's certs.d: `ca.crt` and any other CA).
fn read_cas(dir: &Path, host: &str) -> Result<Vec<Certificate>, RegistryError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("crt") {
            continue;
        }
        let data = std::fs::read(&p).map_err(|e| RegistryError::Certs {
            host: host.into(),
            dir: dir.to_path_buf(),
            reason: format!("read {}: {e}", p.display()),
        })?;
        if !data.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(RegistryError::Certs {
                host: host.into(),
                dir: dir.to_path_buf(),
                reason: format!("{} holds no PEM certificate", p.display()),
            });
        }
        out.push(Certificate { encoding: CertificateEncoding::Pem, data });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "localhost:5000", "127.0.0.1", "127.3.4.5:443", "[::1]:5000", "::1"] {
            assert!(loopback(h), "{h}");
        }
        for h in ["docker.io", "10.0.0.1:5000", "localhost.example.com", "128.0.0.1"] {
            assert!(!loopback(h), "{h}");
        }
    }

    #[test]
    fn mirrors_come_first_then_the_registry() {
        let mut config = BTreeMap::new();
        config.insert(
            "docker.io".to_string(),
            RegistryConfig {
                mirrors: vec!["http://127.0.0.1:5000".into(), "https://mirror.example.com/".into(), "m2.example.com".into()],
                insecure: false,
            },
        );
        config.insert("m2.example.com".to_string(), RegistryConfig { mirrors: vec![], insecure: true });
        let eps = plan("docker.io", &config);
        let got: Vec<(&str, Scheme, bool, bool)> = eps.iter().map(|e| (e.host.as_str(), e.scheme, e.insecure, e.mirror)).collect();
        assert_eq!(
            got,
            [
                ("127.0.0.1:5000", Scheme::Http, true, true),
                ("mirror.example.com", Scheme::Https, false, true),
                ("m2.example.com", Scheme::Https, true, true),
                ("docker.io", Scheme::Https, false, false),
            ]
        );
        assert_eq!(plan("quay.io", &config), [Endpoint { host: "quay.io".into(), scheme: Scheme::Https, insecure: false, mirror: false }]);
    }

    #[test]
    fn a_mirror_is_asked_for_the_same_repository() {
        let r = super::super::name::parse("busybox:1.36").unwrap();
        let ep = Endpoint { host: "127.0.0.1:5000".into(), scheme: Scheme::Http, insecure: true, mirror: true };
        let m = ep.reference(&r);
        assert_eq!((m.registry(), m.repository(), m.tag()), ("127.0.0.1:5000", "library/busybox", Some("1.36")));
    }

    #[test]
    fn a_certs_dir_file_that_is_no_certificate_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ca.crt"), "junk").unwrap();
        let e = read_cas(d.path(), "h:5000").unwrap_err().to_string();
        assert!(e.contains("ca.crt holds no PEM certificate") && e.contains("h:5000"), "{e}");
        assert!(read_cas(&d.path().join("absent"), "h").unwrap().is_empty());
    }

    #[test]
    fn a_client_cert_needs_its_key_and_both_are_pem() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_identity(d.path(), "h").unwrap().is_none());
        std::fs::write(d.path().join("client.cert"), "-----BEGIN CERTIFICATE-----\nx\n").unwrap();
        let e = read_identity(d.path(), "h:5000").unwrap_err().to_string();
        assert!(e.contains("client.cert has no client.key beside it") && e.contains("h:5000"), "{e}");
        std::fs::write(d.path().join("client.key"), "junk").unwrap();
        let e = read_identity(d.path(), "h").unwrap_err().to_string();
        assert!(e.contains("client.key holds no PEM"), "{e}");
        std::fs::write(d.path().join("client.key"), "-----BEGIN PRIVATE KEY-----\ny\n").unwrap();
        let pem = String::from_utf8(read_identity(d.path(), "h").unwrap().unwrap()).unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("BEGIN PRIVATE KEY"), "{pem}");
    }
}
