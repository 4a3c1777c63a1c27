//! push: every blob the registry lacks (asked with HEAD first), streamed
//! from the content store, then the manifest last, so a registry never
//! holds a manifest whose blobs it does not have.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use tokio::sync::mpsc;

use super::hosts::{Hosts, Scheme};
use super::pull::OCI_MANIFEST;
use super::{name, remote, Progress, RegistryError};
use crate::content::{ContentStore, Digest};
use crate::store::Store;

pub struct Pusher {
    pub content: Arc<ContentStore>,
    pub store: Arc<Mutex<Store>>,
    pub hosts: Arc<Hosts>,
}

/// What a push sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub digest: String,
    pub size: usize,
}

impl Pusher {
    pub async fn push(&self, image: &str, auth: RegistryAuth, tx: mpsc::Sender<Progress>) -> Result<Pushed, RegistryError> {
        let send = |p: Progress| {
            let tx = tx.clone();
            async move { tx.send(p).await.map_err(|_| RegistryError::Cancelled) }
        };
        let r = name::parse(image)?;
        let stored = name::familiar(&r);
        let row = self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner).image(&stored)?.ok_or_else(|| {
            RegistryError::Reference {
                reference: image.to_string(),
                reason: format!("no such image {stored}: tag an image with that name first (rind tag)"),
            }
        })?;
        let config = Digest::parse(&row.config)?;
        use crate::images::save::{compression_of, size_of};
        let mut layers = Vec::new();
        for l in &row.layers {
            let d = Digest::parse(l)?;
            let (size, compression) = (size_of(&self.content, &d)?, compression_of(&self.content, &d)?);
            layers.push((d, size, compression));
        }
        let config_size = size_of(&self.content, &config)?;
        let body = crate::images::save::manifest((&config, config_size), &layers);
        let tag = r.tag().unwrap_or("latest").to_string();
        let ep = self.hosts.endpoints(r.registry()).into_iter().find(|e| !e.mirror).expect("the registry itself is always an endpoint");
        let target = ep.reference(&r);
        send(Progress::line("", format!("The push refers to repository [{}/{}]", r.registry(), r.repository()))).await?;
        let client = self.connect(&ep, &target, &auth).await?;
        let others = self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner).images()?;
        let blobs: Vec<(Digest, u64)> =
            layers.iter().map(|(d, s, _)| (d.clone(), *s)).chain(std::iter::once((config.clone(), config_size))).collect();
        for (d, _, _) in layers.iter().rev() {
            send(Progress::line(short(d), "Preparing")).await?;
        }
        for (d, size) in &blobs {
            let is_layer = *d != config;
            if client.blob_exists(&target, d.as_str()).await.map_err(|e| remote(&ep.host, e))? {
                if is_layer {
                    send(Progress::line(short(d), "Layer already exists")).await?;
                }
                continue;
            }
            if let Some(from) = self.mount(&client, &target, d, &others).await {
                if is_layer {
                    send(Progress::line(short(d), format!("Mounted from {from}"))).await?;
                }
                continue;
            }
            let path = self.content.path(d);
            let file = tokio::fs::File::open(&path).await.map_err(|source| RegistryError::Io {
                digest: d.to_string(),
                op: "open",
                path: path.clone(),
                source,
            })?;
            let (id, total, progress) = (short(d), *size, tx.clone());
            let mut sent = 0u64;
            let stream = tokio_util_stream(file).map(move |chunk| {
                if let (Ok(c), true) = (&chunk, is_layer) {
                    sent += c.len() as u64;
                    let _ = progress.try_send(Progress { id: id.clone(), status: "Pushing".into(), current: sent, total });
                }
                chunk.map_err(oci_client::errors::OciDistributionError::from)
            });
            client.push_blob_stream(&target, stream, d.as_str(), Some(*size)).await.map_err(|e| remote(&ep.host, e))?;
            if is_layer {
                send(Progress::line(short(d), "Pushed")).await?;
            }
        }
        let content_type = OCI_MANIFEST.parse().expect("header value");
        client.push_manifest_raw(&target, body.clone(), content_type).await.map_err(|e| remote(&ep.host, e))?;
        let digest = Digest::of(&body).to_string();
        send(Progress::line("", format!("{tag}: digest: {digest} size: {}", body.len()))).await?;
        Ok(Pushed { digest, size: body.len() })
    }

    /// Asks the registry to mount `d` from another of its repositories that
    /// an image here names (a cross-repository mount: no bytes sent). The
    /// repository mounted from, or None when no candidate was accepted; a
    /// refused mount (202, or 401 for a token without pull rights there)
    /// only means the blob is uploaded.
    async fn mount(&self, client: &Client, target: &Reference, d: &Digest, images: &[crate::store::ImageRow]) -> Option<String> {
        for from in mount_sources(target, d, images) {
            match client.mount_blob(target, &from, d.as_str()).await {
                Ok(()) => return Some(from.repository().to_string()),
                Err(e) => tracing::debug!(blob = %d, from = %from, error = %e, "cross-repository mount refused"),
            }
        }
        None
    }

    /// A client with push rights for `target`; an insecure endpoint falls
    /// back to plain HTTP when HTTPS does not connect.
    async fn connect(&self, ep: &super::hosts::Endpoint, target: &Reference, auth: &RegistryAuth) -> Result<Client, RegistryError> {
        let client = self.hosts.client(ep, ep.scheme)?;
        match client.auth(target, auth, RegistryOperation::Push).await {
            Ok(_) => Ok(client),
            Err(e) => {
                let e = remote(&ep.host, e);
                let unreachable = matches!(&e, RegistryError::Remote { message, .. } if message.contains("error sending request") && !super::hosts::certificate_error(message));
                if ep.insecure && ep.scheme == Scheme::Https && unreachable {
                    let plain = self.hosts.client(ep, Scheme::Http)?;
                    plain.auth(target, auth, RegistryOperation::Push).await.map_err(|e| remote(&ep.host, e))?;
                    return Ok(plain);
                }
                Err(e)
            }
        }
    }
}

