//! rind.v1.Rind: the CLI's API, a thin adapter over `services/`.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rind_api::v1::rind_server::Rind;
use rind_api::v1::*;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::stream;
use crate::content::ContentStore;
use crate::services::containers::{self, ContainerError, Containers};
use crate::services::images::{self, ImageError};
use crate::services::restart::Policy;
use crate::store::{self, Store, StoreError};

/// The error and its causes, each once: a cause whose text the message
/// already shows is not repeated.
fn message_of(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        cause = c.source();
    }
    msg
}

/// The one mapping from image errors to gRPC codes.
fn status_of(e: ImageError) -> Status {
    use crate::content::ContentError;
    use crate::images::unpack::UnpackError;
    // What the archive brought is refused: the caller's error. rindd's own
    // failures (I/O, the store) are internal.
    let refused =
        |u: &UnpackError| matches!(u, UnpackError::Hostile { .. } | UnpackError::DiffIdMismatch { .. } | UnpackError::TooLarge { .. });
    let msg = message_of(&e);
    match &e {
        ImageError::Archive(_) | ImageError::Config { .. } | ImageError::Content(ContentError::TooLarge { .. }) => {
            Status::invalid_argument(msg)
        }
        ImageError::Unpack(u) | ImageError::Layer { source: u, .. } if refused(u) => Status::invalid_argument(msg),
        ImageError::Store(StoreError::NotFound(_)) | ImageError::NotFound(_) => Status::not_found(msg),
        ImageError::Ambiguous { .. } | ImageError::Filter { .. } => Status::invalid_argument(msg),
        _ => Status::internal(msg),
    }
}

/// Chunks of an archive between the client's stream and the blocking load:
/// a few MiB in flight at most, so a slow unpack slows the client down.
const LOAD_QUEUE: usize = 4;

/// A saved archive goes out in chunks of 1 MiB, a few in flight at most: a
/// slow client slows the save down, and memory stays bounded.
const SAVE_CHUNK: usize = 1 << 20;
const SAVE_QUEUE: usize = 4;

/// What the load's reader gets from the client's stream.
enum Chunk {
    Data(Vec<u8>),
    End,
    Failed(String),
}

/// The client's chunks as one `Read`, for the blocking import. A stream
/// that stops without its end (the client went away) is an error, never a
/// shorter archive.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Chunk>,
    buf: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl ChunkReader {
    fn new(rx: tokio::sync::mpsc::Receiver<Chunk>) -> ChunkReader {
        ChunkReader { rx, buf: Vec::new(), pos: 0, ended: false }
    }
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(d)) => (self.buf, self.pos) = (d, 0),
                Some(Chunk::End) => self.ended = true,
                Some(Chunk::Failed(e)) => return Err(std::io::Error::other(format!("receive the archive: {e}"))),
                None => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the client stopped sending the archive")),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn network_status_code(e: &crate::network::NetworkError, msg: String) -> Status {
    use crate::network::NetworkError as E;
    match e {
        E::NotFound(_) => Status::not_found(msg),
        E::Invalid(_) => Status::invalid_argument(msg),
        E::Exists(_) | E::InUse { .. } | E::Predefined(_) => Status::failed_precondition(msg),
        _ => Status::internal(msg),
    }
}

fn network_status(e: crate::network::NetworkError) -> Status {
    let msg = rind_common::error::chain(&e);
    network_status_code(&e, msg)
}

/// The one mapping from container errors to gRPC codes.
pub fn container_status(e: ContainerError) -> Status {
    let msg = message_of(&e);
    match &e {
        ContainerError::NotFound(_) | ContainerError::NoImage(_) => Status::not_found(msg),
        ContainerError::Conflict(_) => Status::failed_precondition(msg),
        ContainerError::Invalid(_) | ContainerError::Spec(_) => Status::invalid_argument(msg),
        ContainerError::Network(e) => network_status_code(e, msg),
        // A row that does not read: the store's data is damaged.
        ContainerError::Store(StoreError::Corrupt { .. }) | ContainerError::BadConfig { .. } => Status::data_loss(msg),
        _ => Status::internal(msg),
    }
}

fn state_of(s: store::Status) -> ContainerState {
    match s {
        store::Status::Created => ContainerState::Created,
        store::Status::Running => ContainerState::Running,
        store::Status::Paused => ContainerState::Paused,
        store::Status::Restarting => ContainerState::Restarting,
        store::Status::Exited => ContainerState::Exited,
        store::Status::Dead => ContainerState::Dead,
    }
}

/// The request's restart policy; unspecified is Docker's default, no.
fn policy_of(req: &CreateContainerRequest) -> Result<Policy, Status> {
    let retries = req.restart_max_retries;
    let policy = match RestartPolicy::try_from(req.restart) {
        Ok(RestartPolicy::Unspecified | RestartPolicy::No) => Policy::No,
        Ok(RestartPolicy::Always) => Policy::Always,
        Ok(RestartPolicy::UnlessStopped) => Policy::UnlessStopped,
        Ok(RestartPolicy::OnFailure) => Policy::OnFailure(retries),
        Err(_) => return Err(Status::invalid_argument(format!("unknown restart policy {} (a newer client?)", req.restart))),
    };
    if retries > 0 && !matches!(policy, Policy::OnFailure(_)) {
        return Err(Status::invalid_argument(format!(
            "invalid restart policy: a maximum retry count is only for on-failure, not {}",
            policy.name()
        )));
    }
    Ok(policy)
}

