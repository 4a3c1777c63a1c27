//! pull: resolve the name to one image manifest (choosing the platform in an
//! index), then download its blobs, at most `max_concurrent_downloads` at
//! once, each checked for size and digest as it streams, and unpack the
//! layers in order as they arrive. Partial downloads stay in the content
//! store's ingest directory while rindd runs; the next pull resumes them
//! with an HTTP range. Nothing unverified is ever kept under a digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::BlobResponse;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::hosts::{Endpoint, Hosts, Scheme};
use super::{name, remote, Platform, Progress, RegistryError};
use crate::content::{ContentStore, Digest, Lease};
use crate::images::Limits;
use crate::snapshots::{chain_ids, Snapshots};
use crate::store::{ImageRow, Store};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const ACCEPT: [&str; 5] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, DOCKER_SCHEMA1];
/// Tries of one blob download before the pull fails (429, 5xx, a cut connection).
const ATTEMPTS: u32 = 4;

pub struct Puller {
    pub root: PathBuf,
    pub content: Arc<ContentStore>,
    pub store: Arc<Mutex<Store>>,
    pub hosts: Arc<Hosts>,
    pub limits: Limits,
    pub max_downloads: usize,
    /// One download per blob at a time: a second pull of it waits and finds it.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What a pull recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// As stored and shown: `busybox:latest`.
    pub name: String,
    /// The digest of what the name resolved to (an index or a manifest).
    pub digest: String,
    pub config: Digest,
    /// False when every layer was there already and the name pointed at this image.
    pub downloaded: bool,
}

/// The image manifest a name resolved to, and where it came from.
struct Resolved {
    from: Source,
    digest: String,
    manifest: ImageManifest,
}

/// Progress to the client; a client gone means the pull is cancelled.
#[derive(Clone)]
struct Report(mpsc::Sender<Progress>);

impl Report {
    async fn send(&self, p: Progress) -> Result<(), RegistryError> {
        self.0.send(p).await.map_err(|_| RegistryError::Cancelled)
    }

    /// Byte counts: dropped rather than waited for when the client is slow.
    fn update(&self, p: Progress) {
        let _ = self.0.try_send(p);
    }
}

/// docker's layer ids: the first 12 hex digits.
pub(super) fn short(d: &str) -> String {
    d.split_once(':').map(|x| x.1).unwrap_or(d).chars().take(12).collect()
}

impl Puller {
    pub fn new(
        root: PathBuf,
        content: Arc<ContentStore>,
        store: Arc<Mutex<Store>>,
        hosts: Arc<Hosts>,
        limits: Limits,
        max_downloads: usize,
    ) -> Puller {
        Puller { root, content, store, hosts, limits, max_downloads: max_downloads.max(1), inflight: Mutex::default() }
    }

    pub async fn pull(
        self: &Arc<Self>,
        name: &str,
        platform_arg: &str,
        auth: RegistryAuth,
        tx: mpsc::Sender<Progress>,
    ) -> Result<Pulled, RegistryError> {
        let r = name::parse(name)?;
        let platform = Platform::parse(platform_arg)?;
        // Asked for by name, a single-platform image must be that platform.
        let wanted = (!platform_arg.is_empty()).then(|| platform.clone());
        let report = Report(tx);
        let what = r.tag().or(r.digest()).unwrap_or("latest").to_string();
        report.send(Progress::line(what, format!("Pulling from {}", name::path(&r)))).await?;
        let resolved = self.resolve_any(&r, &platform, &auth).await?;
        let stored = name::familiar(&r);
        let repo_digest = r.digest().is_none().then(|| name::familiar_with_digest(&r, &resolved.digest));
        let pulled = self.fetch(&resolved, &stored, repo_digest, wanted.as_ref(), &report).await?;
        report.send(Progress::line("", format!("Digest: {}", resolved.digest))).await?;
        let status = if pulled.downloaded { "Downloaded newer image for" } else { "Image is up to date for" };
        report.send(Progress::line("", format!("Status: {status} {stored}"))).await?;
        Ok(pulled)
    }