/// The repositories of `target`'s registry, other than its own, that an
/// image here holding `d` names: where a mount may find it (pure).
fn mount_sources(target: &Reference, d: &Digest, images: &[crate::store::ImageRow]) -> Vec<Reference> {
    let mut out: Vec<Reference> = Vec::new();
    for row in images.iter().filter(|row| row.layers.iter().any(|l| l == d.as_str()) || row.config == d.as_str()) {
        let Ok(r) = name::parse(&row.name) else { continue };
        if r.registry() == target.registry()
            && r.repository() != target.repository()
            && !out.iter().any(|o| o.repository() == r.repository())
        {
            out.push(r);
        }
    }
    out
}

fn short(d: &Digest) -> String {
    super::pull::short(d.as_str())
}

/// A file as a stream of 1 MiB chunks.
fn tokio_util_stream(file: tokio::fs::File) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ImageRow;

    fn row(name: &str, layers: &[&str]) -> ImageRow {
        ImageRow {
            name: name.into(),
            config: format!("sha256:{}", "c".repeat(64)),
            layers: layers.iter().map(|s| s.to_string()).collect(),
            created: String::new(),
        }
    }

    #[test]
    fn mounts_come_from_other_repositories_of_the_same_registry_holding_the_blob() {
        let (a, b) = (format!("sha256:{}", "a".repeat(64)), format!("sha256:{}", "b".repeat(64)));
        let images = [
            row("127.0.0.1:5000/x/one:v1", &[&a]),
            row("127.0.0.1:5000/x/one:v2", &[&a]),
            row("127.0.0.1:5000/x/target:old", &[&a]),
            row("127.0.0.1:5001/x/other:v1", &[&a]),
            row("127.0.0.1:5000/x/two:v1", &[&b]),
            row("busybox:latest", &[&a]),
        ];
        let target = name::parse("127.0.0.1:5000/x/target:v1").unwrap();
        let got: Vec<String> =
            mount_sources(&target, &Digest::parse(&a).unwrap(), &images).iter().map(|r| r.repository().to_string()).collect();
        assert_eq!(got, ["x/one"]);
        let docker = name::parse("docker.io/me/app:v1").unwrap();
        let got: Vec<String> =
            mount_sources(&docker, &Digest::parse(&a).unwrap(), &images).iter().map(|r| r.repository().to_string()).collect();
        assert_eq!(got, ["library/busybox"]);
    }
}