/// The one mapping from registry errors to gRPC codes.
fn status_of_pull(e: crate::registry::RegistryError) -> Status {
    use crate::registry::RegistryError as R;
    let msg = message_of(&e);
    match &e {
        R::Reference { .. } | R::Platform(_) | R::Schema1 { .. } | R::Certs { .. } => Status::invalid_argument(msg),
        R::NoPlatform { .. } | R::NotFound { .. } | R::WrongPlatform { .. } => Status::not_found(msg),
        R::Remote { message, .. }
            if message.contains("code: 404") || message.contains("not found") || message.contains("MANIFEST_UNKNOWN") =>
        {
            Status::not_found(msg)
        }
        R::Remote { message, .. }
            if message.contains("code: 401") || message.contains("uthenticat") || message.contains("UNAUTHORIZED") =>
        {
            Status::unauthenticated(msg)
        }
        R::Remote { .. } => Status::unavailable(msg),
        R::Manifest { .. } | R::Blob { .. } | R::Layer { .. } => Status::data_loss(msg),
        R::Cancelled => Status::cancelled(msg),
        R::Io { .. } | R::Content(_) | R::Save(_) | R::Store(_) => Status::internal(msg),
    }
}

fn auth_of(a: Option<RegistryAuth>) -> oci_client::secrets::RegistryAuth {
    use oci_client::secrets::RegistryAuth as A;
    match a {
        Some(a) if !a.identity_token.is_empty() => A::Bearer(a.identity_token),
        Some(a) if !a.username.is_empty() => A::Basic(a.username, a.password),
        _ => A::Anonymous,
    }
}

/// Passes a registry job's progress on to the client until the job ends;
/// the client gone (^C) aborts the job (a pull's partial downloads stay for
/// the next pull to resume). None when the client went away.
async fn relay<T: Send + 'static>(
    job: tokio::task::JoinHandle<Result<T, crate::registry::RegistryError>>,
    mut progress: tokio::sync::mpsc::Receiver<crate::registry::Progress>,
    out: &tokio::sync::mpsc::Sender<Result<PullProgress, Status>>,
) -> Option<Result<T, Status>> {
    loop {
        tokio::select! {
            p = progress.recv() => match p {
                Some(p) => {
                    let line = PullProgress { id: p.id, status: p.status, current: p.current, total: p.total, ..Default::default() };
                    if out.send(Ok(line)).await.is_err() {
                        job.abort();
                        return None;
                    }
                }
                None => break,
            },
            _ = out.closed() => {
                job.abort();
                return None;
            }
        }
    }
    Some(match job.await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => {
            tracing::info!(error = %rind_common::error::Chain(&e), "registry operation failed");
            Err(status_of_pull(e))
        }
        Err(e) => Err(internal(e)),
    })
}

fn internal(e: impl std::error::Error) -> Status {
    Status::internal(message_of(&e))
}

pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct RindApi {
    pub root: PathBuf,
    pub content: Arc<ContentStore>,
    pub store: Arc<Mutex<Store>>,
    pub containers: Arc<Containers>,
    /// The OCI runtime the shims run, as `info` shows it.
    pub runtime: String,
    /// What `load` accepts.
    pub limits: crate::images::Limits,
    pub puller: Arc<crate::registry::pull::Puller>,
}

impl RindApi {
    fn container_of(row: &store::ContainerRow) -> Result<Container, ContainerError> {
        let cfg = containers::Config::of(row)?;
        let spec: oci_spec::runtime::Spec = serde_json::from_str(&row.spec).unwrap_or_default();
        let command = spec.process().as_ref().and_then(|p| p.args().clone()).unwrap_or_default().join(" ");
        Ok(Container {
            id: row.id.clone(),
            name: row.name.clone(),
            image: row.image.clone(),
            command,
            created: store::format_time(row.created),
            state: state_of(row.status).into(),
            status: containers::status_text(row, SystemTime::now()),
            exit_code: row.exit_code.unwrap_or(0) as i32,
            labels: cfg.run.labels,
            pid: row.pid as u32,
        })
    }

    /// `ps`. A row that does not read is left out and named, in rindd's
    /// log and to the user (the CLI prints the warnings on stderr): dockerd
    /// too skips a container it cannot load and `docker ps` goes on, and
    /// one bad row must neither hide every other container (an error would)
    /// nor go unnoticed. `rm -f` removes it.
    fn listing(rows: &[store::ContainerRow], unreadable: &[StoreError], all: bool) -> ListContainersResponse {
        let mut warnings: Vec<String> = unreadable.iter().map(|e| message_of(e)).collect();
        let mut containers = Vec::new();
        for r in
            rows.iter().filter(|r| all || matches!(r.status, store::Status::Running | store::Status::Paused | store::Status::Restarting))
        {
            match Self::container_of(r) {
                Ok(c) => containers.push(c),
                Err(e) => warnings.push(message_of(&e)),
            }
        }
        for w in &mut warnings {
            tracing::warn!(error = %w, "ps: leaving out an unreadable container");
            w.push_str(": `rind rm -f` removes it");
        }
        ListContainersResponse { containers, warnings }
    }

    fn networks(&self) -> Result<Arc<crate::network::Networks>, Status> {
        self.containers
            .networks
            .get()
            .cloned()
            .ok_or_else(|| Status::failed_precondition("rindd runs without networks (bridge = \"none\" in its config)"))
    }