    /// The mirrors in order, then the registry: the first that has the image.
    async fn resolve_any(&self, r: &Reference, platform: &Platform, auth: &RegistryAuth) -> Result<Resolved, RegistryError> {
        let mut last = None;
        for ep in self.hosts.endpoints(r.registry()) {
            // Credentials are the registry's own: a mirror is asked anonymously.
            let auth = if ep.mirror { RegistryAuth::Anonymous } else { auth.clone() };
            match self.resolve(&ep, r, platform, &auth).await {
                Ok(res) => return Ok(res),
                Err(e) if ep.mirror => {
                    tracing::warn!(mirror = %ep.host, reference = %r, error = %rind_common::error::Chain(&e), "mirror failed: trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(RegistryError::Reference { reference: r.to_string(), reason: "no endpoint".into() }))
    }

    async fn resolve(&self, ep: &Endpoint, r: &Reference, platform: &Platform, auth: &RegistryAuth) -> Result<Resolved, RegistryError> {
        let er = ep.reference(r);
        let (client, bytes) = self.manifest_from(ep, &er, auth).await?;
        let digest = Digest::of(&bytes).to_string();
        if let Some(want) = r.digest() {
            if want != digest {
                return Err(RegistryError::Manifest {
                    reference: r.to_string(),
                    digest: want.into(),
                    reason: format!("the registry sent content of digest {digest}"),
                });
            }
        }
        let bad = |d: &str, reason: String| RegistryError::Manifest { reference: r.to_string(), digest: d.to_string(), reason };
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(&digest, e.to_string()))?;
        if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
            return Err(RegistryError::Schema1 { reference: r.to_string() });
        }
        if v.get("manifests").is_some() {
            let index: ImageIndex = serde_json::from_value(v).map_err(|e| bad(&digest, e.to_string()))?;
            let entry = choose(&index, platform).ok_or_else(|| RegistryError::NoPlatform {
                reference: r.to_string(),
                platform: platform.to_string(),
                available: available(&index),
            })?;
            let child = entry.digest().to_string();
            let (client, bytes) = self.manifest_from(ep, &er.clone_with_digest(child.clone()), auth).await?;
            if Digest::of(&bytes).to_string() != child {
                return Err(bad(&child, format!("the registry sent content of digest {}", Digest::of(&bytes))));
            }
            let manifest = parse_manifest(&bytes).map_err(|reason| bad(&child, reason))?;
            return Ok(Resolved { from: Source { client, reference: er, registry: ep.host.clone() }, digest, manifest });
        }
        let manifest = parse_manifest(&bytes).map_err(|reason| bad(&digest, reason))?;
        Ok(Resolved { from: Source { client, reference: er, registry: ep.host.clone() }, digest, manifest })
    }

    /// A manifest's bytes; an insecure endpoint falls back to plain HTTP
    /// when HTTPS does not connect, as docker does.
    async fn manifest_from(&self, ep: &Endpoint, r: &Reference, auth: &RegistryAuth) -> Result<(Client, bytes::Bytes), RegistryError> {
        let first = self.hosts.client(ep, ep.scheme)?;
        let got =
            with_retries(&ep.host, || async { first.pull_manifest_raw(r, auth, &ACCEPT).await.map_err(|e| remote(&ep.host, e)) }).await;
        let (client, got) = match got {
            Err(RegistryError::Remote { message, .. })
                if ep.insecure
                    && ep.scheme == Scheme::Https
                    && message.contains("error sending request")
                    && !super::hosts::certificate_error(&message) =>
            {
                let plain = self.hosts.client(ep, Scheme::Http)?;
                let got = plain.pull_manifest_raw(r, auth, &ACCEPT).await.map_err(|e| remote(&ep.host, e));
                (plain, got)
            }
            other => (first, other),
        };
        let (bytes, _) = got.map_err(|e| match e {
            RegistryError::Remote { message, .. }
                if message.contains("manifest unknown") || message.contains("not found") || message.contains("code: 404") =>
            {
                RegistryError::NotFound { reference: r.to_string() }
            }
            e => e,
        })?;
        if bytes.len() as u64 > self.limits.max_json_size {
            return Err(RegistryError::Manifest {
                reference: r.to_string(),
                digest: String::new(),
                reason: format!("{} bytes, over the limit of {}", bytes.len(), self.limits.max_json_size),
            });
        }
        Ok((client, bytes))
    }

    /// Config, then the layers: downloaded in parallel, unpacked in order.
    async fn fetch(
        self: &Arc<Self>,
        res: &Resolved,
        stored: &str,
        repo_digest: Option<String>,
        wanted: Option<&Platform>,
        report: &Report,
    ) -> Result<Pulled, RegistryError> {
        let lease = Arc::new(self.content.lease_owned());
        let m = &res.manifest;
        let config_desc = descriptor(m.config());
        let config = Digest::parse(&config_desc.digest)?;
        if config_desc.size as u64 > self.limits.max_json_size {
            return Err(RegistryError::Blob {
                digest: config.to_string(),
                reason: format!("image config of {} bytes, over the limit of {}", config_desc.size, self.limits.max_json_size),
            });
        }
        let mut downloaded = self.download(&res.from, &config_desc, &lease, None).await?;
        let cfg: ImageConfiguration = serde_json::from_slice(&self.content.read(&config)?)
            .map_err(|e| RegistryError::Blob { digest: config.to_string(), reason: format!("image config: {e}") })?;
        if let Some(w) = wanted {
            let (os, arch) = (cfg.os().to_string(), cfg.architecture().to_string());
            if os != w.os || arch != w.arch {
                return Err(RegistryError::WrongPlatform {
                    reference: res.from.reference.to_string(),
                    wanted: w.to_string(),
                    actual: format!("{os}/{arch}"),
                });
            }
        }
        let diff_ids: Vec<Digest> = cfg.rootfs().diff_ids().iter().map(|d| Digest::parse(d)).collect::<Result<_, _>>()?;
        let layers: Vec<OciDescriptor> = m.layers().iter().map(descriptor).collect();
        if diff_ids.len() != layers.len() {
            return Err(RegistryError::Blob {
                digest: config.to_string(),
                reason: format!("{} diff_ids for {} layers", diff_ids.len(), layers.len()),
            });
        }
        if layers.len() > self.limits.max_layers {
            return Err(RegistryError::Blob {
                digest: config.to_string(),
                reason: format!("{} layers, over the limit of {}", layers.len(), self.limits.max_layers),
            });
        }
        let chains = chain_ids(&diff_ids);
        let snapshots = Snapshots::new(&self.root);
        // Layers already here (blob and snapshot) are not fetched again.
        let mut todo = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let d = Digest::parse(&l.digest)?;
            if self.content.has(&d) && snapshots.resolve(&chains[i]).is_some() {
                lease.blob(&d);
                lease.chain(&chains[i]);
                report.send(Progress::line(short(&l.digest), "Already exists")).await?;
            } else {
                report.send(Progress::line(short(&l.digest), "Pulling fs layer")).await?;
                todo.push(i);
            }
        }
        // Downloads: a task each, `max_downloads` at once; each layer's
        // unpack waits for its own download and the layer below it.
        let gate = Arc::new(tokio::sync::Semaphore::new(self.max_downloads));
        let mut done: Vec<Option<tokio::sync::oneshot::Receiver<Result<(), RegistryError>>>> = (0..layers.len()).map(|_| None).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for &i in &todo {
            let (tx, rx) = tokio::sync::oneshot::channel();
            done[i] = Some(rx);
            if todo.len() > self.max_downloads {
                report.send(Progress::line(short(&layers[i].digest), "Waiting")).await?;
            }
            let (me, gate, lease, report, desc) = (self.clone(), gate.clone(), lease.clone(), report.clone(), layers[i].clone());
            let from = res.from.clone();
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let r = me.download(&from, &desc, &lease, Some(&report)).await.map(drop);
                let _ = tx.send(r);
            });
        }
        // Dropping `tasks` (an error, or the pull's own cancellation) aborts the downloads.
        let count = layers.len();
        for (i, l) in layers.iter().enumerate() {
            let Some(rx) = done[i].take() else { continue };
            rx.await.map_err(|_| RegistryError::Cancelled)??;
            downloaded = true;
            report.send(Progress::line(short(&l.digest), "Extracting")).await?;
            let (chain, blob, diff, max, root, lease2) = (
                chains[i].clone(),
                self.content.path(&Digest::parse(&l.digest)?),
                diff_ids[i].clone(),
                self.limits.max_layer_size,
                self.root.clone(),
                lease.clone(),
            );
            let made = tokio::task::spawn_blocking(move || Snapshots::new(&root).ensure(&lease2, &chain, &blob, &diff, max))
                .await
                .map_err(|_| RegistryError::Cancelled)?;
            made.map_err(|source| RegistryError::Layer { index: i + 1, count, digest: l.digest.clone(), source })?;
            report.send(Progress::line(short(&l.digest), "Pull complete")).await?;
        }
        let row = ImageRow {
            name: stored.to_string(),
            config: config.to_string(),
            layers: layers.iter().map(|l| l.digest.clone()).collect(),
            created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        };
        let mut store = self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = store.image(stored)?;
        downloaded |= before.as_ref().map(|b| b.config != row.config).unwrap_or(true);
        // A tag that moves leaves the old image dangling, as docker does.
        crate::services::images::record(&mut store, &row)?;
        // Pulled by tag: the manifest's digest is a name too (docker's RepoDigests).
        if let Some(by_digest) = repo_digest {
            crate::services::images::record(&mut store, &ImageRow { name: by_digest, ..row })?;
        }
        drop(store);
        Ok(Pulled { name: stored.to_string(), digest: res.digest.clone(), config, downloaded })
    }

    /// One blob into the content store, verified; false if it was there.
    async fn download(
        &self,
        from: &Source,
        desc: &OciDescriptor,
        lease: &Lease<'static>,
        report: Option<&Report>,
    ) -> Result<bool, RegistryError> {
        let digest = Digest::parse(&desc.digest)?;
        let busy = self.inflight.lock().expect("inflight").entry(digest.to_string()).or_default().clone();
        let _one = busy.lock().await;
        let _forget = Forget { inflight: &self.inflight, key: digest.to_string(), busy: &busy };
        lease.blob(&digest);
        if self.content.has(&digest) {
            if let Some(r) = report {
                r.send(Progress::line(short(&desc.digest), "Download complete")).await?;
            }
            return Ok(false);
        }
        let partial = self.content.ingest_dir().join(format!("pull-{}", digest.hex()));
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.stream_into(from, desc, &digest, &partial, report).await {
                Ok(()) => break,
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    tracing::info!(blob = %digest, attempt, error = %rind_common::error::Chain(&e), "download failed: resuming");
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                }
                Err(e) => {
                    if !e.is_transient() {
                        let _ = std::fs::remove_file(&partial);
                    }
                    return Err(e);
                }
            }
        }
        self.content.commit_file(lease, &partial, &digest)?;
        if let Some(r) = report {
            r.send(Progress::line(short(&desc.digest), "Download complete")).await?;
        }
        Ok(true)
    }

    /// Appends to the partial file from where it stopped (a range request),
    /// hashing as it goes; refuses more bytes than the descriptor says and a
    /// digest that differs.
    async fn stream_into(
        &self,
        from: &Source,
        desc: &OciDescriptor,
        digest: &Digest,
        partial: &Path,
        report: Option<&Report>,
    ) -> Result<(), RegistryError> {
        let io = |op: &'static str| {
            let (digest, path) = (digest.to_string(), partial.to_path_buf());
            move |source| RegistryError::Io { digest, op, path, source }
        };
        let size = desc.size.max(0) as u64;
        let mut hash = Sha256::new();
        let mut have = 0u64;
        if let Ok(existing) = tokio::fs::read(partial).await {
            if existing.len() as u64 <= size {
                hash.update(&existing);
                have = existing.len() as u64;
            }
        }
        let id = short(&desc.digest);
        let response = if have > 0 && have < size {
            from.client.pull_blob_stream_partial(&from.reference, desc, have, None).await.map_err(|e| remote(&from.registry, e))?
        } else {
            BlobResponse::Full(from.client.pull_blob_stream(&from.reference, desc).await.map_err(|e| remote(&from.registry, e))?)
        };
        let mut stream = match response {
            BlobResponse::Partial(s) => s,
            BlobResponse::Full(s) => {
                // From the start: the registry ignored the range, or nothing was there.
                hash = Sha256::new();
                have = 0;
                s
            }
        };
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(have == 0)
            .append(have > 0)
            .open(partial)
            .await
            .map_err(io("open"))?;
        // Network chunks are a few KiB: written in MiBs, not one blocking-pool trip each.
        let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
        while let Some(chunk) = stream.stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // What arrived is kept for the next attempt to resume from.
                    let _ = file.flush().await;
                    return Err(body_error(from, digest, e));
                }
            };
            if have + chunk.len() as u64 > size {
                return Err(RegistryError::Blob {
                    digest: digest.to_string(),
                    reason: format!("the registry sent more than its {size} bytes"),
                });
            }
            hash.update(&chunk);
            file.write_all(&chunk).await.map_err(io("write"))?;
            have += chunk.len() as u64;
            if let Some(r) = report {
                r.update(Progress { id: id.clone(), status: "Downloading".into(), current: have, total: size });
            }
        }
        file.flush().await.map_err(io("write"))?;
        file.get_ref().sync_all().await.map_err(io("sync"))?;
        if let Some(r) = report {
            r.send(Progress::line(id, "Verifying Checksum")).await?;
        }
        if have != size {
            return Err(RegistryError::Remote {
                registry: from.registry.clone(),
                message: format!("body of blob {digest}: connection closed after {have} of {size} bytes"),
            });
        }
        let got = Digest::of_hash(hash);
        if got != *digest {
            return Err(RegistryError::Blob {
                digest: digest.to_string(),
                reason: format!("digest mismatch: the registry sent content of digest {got}"),
            });
        }
        Ok(())
    }
}

