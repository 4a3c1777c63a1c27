//! The client side of the OCI distribution protocol: where a registry is
//! reached (`hosts`: mirrors, TLS, plain HTTP), and `pull` (manifests,
//! platform choice, verified parallel downloads, unpack in layer order).
//! The protocol itself is `oci-client`'s.

pub mod hosts;
pub mod name;
pub mod pull;
pub mod push;

use crate::content::ContentError;
use crate::images::unpack::UnpackError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid reference format {reference:?}: {reason}")]
    Reference { reference: String, reason: String },
    #[error("invalid platform {0:?}: want os/arch[/variant], as linux/amd64")]
    Platform(String),
    #[error("registry {registry}: {message}")]
    Remote { registry: String, message: String },
    #[error("manifest for {reference} not found: manifest unknown")]
    NotFound { reference: String },
    #[error("image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}")]
    WrongPlatform { reference: String, wanted: String, actual: String },
    #[error("{reference}: schema 1 manifests are not supported (Docker dropped them in 2019): push the image again with a current client")]
    Schema1 { reference: String },
    #[error("{reference}: no manifest for platform {platform} (the image has {available})")]
    NoPlatform { reference: String, platform: String, available: String },
    #[error("{reference}: malformed manifest {digest}: {reason}")]
    Manifest { reference: String, digest: String, reason: String },
    #[error("blob {digest}: {reason}")]
    Blob { digest: String, reason: String },
    #[error("blob {digest}: {op} {path}")]
    Io {
        digest: String,
        op: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificates for {host} in {dir}: {reason}")]
    Certs { host: String, dir: std::path::PathBuf, reason: String },
    #[error("layer {index} of {count} ({digest})")]
    Layer {
        index: usize,
        count: usize,
        digest: String,
        #[source]
        source: UnpackError,
    },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Save(#[from] crate::images::save::SaveError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the pull was cancelled")]
    Cancelled,
}

impl RegistryError {
    /// Worth another try: the registry or the network failed, not the
    /// content (a digest mismatch is the same the next time).
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Remote { message, .. } if transient_message(message))
    }
}

fn transient_message(m: &str) -> bool {
    const SIGNS: [&str; 9] =
        ["code: 429", "code: 500", "code: 502", "code: 503", "code: 504", "timed out", "connection", "error sending request", "body"];
    SIGNS.iter().any(|s| m.contains(s))
}

/// An oci-client error, with its causes, as one message.
pub(crate) fn remote(registry: &str, e: oci_client::errors::OciDistributionError) -> RegistryError {
    RegistryError::Remote { registry: registry.to_string(), message: rind_common::error::chain(&e) }
}

/// `os/arch[/variant]`; the host's when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { os: "linux".into(), arch: arch.into(), variant: None }
    }

    pub fn parse(s: &str) -> Result<Platform, RegistryError> {
        if s.is_empty() {
            return Ok(Platform::host());
        }
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform { os: os.to_string(), arch: arch.to_string(), variant: None }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(Platform { os: os.to_string(), arch: arch.to_string(), variant: Some(v.to_string()) })
            }
            _ => Err(RegistryError::Platform(s.into())),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One line of a pull's progress, as docker shows it: `id` is a layer's
/// short digest (or empty for the image's own lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub id: String,
    pub status: String,
    pub current: u64,
    pub total: u64,
}

impl Progress {
    pub fn line(id: impl Into<String>, status: impl Into<String>) -> Progress {
        Progress { id: id.into(), status: status.into(), current: 0, total: 0 }
    }
}

/// Checks credentials as `docker login` does: a read of the registry with
/// them must not be refused (a basic-auth registry only says so when asked
/// for something, so a blob that cannot exist is asked for).
pub async fn login(hosts: &hosts::Hosts, registry: &str, auth: &oci_client::secrets::RegistryAuth) -> Result<(), RegistryError> {
    use oci_client::RegistryOperation;
    let ep = hosts.endpoints(registry).into_iter().find(|e| !e.mirror).expect("the registry itself is always an endpoint");
    let probe = oci_client::Reference::with_tag(registry.to_string(), "rind/login-check".into(), "latest".into());
    let mut last = None;
    for scheme in [ep.scheme, hosts::Scheme::Http] {
        if scheme == hosts::Scheme::Http && (!ep.insecure || ep.scheme == hosts::Scheme::Http) {
            break;
        }
        let client = hosts.client(&ep, scheme)?;
        let checked = async {
            client.auth(&probe, auth, RegistryOperation::Pull).await?;
            client.blob_exists(&probe, &format!("sha256:{}", "0".repeat(64))).await
        };
        match checked.await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let e = remote(registry, e);
                let unreachable = matches!(&e, RegistryError::Remote { message, .. } if message.contains("error sending request") && !hosts::certificate_error(message));
                last = Some(e);
                if !unreachable {
                    break;
                }
            }
        }
    }
    Err(last.expect("one try at least"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        assert_eq!(Platform::parse("linux/arm64").unwrap(), Platform { os: "linux".into(), arch: "arm64".into(), variant: None });
        assert_eq!(Platform::parse("linux/arm/v7").unwrap().to_string(), "linux/arm/v7");
        assert_eq!(Platform::parse("").unwrap(), Platform::host());
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transient_errors_are_told_from_the_others() {
        let e = |m: &str| RegistryError::Remote { registry: "r".into(), message: m.into() };
        assert!(e("Server error: url u, code: 503, message: down").is_transient());
        assert!(e("error sending request for url").is_transient());
        assert!(!e("Server error: url u, code: 404, message: unknown").is_transient());
        assert!(!RegistryError::Blob { digest: "d".into(), reason: "digest mismatch".into() }.is_transient());
    }
}