    fn config_of(req: CreateContainerRequest) -> Result<containers::Config, Status> {
        let restart = policy_of(&req)?;
        let stop_timeout = (req.stop_timeout >= 0).then_some(req.stop_timeout);
        let run = crate::services::spec::RunOptions {
            entrypoint: req.entrypoint_set.then_some(req.entrypoint),
            cmd: req.cmd,
            env: req.env,
            workdir: (!req.workdir.is_empty()).then_some(req.workdir),
            user: (!req.user.is_empty()).then_some(req.user),
            hostname: (!req.hostname.is_empty()).then_some(req.hostname),
            tty: req.tty,
            read_only: req.read_only,
            privileged: req.privileged,
            cap_add: req.cap_add,
            cap_drop: req.cap_drop,
            memory: (req.memory > 0).then_some(req.memory),
            cpus: (req.cpus != 0.0).then_some(req.cpus),
            pids_limit: (req.pids_limit != 0).then_some(req.pids_limit),
            labels: req.labels.into_iter().collect(),
            binds: req.binds.into_iter().map(|b| (b.host, b.container, b.read_only)).collect(),
            tmpfs: req.tmpfs,
            // Empty: the default network, when rindd has networks.
            network: req.network,
            ports: req
                .publish
                .iter()
                .map(|p| crate::network::ports::parse(p))
                .collect::<Result<_, _>>()
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
            ip: (!req.ip.is_empty()).then_some(req.ip),
            network_aliases: req.network_aliases,
            dns: req.dns,
            dns_search: req.dns_search,
            dns_options: req.dns_options,
            add_hosts: req
                .add_hosts
                .iter()
                .map(|h| match h.split_once(':') {
                    Some((host, ip)) if !host.is_empty() && !ip.is_empty() => Ok((host.to_string(), ip.to_string())),
                    _ => Err(Status::invalid_argument(format!("invalid --add-host {h:?}: HOST:IP expected"))),
                })
                .collect::<Result<_, _>>()?,
            seccomp_unconfined: false,
        };
        Ok(containers::Config {
            image: req.image,
            run,
            open_stdin: req.open_stdin,
            security_opt: req.security_opt,
            restart,
            auto_remove: req.auto_remove,
            stop_signal: req.stop_signal,
            stop_timeout,
            publish_all: req.publish_all,
            ..Default::default()
        })
    }
}