/// A broken blob body: a digest mismatch (oci-client checks a whole blob's
/// digest itself, at its end) or the transport's error.
fn body_error(from: &Source, digest: &Digest, e: std::io::Error) -> RegistryError {
    if e.to_string().contains("Invalid digest") {
        RegistryError::Blob { digest: digest.to_string(), reason: format!("digest mismatch: {e}") }
    } else {
        RegistryError::Remote {
            registry: from.registry.clone(),
            message: format!("body of blob {digest}: {}", rind_common::error::chain(&e)),
        }
    }
}

/// Removes a blob's entry from the in-flight map when its last user is done
/// (the map's and this download's are the only references left).
struct Forget<'a> {
    inflight: &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    key: String,
    busy: &'a Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut map = self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if Arc::strong_count(self.busy) == 2 {
            map.remove(&self.key);
        }
    }
}

/// Where an image's blobs come from.
#[derive(Clone)]
struct Source {
    client: Client,
    reference: Reference,
    registry: String,
}

fn descriptor(d: &oci_spec::image::Descriptor) -> OciDescriptor {
    OciDescriptor { media_type: d.media_type().to_string(), digest: d.digest().to_string(), size: d.size() as i64, ..Default::default() }
}

fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// The index entry for `p`: os and architecture equal, and the variant when
/// asked for (else the first of that architecture, as containerd's default
/// matcher orders them).
fn choose<'a>(index: &'a ImageIndex, p: &Platform) -> Option<&'a oci_spec::image::Descriptor> {
    index.manifests().iter().find(|m| {
        let Some(mp) = m.platform() else { return false };
        mp.os().to_string() == p.os
            && mp.architecture().to_string() == p.arch
            && p.variant.as_ref().is_none_or(|v| mp.variant().as_deref() == Some(v.as_str()))
    })
}

fn available(index: &ImageIndex) -> String {
    let all: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|m| m.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    if all.is_empty() {
        "no platforms".into()
    } else {
        all.join(", ")
    }
}

/// A registry call, tried again with back-off while it fails for a reason
/// that may pass (429, 5xx, the network).
async fn with_retries<T, F, Fut>(host: &str, mut f: F) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RegistryError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Err(e)
                if e.is_transient()
                    && attempt < ATTEMPTS
                    && !matches!(&e, RegistryError::Remote { message, .. } if message.contains("error sending request")) =>
            {
                tracing::info!(host, attempt, error = %rind_common::error::Chain(&e), "registry call failed: trying again");
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[(&str, &str, Option<&str>)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch, v))| {
                let mut p = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = v {
                    p["variant"] = serde_json::json!(v);
                }
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", format!("{i}").repeat(64)), "size": 10, "platform": p})
            })
            .collect();
        serde_json::from_value(serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})).unwrap()
    }

    #[test]
    fn the_platform_is_chosen_from_an_index() {
        let idx =
            index(&[("linux", "amd64", None), ("linux", "arm", Some("v6")), ("linux", "arm", Some("v7")), ("linux", "arm64", Some("v8"))]);
        let pick = |s: &str| choose(&idx, &Platform::parse(s).unwrap()).map(|d| d.digest().to_string().chars().nth(7).unwrap());
        assert_eq!(pick("linux/amd64"), Some('0'));
        assert_eq!(pick("linux/arm/v7"), Some('2'));
        assert_eq!(pick("linux/arm"), Some('1'));
        assert_eq!(pick("linux/arm64"), Some('3'));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(available(&idx), "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8");
    }

    #[test]
    fn layer_ids_are_dockers_short_digests() {
        assert_eq!(short(&format!("sha256:{}", "ab".repeat(32))), "abababababab");
    }
}