#[tonic::async_trait]
impl Rind for RindApi {
    async fn version(&self, _req: Request<VersionRequest>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse { version: env!("CARGO_PKG_VERSION").into(), api_version: rind_api::API_VERSION.into() }))
    }

    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let rows = self.containers.list().map_err(container_status)?;
        let count = |s: store::Status| rows.iter().filter(|r| r.status == s).count() as u32;
        let images = self.store.lock().expect("store lock").images().map_err(internal)?.len() as u32;
        let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { "2" } else { "1" };
        let kernel = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Response::new(InfoResponse {
            containers: rows.len() as u32,
            running: count(store::Status::Running),
            paused: count(store::Status::Paused),
            stopped: rows.len() as u32 - count(store::Status::Running) - count(store::Status::Paused),
            images,
            root: self.containers.paths.root.display().to_string(),
            state: self.containers.paths.state.display().to_string(),
            cgroup_version: cgroup_version.into(),
            kernel,
            runtime: self.runtime.clone(),
            storage_driver: "overlayfs".into(),
        }))
    }
    async fn load_image(&self, req: Request<Streaming<LoadChunk>>) -> Result<Response<LoadImageResponse>, Status> {
        // The archive is read as it arrives, in one pass, by a blocking task
        // that holds no daemon-wide lock (see services/images.rs): `ps` and
        // exits go on while it reads, unpacks and verifies.
        let (tx, rx) = tokio::sync::mpsc::channel(LOAD_QUEUE);
        let (root, content, store, limits) = (self.root.clone(), self.content.clone(), self.store.clone(), self.limits);
        let worker = tokio::task::spawn_blocking(move || {
            let loaded = images::load(&root, &content, &store, ChunkReader::new(rx), &limits);
            // A name that moved to the new image leaves the old one's layers
            // unused; a refused load leaves what it wrote.
            match images::collect_garbage_unlocked(&root, &content, &store) {
                Ok(gone) if loaded.is_ok() => tracing::info!(blobs = gone.blobs, snapshots = gone.snapshots, "image loaded"),
                Ok(gone) => tracing::info!(blobs = gone.blobs, snapshots = gone.snapshots, "cleaned up after a refused load"),
                Err(e) => tracing::warn!(error = %rind_common::error::Chain(&e), "collect image garbage after a load"),
            }
            loaded
        });
        let mut stream = req.into_inner();
        loop {
            let chunk = match stream.next().await {
                Some(Ok(c)) => Chunk::Data(c.data),
                Some(Err(e)) => Chunk::Failed(e.message().to_string()),
                None => Chunk::End,
            };
            let last = !matches!(chunk, Chunk::Data(_));
            // The send fails when the load stopped reading: its result says why.
            if tx.send(chunk).await.is_err() || last {
                break;
            }
        }
        drop(tx);
        let loaded = worker.await.map_err(internal)?.map_err(status_of)?;
        Ok(Response::new(LoadImageResponse { names: loaded.into_iter().flat_map(|l| l.names).collect() }))
    }

    async fn list_images(&self, req: Request<ListImagesRequest>) -> Result<Response<ListImagesResponse>, Status> {
        let filters = images::Filters::parse(&req.into_inner().filters).map_err(status_of)?;
        let (root, content, store) = (self.root.clone(), self.content.clone(), self.store.clone());
        // Sizes may walk layers not measured yet: off the async threads.
        let listed = tokio::task::spawn_blocking(move || images::list(&root, &content, &store, &filters))
            .await
            .map_err(internal)?
            .map_err(status_of)?;
        let images = listed
            .into_iter()
            .map(|s| Image {
                name: s.repo_tags.first().or(s.repo_digests.first()).cloned().unwrap_or_default(),
                config_digest: s.config,
                layers: s.layers,
                created: s.recorded,
                size: s.size,
                image_created: s.created.unwrap_or_default(),
                repo_tags: s.repo_tags,
                repo_digests: s.repo_digests,
            })
            .collect();
        Ok(Response::new(ListImagesResponse { images }))
    }

    async fn remove_image(&self, req: Request<RemoveImageRequest>) -> Result<Response<RemoveImageResponse>, Status> {
        let mut req = req.into_inner();
        let removed = {
            let mut store = self.store.lock().expect("store lock");
            if store.image(&req.name).map_err(internal)?.is_none() {
                let latest = format!("{}:latest", req.name);
                if req.name.contains(':') || store.image(&latest).map_err(internal)?.is_none() {
                    return Err(Status::not_found(format!("image {} not found", req.name)));
                }
                req.name = latest;
            }
            let users: Vec<String> =
                store.containers().map_err(internal)?.into_iter().filter(|c| c.image == req.name).map(|c| c.name).collect();
            if !users.is_empty() && !req.force {
                return Err(Status::failed_precondition(format!(
                    "image {} is used by container(s) {}: use --force",
                    req.name,
                    users.join(", ")
                )));
            }
            !images::untag(&mut store, &req.name).map_err(internal)?.is_empty()
        };
        // What only this image used goes now, with no daemon-wide lock held.
        let (root, content, store) = (self.root.clone(), self.content.clone(), self.store.clone());
        let gone = tokio::task::spawn_blocking(move || images::collect_garbage_unlocked(&root, &content, &store))
            .await
            .map_err(internal)?
            .map_err(status_of)?;
        tracing::info!(image = %req.name, blobs = gone.blobs, snapshots = gone.snapshots, "image removed");
        Ok(Response::new(RemoveImageResponse { removed }))
    }

    async fn tag_image(&self, req: Request<TagImageRequest>) -> Result<Response<TagImageResponse>, Status> {
        let req = req.into_inner();
        let target = if req.target.contains(':') { req.target } else { format!("{}:latest", req.target) };
        let mut store = self.store.lock().expect("store lock");
        let src = store
            .image(&req.source)
            .map_err(internal)?
            .or_else(|| store.image(&format!("{}:latest", req.source)).ok().flatten())
            .ok_or_else(|| Status::not_found(format!("no such image: {}", req.source)))?;
        // The image the name leaves stays, dangling, as docker's does.
        images::record(&mut store, &crate::store::ImageRow { name: target, ..src }).map_err(internal)?;
        Ok(Response::new(TagImageResponse {}))
    }

    type SaveImageStream = BoxStream<SaveChunk>;
    async fn save_image(&self, req: Request<SaveImageRequest>) -> Result<Response<Self::SaveImageStream>, Status> {
        let names = req.into_inner().names;
        let (content, store, limits) = (self.content.clone(), self.store.clone(), self.limits);
        // Resolved and planned first: a name that is not here fails the call
        // before a byte is sent.
        let c = content.clone();
        let saving = tokio::task::spawn_blocking(move || images::prepare_save(&c, &store, &names, &limits))
            .await
            .map_err(internal)?
            .map_err(status_of)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<SaveChunk, Status>>(SAVE_QUEUE);
        tokio::task::spawn_blocking(move || {
            let chunks = crate::images::save::Chunks::new(SAVE_CHUNK, |data| {
                tx.blocking_send(Ok(SaveChunk { data })).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            });
            if let Err(e) = images::write_save(&content, &saving, chunks) {
                // Sent if the client still listens; else it hung up, which is its right.
                if tx.blocking_send(Err(status_of(e))).is_err() {
                    tracing::info!("save ended: the client went away");
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn image_history(&self, req: Request<ImageHistoryRequest>) -> Result<Response<ImageHistoryResponse>, Status> {
        let name = req.into_inner().name;
        let (root, content, store) = (self.root.clone(), self.content.clone(), self.store.clone());
        let entries = tokio::task::spawn_blocking(move || images::history(&root, &content, &store, &name))
            .await
            .map_err(internal)?
            .map_err(status_of)?
            .into_iter()
            .map(|h| HistoryEntry {
                id: h.id,
                created: h.created.unwrap_or_default(),
                created_by: h.created_by,
                size: h.size,
                comment: h.comment,
            })
            .collect();
        Ok(Response::new(ImageHistoryResponse { entries }))
    }

    async fn prune_images(&self, req: Request<PruneImagesRequest>) -> Result<Response<PruneImagesResponse>, Status> {
        let all = req.into_inner().all;
        let (root, content, store) = (self.root.clone(), self.content.clone(), self.store.clone());
        let report =
            tokio::task::spawn_blocking(move || images::prune(&root, &content, &store, all)).await.map_err(internal)?.map_err(status_of)?;
        tracing::info!(
            all,
            images = report.lines.iter().filter(|l| matches!(l, images::Pruned::Deleted(_))).count(),
            reclaimed = report.reclaimed,
            "images pruned"
        );
        let deleted = report
            .lines
            .into_iter()
            .map(|l| match l {
                images::Pruned::Untagged(n) => PrunedImage { untagged: n, deleted: String::new() },
                images::Pruned::Deleted(id) => PrunedImage { untagged: String::new(), deleted: id },
            })
            .collect();
        Ok(Response::new(PruneImagesResponse { deleted, space_reclaimed: report.reclaimed }))
    }

    async fn inspect_image(&self, req: Request<InspectImageRequest>) -> Result<Response<InspectResponse>, Status> {
        let name = req.into_inner().name;
        let store = self.store.lock().expect("store lock");
        let row = store
            .image(&name)
            .map_err(internal)?
            .or_else(|| store.image(&format!("{name}:latest")).ok().flatten())
            .ok_or_else(|| Status::not_found(format!("no such image: {name}")))?;
        // A dangling image's row is named by its id: no tag.
        let (digests, tags): (Vec<String>, Vec<String>) = store
            .images()
            .map_err(internal)?
            .into_iter()
            .filter(|i| i.config == row.config && i.name != i.config)
            .map(|i| i.name)
            .partition(|n| n.contains('@'));
        drop(store);
        let digest = crate::content::Digest::parse(&row.config).map_err(internal)?;
        let config: serde_json::Value = serde_json::from_slice(&self.content.read(&digest).map_err(internal)?).map_err(internal)?;
        let json = serde_json::json!([{
            "Id": row.config,
            "RepoTags": tags,
            "RepoDigests": digests,
            "Created": config.get("created").cloned().unwrap_or_default(),
            "Architecture": config.get("architecture").cloned().unwrap_or_default(),
            "Os": config.get("os").cloned().unwrap_or_default(),
            "Config": config.get("config").cloned().unwrap_or_default(),
            "RootFS": config.get("rootfs").cloned().unwrap_or_default(),
            "Layers": row.layers,
        }]);
        Ok(Response::new(InspectResponse { json: serde_json::to_string_pretty(&json).expect("json") }))
    }

    async fn create_container(&self, req: Request<CreateContainerRequest>) -> Result<Response<CreateContainerResponse>, Status> {
        let req = req.into_inner();
        let name = req.name.clone();
        let cfg = Self::config_of(req)?;
        let c = self.containers.clone();
        let row = tokio::task::spawn_blocking(move || c.create(&name, cfg)).await.map_err(internal)?.map_err(container_status)?;
        Ok(Response::new(CreateContainerResponse { id: row.id, name: row.name }))
    }

    async fn start_container(&self, req: Request<ContainerRef>) -> Result<Response<Empty>, Status> {
        self.containers.start(&req.into_inner().id).await.map_err(container_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn stop_container(&self, req: Request<StopContainerRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        self.containers.stop(&req.id, Some(req.timeout)).await.map_err(container_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn restart_container(&self, req: Request<StopContainerRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        self.containers.restart(&req.id, Some(req.timeout)).await.map_err(container_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn kill_container(&self, req: Request<KillContainerRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        self.containers.kill(&req.id, &req.signal).await.map_err(container_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn remove_container(&self, req: Request<RemoveContainerRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        self.containers.remove(&req.id, req.force).await.map_err(container_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn pause_container(&self, req: Request<ContainerRef>) -> Result<Response<Empty>, Status> {
        self.containers.pause(&req.into_inner().id, true).await.map_err(container_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn unpause_container(&self, req: Request<ContainerRef>) -> Result<Response<Empty>, Status> {
        self.containers.pause(&req.into_inner().id, false).await.map_err(container_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn rename_container(&self, req: Request<RenameContainerRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        self.containers.rename(&req.id, &req.name).await.map_err(container_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn create_network(&self, req: Request<CreateNetworkRequest>) -> Result<Response<CreateNetworkResponse>, Status> {
        let r = req.into_inner();
        let some = |s: String| (!s.is_empty()).then_some(s);
        let o = crate::network::create::CreateOptions {
            name: r.name,
            subnet: some(r.subnet),
            gateway: some(r.gateway),
            ip_range: some(r.ip_range),
            internal: r.internal,
            labels: r.labels.into_iter().collect(),
        };
        let nets = self.networks()?;
        let info = tokio::task::spawn_blocking(move || nets.create(&o)).await.map_err(internal)?.map_err(network_status)?;
        Ok(Response::new(CreateNetworkResponse { id: info.id }))
    }

    async fn list_networks(&self, _req: Request<Empty>) -> Result<Response<ListNetworksResponse>, Status> {
        let networks = self
            .networks()?
            .list()
            .map_err(network_status)?
            .into_iter()
            .map(|n| Network {
                id: n.id,
                name: n.name,
                driver: "bridge".into(),
                subnet: n.subnet,
                gateway: n.gateway,
                internal: n.internal,
                labels: n.labels.into_iter().collect(),
                created: n.created,
            })
            .collect();
        Ok(Response::new(ListNetworksResponse { networks }))
    }

    async fn inspect_network(&self, req: Request<NetworkRef>) -> Result<Response<InspectResponse>, Status> {
        let n = self.networks()?.find(&req.into_inner().name).map_err(network_status)?;
        let attached = self.containers.attached(&n.name).map_err(container_status)?;
        let attached: Vec<_> = attached.into_iter().map(|p| (p.id, p.name, p.attachment)).collect();
        let json = serde_json::json!([super::inspect::network_json(&n, &attached)]);
        Ok(Response::new(InspectResponse { json: serde_json::to_string_pretty(&json).expect("json") }))
    }

    async fn remove_network(&self, req: Request<NetworkRef>) -> Result<Response<NetworkRef>, Status> {
        let name = self.containers.remove_network(&req.into_inner().name).map_err(container_status)?;
        Ok(Response::new(NetworkRef { name }))
    }

    async fn prune_networks(&self, _req: Request<Empty>) -> Result<Response<PruneNetworksResponse>, Status> {
        let removed = self.containers.prune_networks().map_err(container_status)?;
        Ok(Response::new(PruneNetworksResponse { removed }))
    }

    async fn connect_network(&self, req: Request<ConnectNetworkRequest>) -> Result<Response<Empty>, Status> {
        let r = req.into_inner();
        let ip = (!r.ip.is_empty()).then_some(r.ip);
        self.containers.connect(&r.container, &r.network, r.aliases, ip).await.map_err(container_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn disconnect_network(&self, req: Request<DisconnectNetworkRequest>) -> Result<Response<Empty>, Status> {
        let r = req.into_inner();
        self.containers.disconnect(&r.container, &r.network).await.map_err(container_status)?;
        Ok(Response::new(Empty {}))
    }

    async fn prune_containers(&self, _req: Request<PruneContainersRequest>) -> Result<Response<PruneContainersResponse>, Status> {
        let deleted = self.containers.prune().await.map_err(container_status)?;
        Ok(Response::new(PruneContainersResponse { deleted }))
    }

    async fn list_containers(&self, req: Request<ListContainersRequest>) -> Result<Response<ListContainersResponse>, Status> {
        let all = req.into_inner().all;
        let (rows, unreadable) = self.containers.scan().map_err(container_status)?;
        Ok(Response::new(Self::listing(&rows, &unreadable, all)))
    }

    async fn inspect_container(&self, req: Request<ContainerRef>) -> Result<Response<InspectResponse>, Status> {
        let row = self.containers.get(&req.into_inner().id).map_err(container_status)?;
        let links = containers::Config::of(&row).map(|c| c.links()).unwrap_or_default();
        let attached: Vec<_> = match self.containers.networks.get() {
            Some(n) => links.iter().filter_map(|l| n.attachment(&row.id, &l.network)).collect(),
            None => Vec::new(),
        };
        let json = super::inspect::container_json(&row, &self.containers.paths, &attached).map_err(container_status)?;
        Ok(Response::new(InspectResponse { json: serde_json::to_string_pretty(&json).expect("json") }))
    }

    async fn wait(&self, req: Request<ContainerRef>) -> Result<Response<WaitResponse>, Status> {
        let row = self.containers.get(&req.into_inner().id).map_err(container_status)?;
        let row = self.containers.wait_stopped(&row.id, None).await.map_err(container_status)?;
        Ok(Response::new(WaitResponse { exit_code: row.exit_code.unwrap_or(-1) as i32, error: row.exit_reason.unwrap_or_default() }))
    }

    async fn top(&self, req: Request<ContainerRef>) -> Result<Response<TopResponse>, Status> {
        let (row, shim) = self.containers.shim_for(&req.into_inner().id).map_err(container_status)?;
        let pids = shim.pids(&row.id).await.map_err(|e| container_status(e.into()))?;
        let (titles, rows) = crate::services::stats::top_rows(&pids);
        Ok(Response::new(TopResponse { titles, rows: rows.into_iter().map(|fields| TopRow { fields }).collect() }))
    }

    type PullImageStream = BoxStream<PullProgress>;
    async fn pull_image(&self, req: Request<PullImageRequest>) -> Result<Response<Self::PullImageStream>, Status> {
        let r = req.into_inner();
        let auth = auth_of(r.auth);
        let (progress_tx, progress) = tokio::sync::mpsc::channel(64);
        let (out, out_rx) = tokio::sync::mpsc::channel::<Result<PullProgress, Status>>(64);
        let (puller, root, content, store) = (self.puller.clone(), self.root.clone(), self.content.clone(), self.store.clone());
        let pull = tokio::spawn(async move { puller.pull(&r.reference, &r.platform, auth, progress_tx).await });
        tokio::spawn(async move {
            let result = relay(pull, progress, &out).await;
            // What the pull brought and no image holds goes at once: a failed
            // pull's config and layers, an old image a moved name left unused.
            // (Partial downloads stay in the ingest dir for the next pull.)
            let gc = tokio::task::spawn_blocking(move || images::collect_garbage_unlocked(&root, &content, &store)).await;
            if let Ok(Err(e)) = gc {
                tracing::warn!(error = %rind_common::error::Chain(&e), "collect image garbage after a pull");
            }
            let last = match result {
                None => return,
                Some(Ok(p)) => {
                    tracing::info!(image = %p.name, digest = %p.digest, "image pulled");
                    Ok(PullProgress { image: p.name, digest: p.digest, ..Default::default() })
                }
                Some(Err(e)) => Err(e),
            };
            let _ = out.send(last).await;
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out_rx))))
    }

    type PushImageStream = BoxStream<PullProgress>;
    async fn push_image(&self, req: Request<PushImageRequest>) -> Result<Response<Self::PushImageStream>, Status> {
        let r = req.into_inner();
        let auth = auth_of(r.auth);
        let (progress_tx, progress) = tokio::sync::mpsc::channel(64);
        let (out, out_rx) = tokio::sync::mpsc::channel::<Result<PullProgress, Status>>(64);
        let pusher =
            crate::registry::push::Pusher { content: self.content.clone(), store: self.store.clone(), hosts: self.puller.hosts.clone() };
        let push = tokio::spawn(async move { pusher.push(&r.reference, auth, progress_tx).await });
        tokio::spawn(async move {
            let last = match relay(push, progress, &out).await {
                None => return,
                Some(Ok(p)) => Ok(PullProgress { digest: p.digest, ..Default::default() }),
                Some(Err(e)) => Err(e),
            };
            let _ = out.send(last).await;
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out_rx))))
    }

    async fn login(&self, req: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let r = req.into_inner();
        let auth = auth_of(r.auth);
        crate::registry::login(&self.puller.hosts, &r.registry, &auth).await.map_err(|e| {
            let s = status_of_pull(e);
            if s.code() == tonic::Code::NotFound {
                Status::unauthenticated(s.message().to_string())
            } else {
                s
            }
        })?;
        Ok(Response::new(LoginResponse { status: "Login Succeeded".into() }))
    }

    type StatsStream = BoxStream<StatsResponse>;
    async fn stats(&self, req: Request<StatsRequest>) -> Result<Response<Self::StatsStream>, Status> {
        Ok(Response::new(stream::stats(self.containers.clone(), req.into_inner()).await?))
    }

    type EventsStream = BoxStream<Event>;
    async fn events(&self, _req: Request<EventsRequest>) -> Result<Response<Self::EventsStream>, Status> {
        let rx = self.containers.events.subscribe();
        let s = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|e| {
            let e = e.ok()?;
            let mut attributes = std::collections::HashMap::new();
            attributes.insert("name".to_string(), e.name.clone());
            if let Some(c) = e.exit_code {
                attributes.insert("exitCode".to_string(), c.to_string());
            }
            Some(Ok(Event {
                time: humantime::format_rfc3339_nanos(e.time).to_string(),
                id: e.id,
                name: e.name,
                action: e.action.to_string(),
                attributes,
            }))
        });
        Ok(Response::new(Box::pin(s)))
    }

    type LogsStream = BoxStream<LogChunk>;
    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        Ok(Response::new(stream::logs(self.containers.clone(), req.into_inner())?))
    }

    type AttachStream = BoxStream<AttachOut>;
    async fn attach(&self, req: Request<Streaming<AttachIn>>) -> Result<Response<Self::AttachStream>, Status> {
        Ok(Response::new(stream::attach(self.containers.clone(), req.into_inner()).await?))
    }

    type ExecStream = BoxStream<AttachOut>;
    async fn exec(&self, req: Request<Streaming<AttachIn>>) -> Result<Response<Self::ExecStream>, Status> {
        Ok(Response::new(stream::exec(self.containers.clone(), req.into_inner()).await?))
    }
}

/// How long a follower sleeps between looks at a log when nothing woke it.
pub const FOLLOW_POLL: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{ContentError, Digest};
    use crate::images::archive::ArchiveError;
    use crate::images::unpack::UnpackError;
    use crate::services::restart::RestartError;
    use crate::services::spec::SpecError;
    use crate::shims::ShimError;
    use tonic::Code;

    fn io(msg: &str) -> std::io::Error {
        std::io::Error::other(msg.to_string())
    }

    fn assert_maps(cases: Vec<(Status, Code, &str)>) {
        for (status, code, message) in cases {
            assert_eq!((status.code(), status.message()), (code, message));
        }
    }

    #[test]
    fn container_status_is_not_found_for_missing_containers_and_images() {
        assert_maps(vec![
            (container_status(ContainerError::NotFound("web".into())), Code::NotFound, "no such container: web"),
            (
                container_status(ContainerError::NoImage("busybox".into())),
                Code::NotFound,
                "no such image: busybox (pull it with `rind pull`, or load it with `rind load -i FILE`)",
            ),
        ]);
    }

    #[test]
    fn container_status_is_failed_precondition_for_conflicts() {
        let e = ContainerError::Conflict("cannot kill container web: it is not running".into());
        assert_maps(vec![(container_status(e), Code::FailedPrecondition, "cannot kill container web: it is not running")]);
    }

    #[test]
    fn container_status_is_invalid_argument_for_bad_requests() {
        let spec = SpecError::Invalid { what: "memory", value: "lots".into(), reason: "not a size" };
        assert_maps(vec![
            (container_status(ContainerError::Invalid("exec needs a command".into())), Code::InvalidArgument, "exec needs a command"),
            (container_status(ContainerError::Spec(spec)), Code::InvalidArgument, "memory \"lots\": not a size"),
        ]);
    }

    fn corrupt(id: &str, name: &str) -> StoreError {
        let source = RestartError::Invalid("sometimes".into());
        StoreError::Corrupt { id: id.into(), name: name.into(), column: "restart_policy", value: "sometimes".into(), source: source.into() }
    }

    #[test]
    fn container_status_is_data_loss_for_a_row_that_does_not_read() {
        assert_maps(vec![(
            container_status(ContainerError::Store(corrupt("abc", "web"))),
            Code::DataLoss,
            "metadata store: container abc (web): bad restart_policy \"sometimes\": invalid restart policy \"sometimes\": \
             use no, always, unless-stopped or on-failure[:max-retries]",
        )]);
    }

    fn row(id: &str, status: store::Status) -> store::ContainerRow {
        store::ContainerRow {
            id: id.into(),
            name: format!("{id}-name"),
            image: "busybox".into(),
            spec: "{}".into(),
            desired: store::Desired::Running,
            restart_policy: Policy::No,
            bundle: "b".into(),
            shim_address: None,
            created: SystemTime::UNIX_EPOCH,
            exit_code: None,
            finished_at: None,
            exit_reason: None,
            config: "{}".into(),
            status,
            pid: 0,
            started_at: None,
            restart_count: 0,
            oom_killed: false,
        }
    }

    #[test]
    fn listing_leaves_out_and_names_rows_that_do_not_read() {
        let rows = [row("up", store::Status::Running), row("down", store::Status::Exited), row("bad-config", store::Status::Exited)];
        let rows = [rows[0].clone(), rows[1].clone(), store::ContainerRow { config: "{".into(), ..rows[2].clone() }];
        let l = RindApi::listing(&rows, &[corrupt("abc", "web")], true);
        let ids: Vec<&str> = l.containers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["up", "down"]);
        assert_eq!((l.containers[0].state(), l.containers[1].state()), (ContainerState::Running, ContainerState::Exited));
        assert_eq!(l.containers[0].created, "1970-01-01T00:00:00.000000000Z");
        assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
        assert!(l.warnings[0].starts_with("metadata store: container abc (web): bad restart_policy"), "{}", l.warnings[0]);
        assert!(l.warnings[1].contains("container bad-config (bad-config-name): bad config"), "{}", l.warnings[1]);
        assert!(l.warnings.iter().all(|w| w.ends_with("`rind rm -f` removes it")));
        // Without --all: the live ones, and still the row whose state is unknown.
        let l = RindApi::listing(&rows, &[corrupt("abc", "web")], false);
        assert_eq!((l.containers.len(), l.warnings.len()), (1, 1));
    }

    #[test]
    fn restart_policies_from_the_wire() {
        let req = |restart: RestartPolicy, restart_max_retries| CreateContainerRequest {
            restart: restart.into(),
            restart_max_retries,
            ..Default::default()
        };
        assert_eq!(policy_of(&req(RestartPolicy::Unspecified, 0)).ok(), Some(Policy::No), "Docker's default");
        assert_eq!(policy_of(&req(RestartPolicy::No, 0)).ok(), Some(Policy::No));
        assert_eq!(policy_of(&req(RestartPolicy::Always, 0)).ok(), Some(Policy::Always));
        assert_eq!(policy_of(&req(RestartPolicy::UnlessStopped, 0)).ok(), Some(Policy::UnlessStopped));
        assert_eq!(policy_of(&req(RestartPolicy::OnFailure, 3)).ok(), Some(Policy::OnFailure(3)));
        let e = policy_of(&req(RestartPolicy::Always, 3)).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("always"), "{}", e.message());
        let e = policy_of(&CreateContainerRequest { restart: 42, ..Default::default() }).unwrap_err();
        assert!(e.code() == Code::InvalidArgument && e.message().contains("42"), "{}", e.message());
    }

    #[test]
    fn container_status_is_internal_for_failures_of_rindd_or_its_shims() {
        let shim = ShimError::Call { call: "kill", message: "process already finished".into(), not_found: true };
        let io_err = ContainerError::Io { op: "write", path: "/run/rind/x/config.json".into(), source: io("no space left on device") };
        let image = ContainerError::ImageConfig { digest: "sha256:ab".into(), message: "missing rootfs".into() };
        assert_maps(vec![
            // A row that vanished under a verb is rindd's failure, not the caller's.
            (container_status(ContainerError::Store(StoreError::NotFound("abc".into()))), Code::Internal, "container abc not found"),
            (container_status(ContainerError::Shim(shim)), Code::Internal, "shim kill: process already finished"),
            (container_status(io_err), Code::Internal, "write /run/rind/x/config.json: no space left on device"),
            (container_status(image), Code::Internal, "image config sha256:ab: missing rootfs"),
        ]);
    }

    #[test]
    fn status_of_is_invalid_argument_for_bad_archives_and_images() {
        let hostile = UnpackError::Hostile { entry: "../etc/passwd".into(), reason: "escapes the layer" };
        assert_maps(vec![
            (
                status_of(ImageError::Archive(ArchiveError::Invalid { what: "manifest.json".into(), reason: "no such entry".into() })),
                Code::InvalidArgument,
                "manifest.json: no such entry",
            ),
            (status_of(ImageError::Unpack(hostile)), Code::InvalidArgument, "layer entry \"../etc/passwd\" refused: escapes the layer"),
            (
                status_of(ImageError::Config { digest: "sha256:ab".into(), reason: "2 diff_ids for 3 layers".into() }),
                Code::InvalidArgument,
                "image config sha256:ab: 2 diff_ids for 3 layers",
            ),
        ]);
    }

    #[test]
    fn status_of_names_the_refused_layer_and_says_why_once() {
        let (blob, want, got) = (Digest::of(b"blob"), Digest::of(b"busybox"), Digest::of(b"poison"));
        let mismatch = ImageError::Layer {
            index: 2,
            count: 3,
            image: "evil:1".into(),
            blob: blob.clone(),
            source: UnpackError::DiffIdMismatch { expected: want.clone(), actual: got.clone() },
        };
        let big = ImageError::Layer {
            index: 1,
            count: 1,
            image: "bomb:1".into(),
            blob: blob.clone(),
            source: UnpackError::TooLarge { limit: 10 },
        };
        let config = ImageError::Content(ContentError::TooLarge { what: "image config", digest: "sha256:ab".into(), limit: 4 });
        let layers = ImageError::Archive(ArchiveError::TooManyLayers { image: "deep:1".into(), count: 300, limit: 256 });
        assert_maps(vec![
            (
                status_of(mismatch),
                Code::InvalidArgument,
                &format!(
                    "layer 2 of 3 of image evil:1 ({blob}): its uncompressed digest is {got}, but the image config's diff_id says {want}"
                ),
            ),
            (
                status_of(big),
                Code::InvalidArgument,
                &format!("layer 1 of 1 of image bomb:1 ({blob}): it is larger than 10 bytes uncompressed (max_layer_size)"),
            ),
            (status_of(config), Code::InvalidArgument, "image config sha256:ab is larger than 4 bytes"),
            (status_of(layers), Code::InvalidArgument, "image deep:1 has 300 layers: rind takes at most 256"),
        ]);
        let io_failure = ImageError::Layer {
            index: 1,
            count: 1,
            image: "x".into(),
            blob,
            source: UnpackError::Exists("/var/lib/rind/snapshots/1/fs".into()),
        };
        assert_eq!(status_of(io_failure).code(), Code::Internal);
    }

    #[test]
    fn chunk_reader_joins_chunks_and_refuses_a_stream_cut_short() {
        use std::io::Read;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        for c in [Chunk::Data(b"ab".to_vec()), Chunk::Data(Vec::new()), Chunk::Data(b"cde".to_vec()), Chunk::End] {
            tx.try_send(c).unwrap();
        }
        let mut all = Vec::new();
        ChunkReader::new(rx).read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abcde");

        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.try_send(Chunk::Data(b"ab".to_vec())).unwrap();
        drop(tx);
        let e = ChunkReader::new(rx).read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);

        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.try_send(Chunk::Failed("h2 reset".into())).unwrap();
        let e = ChunkReader::new(rx).read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "receive the archive: h2 reset");
    }

    #[test]
    fn status_of_is_not_found_for_a_missing_row() {
        assert_maps(vec![(status_of(ImageError::Store(StoreError::NotFound("abc".into()))), Code::NotFound, "container abc not found")]);
    }

    #[test]
    fn status_of_is_internal_for_failures_of_rindd() {
        assert_maps(vec![
            (status_of(ImageError::Content(ContentError::NotFound("sha256:ab".into()))), Code::Internal, "blob sha256:ab not found"),
            (
                status_of(ImageError::Unpack(UnpackError::Exists("/var/lib/rind/snapshots/ab".into()))),
                Code::Internal,
                "/var/lib/rind/snapshots/ab already exists",
            ),
            (
                status_of(ImageError::Io { op: "remove", path: "/var/lib/rind/snapshots/ab".into(), source: io("busy") }),
                Code::Internal,
                "remove /var/lib/rind/snapshots/ab: busy",
            ),
        ]);
    }

    #[test]
    fn statuses_carry_each_cause_once() {
        let shim = ShimError::Connect { address: "/run/rind/s/ab.sock".into(), source: io("connection refused") };
        let store = StoreError::Json { what: "container ab", source: serde_json::from_str::<u8>("x").unwrap_err() };
        assert_maps(vec![
            (container_status(ContainerError::Shim(shim)), Code::Internal, "connect to shim /run/rind/s/ab.sock: connection refused"),
            (internal(store), Code::Internal, "metadata store: bad JSON in container ab: expected value at line 1 column 1"),
        ]);
    }
}
