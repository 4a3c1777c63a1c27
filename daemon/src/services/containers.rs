//! Containers: what the user asks for goes to the database first; each
//! running container is owned by its shim, which rindd drives over ttrpc.
//!
//! ```text
//! --root/containers/<id>/   upper/ work/ <id>.log hostname hosts resolv.conf
//! --state/containers/<id>/  the bundle: config.json rootfs/ address exit init-stdin
//! ```
//! One tokio mutex per container serialises the operations that change its
//! actual state (start, exit, remove); waiting for an exit never holds it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::MessageField;
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{MountBuilder, Spec};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::restart::{self, Policy};
use super::spec::{self, RunOptions, SpecError};
use crate::content::{ContentStore, Digest};
use crate::shims::{Shim, ShimBinary, ShimError};
use crate::snapshots::{chain_ids, Snapshots};
use crate::store::{ContainerRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("no such image: {0} (load it with `rind load -i FILE`)")]
    NoImage(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{0}")]
    Restart(#[from] restart::RestartError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Shim(#[from] ShimError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image config {digest}: {message}")]
    ImageConfig { digest: String, message: String },
}

type Result<T> = std::result::Result<T, ContainerError>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ContainerError + 'a {
    move |source| ContainerError::Io { op, path: path.to_path_buf(), source }
}

/// The create request as rindd keeps it, plus what it resolved from the image.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub image: String,
    pub image_id: String,
    /// Snapshot chain ids, bottom layer first.
    pub chain: Vec<String>,
    /// What shapes the OCI spec.
    #[serde(flatten)]
    pub run: RunOptions,
    pub open_stdin: bool,
    pub security_opt: Vec<String>,
    pub restart: String,
    pub auto_remove: bool,
    pub stop_signal: String,
    pub stop_timeout: Option<i64>,
}

impl Config {
    pub fn policy(&self) -> Policy {
        Policy::parse(&self.restart).unwrap_or(Policy::No)
    }

    fn stop_timeout(&self) -> Duration {
        Duration::from_secs(self.stop_timeout.unwrap_or(10).max(0) as u64)
    }
}

/// An event, as `rind events` shows it.
#[derive(Debug, Clone)]
pub struct Event {
    pub time: SystemTime,
    pub id: String,
    pub name: String,
    pub action: &'static str,
    pub exit_code: Option<i64>,
}

/// Where things go on disk.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub state: PathBuf,
}

impl Paths {
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.state.join("containers").join(id)
    }
    pub fn data(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }
    pub fn log(&self, id: &str) -> PathBuf {
        self.data(id).join(format!("{id}.log"))
    }
}

/// A request to the reconcile loop to look at one container.
#[derive(Debug, Clone)]
pub struct Kick {
    pub id: String,
    pub daemon_start: bool,
}

pub struct Containers {
    pub paths: Paths,
    pub store: Arc<Mutex<Store>>,
    pub content: Arc<ContentStore>,
    pub shim: ShimBinary,
    shims: Mutex<HashMap<String, Shim>>,
    /// Addresses of shims told to shut down, by container.
    retired: Mutex<HashMap<String, String>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub events: broadcast::Sender<Event>,
    kick: mpsc::UnboundedSender<Kick>,
}

pub fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // getrandom(2) cannot fail for small requests once the pool is ready.
    // SAFETY: buf is a valid, writable buffer of buf.len() bytes.
    unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_name() -> String {
    const LEFT: &[&str] = &["brave", "calm", "eager", "fond", "keen", "lucid", "quiet", "sharp", "swift", "witty"];
    const RIGHT: &[&str] = &["curie", "dijkstra", "hopper", "knuth", "lovelace", "noether", "ritchie", "thompson", "turing", "wirth"];
    let r = random_hex(4);
    let n = u32::from_str_radix(&r, 16).unwrap_or(0) as usize;
    format!("{}_{}_{}", LEFT[n % LEFT.len()], RIGHT[(n / 10) % RIGHT.len()], n % 1000)
}

/// A signal by name (TERM, SIGTERM, RTMIN+1) or number.
pub fn parse_signal(s: &str) -> Result<u32> {
    rind_common::signal::parse_signal(s).map(|n| n as u32).map_err(|e| ContainerError::Invalid(e.to_string()))
}

/// Docker's "Up 3 seconds" / "Exited (0) 2 minutes ago".
pub fn status_text(row: &ContainerRow, now: SystemTime) -> String {
    let ago = |t: &Option<String>| {
        let d = t.as_deref().and_then(parse_time).and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
        human_duration(d)
    };
    match row.status.as_str() {
        "running" => format!("Up {}", ago(&row.started_at)),
        "paused" => format!("Up {} (Paused)", ago(&row.started_at)),
        "exited" => format!("Exited ({}) {} ago", row.exit_code.unwrap_or(-1), ago(&row.finished_at)),
        "dead" => format!("Dead ({})", row.exit_reason.clone().unwrap_or_default()),
        "restarting" => format!("Restarting ({}) {} ago", row.exit_code.unwrap_or(-1), ago(&row.finished_at)),
        _ => "Created".into(),
    }
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

fn is_live(status: &str) -> bool {
    matches!(status, "running" | "paused")
}

impl Containers {
    pub fn new(
        paths: Paths,
        store: Arc<Mutex<Store>>,
        content: Arc<ContentStore>,
        shim: ShimBinary,
    ) -> (Arc<Containers>, mpsc::UnboundedReceiver<Kick>) {
        let (kick, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        let c = Containers {
            paths,
            store,
            content,
            shim,
            shims: Mutex::new(HashMap::new()),
            retired: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            events,
            kick,
        };
        (Arc::new(c), rx)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().expect("store lock")
    }

    pub fn get(&self, id_or_name: &str) -> Result<ContainerRow> {
        let name = id_or_name.strip_prefix('/').unwrap_or(id_or_name);
        let exact = self.db().container(name)?;
        if let Some(r) = exact {
            return Ok(r);
        }
        // A unique id prefix, as docker accepts.
        let rows: Vec<ContainerRow> = self.db().containers()?.into_iter().filter(|r| !name.is_empty() && r.id.starts_with(name)).collect();
        match rows.len() {
            1 => Ok(rows.into_iter().next().expect("one row")),
            0 => Err(ContainerError::NotFound(id_or_name.into())),
            _ => Err(ContainerError::Invalid(format!("{id_or_name} matches more than one container: give more of the id"))),
        }
    }

    pub fn list(&self) -> Result<Vec<ContainerRow>> {
        Ok(self.db().containers()?)
    }

    fn config(row: &ContainerRow) -> Config {
        serde_json::from_str(&row.config).unwrap_or_default()
    }

    fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().expect("locks").entry(id.to_string()).or_default().clone()
    }

    fn emit(&self, row: &ContainerRow, action: &'static str, exit_code: Option<i64>) {
        let _ = self.events.send(Event { time: SystemTime::now(), id: row.id.clone(), name: row.name.clone(), action, exit_code });
    }

    pub fn kick(&self, id: &str, daemon_start: bool) {
        let _ = self.kick.send(Kick { id: id.to_string(), daemon_start });
    }

    // ---- create ----

    /// The image's stored name ("busybox" is "busybox:latest"), config digest,
    /// config and snapshot chain.
    fn image_config(&self, image: &str) -> Result<(String, String, ImageConfiguration, Vec<String>)> {
        let exact = self.db().image(image)?;
        // "busybox" means "busybox:latest", as docker reads it.
        let row = match exact {
            Some(r) => Some(r),
            None if !image.contains(':') => self.db().image(&format!("{image}:latest"))?,
            None => None,
        };
        let row = row.ok_or_else(|| ContainerError::NoImage(image.into()))?;
        let digest =
            Digest::parse(&row.config).map_err(|e| ContainerError::ImageConfig { digest: row.config.clone(), message: e.to_string() })?;
        let data =
            self.content.read(&digest).map_err(|e| ContainerError::ImageConfig { digest: row.config.clone(), message: e.to_string() })?;
        let cfg: ImageConfiguration = serde_json::from_slice(&data)
            .map_err(|e| ContainerError::ImageConfig { digest: row.config.clone(), message: e.to_string() })?;
        let diff_ids = cfg
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| Digest::parse(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ContainerError::ImageConfig { digest: row.config.clone(), message: e.to_string() })?;
        let chain = chain_ids(&diff_ids).iter().map(|d| d.as_str().to_string()).collect();
        Ok((row.name, row.config, cfg, chain))
    }

    /// --security-opt: what rind knows of it.
    fn security_opts(c: &mut Config) -> Result<()> {
        for o in &c.security_opt {
            match o.as_str() {
                "seccomp=unconfined" | "seccomp:unconfined" => c.run.seccomp_unconfined = true,
                "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {}
                other => {
                    return Err(ContainerError::Invalid(format!(
                        "invalid --security-opt {other:?}: rind knows seccomp=unconfined and no-new-privileges"
                    )))
                }
            }
        }
        Ok(())
    }

    /// A file of the image, from its top layer down ("" if absent or deleted).
    fn image_file(&self, chain: &[String], path: &str) -> String {
        use std::os::unix::fs::FileTypeExt;
        let snaps = Snapshots::new(&self.paths.root);
        for d in chain.iter().rev() {
            let Ok(d) = Digest::parse(d) else { continue };
            let p = snaps.dir(&d).join(path.trim_start_matches('/'));
            match std::fs::symlink_metadata(&p) {
                // A whiteout: deleted in this layer.
                Ok(m) if m.file_type().is_char_device() => return String::new(),
                Ok(m) if m.is_file() => return std::fs::read_to_string(&p).unwrap_or_default(),
                _ => {}
            }
        }
        String::new()
    }

    /// "name[:group]" → "uid:gid" through the image's passwd and group files.
    fn resolve_user(&self, chain: &[String], user: &str) -> Result<String> {
        super::users::resolve(user, &self.image_file(chain, "etc/passwd"), &self.image_file(chain, "etc/group"))
            .map_err(|e| ContainerError::Invalid(e.to_string()))
    }

    /// /etc/hostname, /etc/hosts and /etc/resolv.conf for the container.
    fn write_etc(&self, dir: &Path, c: &Config) -> Result<Vec<oci_spec::runtime::Mount>> {
        let hostname = c.run.hostname.clone().unwrap_or_default();
        let hosts = if c.run.network == "host" {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t{hostname}\n")
        };
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let files = [("hostname", format!("{hostname}\n")), ("hosts", hosts), ("resolv.conf", resolv)];
        let mut mounts = Vec::new();
        for (name, data) in files {
            let p = dir.join(name);
            std::fs::write(&p, data).map_err(io_err("write", &p))?;
            let m = MountBuilder::default()
                .destination(format!("/etc/{name}"))
                .typ("bind")
                .source(&p)
                .options(vec!["rbind".to_string(), "rprivate".to_string(), if c.run.read_only { "ro" } else { "rw" }.to_string()])
                .build()
                .map_err(SpecError::from)?;
            mounts.push(m);
        }
        Ok(mounts)
    }

    pub fn create(&self, name: &str, mut c: Config) -> Result<ContainerRow> {
        if !name.is_empty() && !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)) {
            return Err(ContainerError::Invalid(format!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")));
        }
        if !name.is_empty() && self.db().container(name)?.is_some() {
            return Err(ContainerError::Conflict(format!(
                "the container name {name:?} is already in use: remove or rename that container"
            )));
        }
        Policy::parse(&c.restart)?;
        if c.auto_remove && c.policy() != Policy::No {
            return Err(ContainerError::Invalid("--restart and --rm conflict: a container cannot restart and be removed on exit".into()));
        }
        if !c.stop_signal.is_empty() {
            parse_signal(&c.stop_signal)?;
        }
        let (image_name, image_id, image_cfg, chain) = self.image_config(&c.image)?;
        c.image = image_name;
        for d in &chain {
            let dir = Snapshots::new(&self.paths.root).dir(&Digest::parse(d).map_err(|e| ContainerError::Invalid(e.to_string()))?);
            if !dir.is_dir() {
                return Err(ContainerError::ImageConfig {
                    digest: image_id,
                    message: format!("layer snapshot {} is missing: load the image again", dir.display()),
                });
            }
        }
        let id = random_hex(32);
        if c.run.hostname.as_deref().unwrap_or("").is_empty() {
            c.run.hostname = Some(id[..12].to_string());
        }
        if c.stop_signal.is_empty() {
            c.stop_signal = image_cfg.config().as_ref().and_then(|x| x.stop_signal().clone()).unwrap_or_else(|| "SIGTERM".into());
        }
        (c.image_id, c.chain) = (image_id, chain);
        Self::security_opts(&mut c)?;
        // The image's labels, then the user's, as docker shows them.
        let mut labels = image_cfg.config().as_ref().and_then(|x| x.labels().clone()).unwrap_or_default();
        labels.extend(std::mem::take(&mut c.run.labels));
        c.run.labels = labels;
        let volumes: Vec<String> = image_cfg.config().as_ref().and_then(|x| x.volumes().clone()).unwrap_or_default();
        let mut opts = c.run.clone();
        let user = c.run.user.clone().or_else(|| image_cfg.config().as_ref().and_then(|x| x.user().clone())).filter(|u| !u.is_empty());
        if let Some(u) = user {
            opts.user = Some(self.resolve_user(&c.chain, &u)?);
        }
        let mut spec = spec::container_spec(&image_cfg, &opts)?;
        let data = self.paths.data(&id);
        let made = (|| -> Result<ContainerRow> {
            for d in [data.join("upper"), data.join("work")] {
                std::fs::create_dir_all(&d).map_err(io_err("create", &d))?;
            }
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            mounts.extend(self.write_etc(&data, &c)?);
            // The image's VOLUMEs not bound by -v: a directory of the container's
            // own, outside its overlay (gone with the container).
            for (i, v) in volumes.iter().filter(|v| !c.run.binds.iter().any(|(_, t, _)| t == *v)).enumerate() {
                let dir = data.join("volumes").join(i.to_string());
                std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
                let m = MountBuilder::default()
                    .destination(v)
                    .typ("bind")
                    .source(&dir)
                    .options(vec!["rbind".to_string(), "rw".to_string()])
                    .build()
                    .map_err(SpecError::from)?;
                mounts.push(m);
            }
            spec.set_mounts(Some(mounts));
            let row = ContainerRow {
                id: id.clone(),
                name: if name.is_empty() { random_name() } else { name.to_string() },
                image: c.image.clone(),
                spec: serde_json::to_string(&spec).expect("spec serializes"),
                desired: "stopped".into(),
                restart_policy: c.restart.clone(),
                bundle: self.paths.bundle(&id).display().to_string(),
                shim_address: None,
                created: now(),
                exit_code: None,
                finished_at: None,
                exit_reason: None,
                config: serde_json::to_string(&c).expect("config serializes"),
                status: "created".into(),
                pid: 0,
                started_at: None,
                restart_count: 0,
            };
            self.db().insert_container(&row)?;
            Ok(row)
        })();
        match made {
            Ok(row) => {
                self.emit(&row, "create", None);
                Ok(row)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&data);
                Err(e)
            }
        }
    }

    // ---- start ----

    pub async fn start(&self, id: &str) -> Result<ContainerRow> {
        let row = self.get(id)?;
        let lock = self.lock_of(&row.id);
        let _g = lock.lock().await;
        let row = self.get(&row.id)?;
        if is_live(&row.status) {
            return Ok(row);
        }
        self.db().update_container(&row.id, |r| r.desired = "running".into())?;
        self.start_locked(row, false).await
    }

    /// Starts a stopped container: bundle, shim, Create, Start.
    async fn start_locked(&self, row: ContainerRow, restarting: bool) -> Result<ContainerRow> {
        let c = Self::config(&row);
        let bundle = self.paths.bundle(&row.id);
        let data = self.paths.data(&row.id);
        let _ = std::fs::remove_dir_all(&bundle);
        std::fs::create_dir_all(bundle.join("rootfs")).map_err(io_err("create", &bundle))?;
        let cfg = bundle.join("config.json");
        std::fs::write(&cfg, &row.spec).map_err(io_err("write", &cfg))?;
        let stdin = if c.open_stdin {
            let p = bundle.join("init-stdin");
            nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| io_err("create fifo", &p)(e.into()))?;
            p.display().to_string()
        } else {
            String::new()
        };
        let chain =
            c.chain.iter().map(|d| Digest::parse(d).map_err(|e| ContainerError::Invalid(e.to_string()))).collect::<Result<Vec<_>>>()?;
        let options = Snapshots::new(&self.paths.root).overlay_options(&chain, &data.join("upper"), &data.join("work"));
        let log = format!("file://{}?format=cri", self.paths.log(&row.id).display());
        let req = api::CreateTaskRequest {
            id: row.id.clone(),
            bundle: bundle.display().to_string(),
            rootfs: vec![containerd_shim_protos::types::mount::Mount {
                type_: "overlay".into(),
                source: "overlay".into(),
                options: options.split(',').map(String::from).collect(),
                ..Default::default()
            }],
            terminal: c.run.tty,
            stdin,
            stdout: log.clone(),
            stderr: if c.run.tty { String::new() } else { log },
            ..Default::default()
        };
        // The previous shim of this container may still be on its way out,
        // listening on the socket a new one would use: let it go first.
        let old = self.retired.lock().expect("retired").remove(&row.id);
        if let Some(path) = old.as_deref().and_then(|a| a.strip_prefix("unix://")) {
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while std::os::unix::net::UnixStream::connect(path).is_ok() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let t0 = std::time::Instant::now();
        let address = self.shim.start(&row.id, &bundle).await?;
        tracing::debug!(id = %row.id, ms = t0.elapsed().as_secs_f64() * 1000.0, "shim started");
        let started = async {
            let shim = Shim::connect(&address).await?;
            self.shims.lock().expect("shims").insert(row.id.clone(), shim.clone());
            self.db().update_container(&row.id, |r| r.shim_address = Some(address.clone()))?;
            let pid = shim.create(req).await?;
            tracing::debug!(id = %row.id, ms = t0.elapsed().as_secs_f64() * 1000.0, "task created");
            shim.start(&row.id, "").await?;
            tracing::debug!(id = %row.id, ms = t0.elapsed().as_secs_f64() * 1000.0, "task started");
            Ok::<u32, ContainerError>(pid)
        }
        .await;
        match started {
            Ok(pid) => {
                let row = self.db().update_container(&row.id, |r| {
                    r.status = "running".into();
                    r.pid = pid as i64;
                    r.started_at = Some(now());
                    r.exit_code = None;
                    r.exit_reason = None;
                    r.finished_at = None;
                    if restarting {
                        r.restart_count += 1;
                    }
                })?;
                tracing::info!(id = %row.id, name = %row.name, pid, "container started");
                self.emit(&row, "start", None);
                Ok(row)
            }
            Err(e) => {
                self.teardown(&row.id).await;
                // Docker keeps the container, with the error and 127/126/128 as its exit code.
                let msg = e.to_string();
                let code = start_error_code(&msg);
                let _ = self.db().update_container(&row.id, |r| {
                    r.status = if restarting { "exited".into() } else { "created".into() };
                    r.exit_code = Some(code);
                    r.exit_reason = Some(msg);
                    r.finished_at = Some(now());
                    r.shim_address = None;
                });
                Err(e)
            }
        }
    }

    /// Deletes the task and stops the shim (best effort: each step is
    /// retried by the next reconcile), then removes the bundle.
    async fn teardown(&self, id: &str) {
        let bundle = self.paths.bundle(id);
        let shim = self.shims.lock().expect("shims").remove(id);
        let address = self.db().container(id).ok().flatten().and_then(|r| r.shim_address);
        let shim = match shim {
            Some(s) => Some(s),
            None => match address {
                Some(a) => tokio::time::timeout(Duration::from_secs(1), Shim::connect(&a)).await.ok().and_then(|r| r.ok()),
                None => None,
            },
        };
        let mut clean = false;
        if let Some(s) = shim {
            match s.delete(id, "").await {
                Ok(_) => clean = true,
                Err(e) if e.is_not_found() => clean = true,
                Err(e) => tracing::warn!(id, error = %e, "delete task"),
            }
            if let Err(e) = s.shutdown(id).await {
                tracing::debug!(id, error = %e, "shutdown shim");
            }
            self.retired.lock().expect("retired").insert(id.to_string(), s.address.clone());
        }
        if !clean && bundle.is_dir() {
            // The shim is gone: its `delete` cleans runtime state and mounts.
            if let Err(e) = self.shim.delete(id, &bundle).await {
                tracing::warn!(id, error = %e, "shim delete");
            }
        }
        let _ = nix::mount::umount2(&bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        if let Err(e) = std::fs::remove_dir_all(&bundle) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(id, error = %e, path = %bundle.display(), "remove bundle");
            }
        }
        let _ = self.db().update_container(id, |r| r.shim_address = None);
    }

    // ---- exits ----

    /// The shim reported the init's exit (TaskExit, or State at recovery).
    pub async fn task_exited(&self, id: &str, pid: u32, status: u32, exited_at: SystemTime) {
        let lock = self.lock_of(id);
        let _g = lock.lock().await;
        let Ok(Some(row)) = self.db().container(id) else { return };
        if !is_live(&row.status) || (pid != 0 && row.pid != pid as i64) {
            // An old exit (a previous run), or already recorded.
            return;
        }
        let finished = humantime::format_rfc3339_nanos(exited_at).to_string();
        let row = match self.db().update_container(id, |r| {
            r.status = "exited".into();
            r.exit_code = Some(status as i64);
            r.finished_at = Some(finished);
            r.pid = 0;
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(id, error = %e, "record exit");
                return;
            }
        };
        tracing::info!(id, name = %row.name, status, "container exited");
        // Waiters learn at once (the log is complete: the shim drains it
        // before it reports); the loop acts only once the shim is gone.
        self.emit(&row, "die", Some(status as i64));
        self.teardown(id).await;
        self.kick(id, false);
    }

    pub fn oom(&self, id: &str) {
        if let Ok(Some(row)) = self.db().container(id) {
            self.emit(&row, "oom", None);
        }
    }

    /// Marks a container whose shim vanished with no exit on disk.
    async fn lost(&self, row: &ContainerRow) {
        let row = match self.db().update_container(&row.id, |r| {
            r.status = "dead".into();
            r.exit_code = None;
            r.exit_reason = Some("exit status unknown (shim lost)".into());
            r.finished_at = Some(now());
            r.pid = 0;
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(id = %row.id, error = %e, "record lost container");
                return;
            }
        };
        tracing::warn!(id = %row.id, name = %row.name, "shim lost: exit status unknown");
        self.teardown(&row.id).await;
        self.emit(&row, "die", None);
    }

    // ---- recovery ----

    /// At daemon start, before serving: find out what every shim says and
    /// clean what has no owner. Then every container goes to the loop.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        let rows = self.list()?;
        let mut set = tokio::task::JoinSet::new();
        for row in rows.clone() {
            let me = self.clone();
            set.spawn(async move { me.recover_one(row).await });
        }
        while set.join_next().await.is_some() {}
        // Bundles with no row: a create or remove cut short.
        let dir = self.paths.state.join("containers");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !rows.iter().any(|r| r.id == id) {
                    tracing::info!(id, "cleaning an orphaned bundle");
                    self.teardown(&id).await;
                }
            }
        }
        for row in self.list()? {
            self.kick(&row.id, true);
        }
        Ok(())
    }

    async fn recover_one(&self, row: ContainerRow) {
        let bundle = self.paths.bundle(&row.id);
        if !is_live(&row.status) {
            if bundle.exists() || row.shim_address.is_some() {
                self.teardown(&row.id).await;
            }
            return;
        }
        let shim = match &row.shim_address {
            Some(a) => tokio::time::timeout(Duration::from_secs(2), Shim::connect(a)).await.ok().and_then(|r| r.ok()),
            None => None,
        };
        if let Some(shim) = shim {
            match shim.state(&row.id, "").await {
                Ok(st) => {
                    use containerd_shim_protos::types::task::Status;
                    match st.status.enum_value_or_default() {
                        Status::RUNNING | Status::PAUSED | Status::PAUSING => {
                            let status = if st.status.enum_value_or_default() == Status::RUNNING { "running" } else { "paused" };
                            self.shims.lock().expect("shims").insert(row.id.clone(), shim);
                            let _ = self.db().update_container(&row.id, |r| r.status = status.into());
                            return;
                        }
                        Status::STOPPED => {
                            let at = st.exited_at.as_ref().map(crate::shims::to_system_time).unwrap_or_else(SystemTime::now);
                            self.shims.lock().expect("shims").insert(row.id.clone(), shim);
                            self.task_exited(&row.id, st.pid, st.exit_status, at).await;
                            return;
                        }
                        _ => {}
                    }
                }
                Err(e) => tracing::warn!(id = %row.id, error = %e, "shim state"),
            }
        }
        // The shim is gone. Its exit file, if it wrote one, is the truth.
        #[derive(Deserialize)]
        struct ExitFile {
            status: u32,
            exited_at: String,
        }
        let exit: Option<ExitFile> = std::fs::read(bundle.join("exit")).ok().and_then(|d| serde_json::from_slice(&d).ok());
        match exit {
            Some(e) => {
                let at = parse_time(&e.exited_at).unwrap_or_else(SystemTime::now);
                self.task_exited(&row.id, 0, e.status, at).await;
            }
            None => self.lost(&row).await,
        }
    }

    // ---- the reconcile loop ----

    /// The one loop that compares desired with actual state and acts: on
    /// daemon start for every container, then after every exit.
    pub async fn reconcile_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Kick>) {
        while let Some(k) = rx.recv().await {
            let me = self.clone();
            tokio::spawn(async move { me.reconcile(k).await });
        }
    }

    async fn reconcile(self: Arc<Self>, k: Kick) {
        let Ok(Some(row)) = self.db().container(&k.id) else { return };
        if is_live(&row.status) || row.status == "created" {
            return;
        }
        let c = Self::config(&row);
        let policy = c.policy();
        let stopped = restart::Stopped {
            by_user: row.desired == "stopped",
            exit_code: row.exit_code,
            restart_count: row.restart_count as u32,
            daemon_start: k.daemon_start,
        };
        if !restart::should_restart(policy, stopped) {
            if c.auto_remove {
                match self.remove(&row.id, false).await {
                    // Another kick for the same exit got there first.
                    Ok(()) | Err(ContainerError::NotFound(_)) => {}
                    Err(e) => tracing::warn!(id = %row.id, error = %e, "auto-remove"),
                }
            }
            return;
        }
        // A container that ran for a while starts its back-off afresh.
        let ran = match (row.started_at.as_deref().and_then(parse_time), row.finished_at.as_deref().and_then(parse_time)) {
            (Some(s), Some(f)) => f.duration_since(s).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let count = if ran >= restart::RESET_AFTER { 0 } else { row.restart_count as u32 };
        let delay = if k.daemon_start { Duration::ZERO } else { restart::backoff(count) };
        let lock = self.lock_of(&row.id);
        {
            // Claim this exit (another kick may carry the same one), and show
            // the back-off as docker does: "restarting".
            let _g = lock.lock().await;
            let Ok(Some(now_row)) = self.db().container(&row.id) else { return };
            if now_row.status != row.status || now_row.finished_at != row.finished_at {
                return;
            }
            if self.db().update_container(&row.id, |r| r.status = "restarting".into()).is_err() {
                return;
            }
        }
        tracing::info!(id = %row.id, name = %row.name, policy = policy.name(), delay_ms = delay.as_millis() as u64, "restarting");
        tokio::time::sleep(delay).await;
        let _g = lock.lock().await;
        // Anything the user did meanwhile wins: a start, a removal, a stop.
        let Ok(Some(now_row)) = self.db().container(&row.id) else { return };
        if now_row.status != "restarting" || now_row.finished_at != row.finished_at {
            return;
        }
        if now_row.desired == "stopped" && !k.daemon_start {
            let was = if row.status == "restarting" { "exited".to_string() } else { row.status.clone() };
            let _ = self.db().update_container(&row.id, |r| r.status = was);
            return;
        }
        if count == 0 && row.restart_count > 0 {
            let _ = self.db().update_container(&row.id, |r| r.restart_count = 0);
        }
        if k.daemon_start {
            let _ = self.db().update_container(&row.id, |r| r.desired = "running".into());
        }
        let latest = match self.db().container(&row.id) {
            Ok(Some(r)) => r,
            _ => return,
        };
        if let Err(e) = self.start_locked(latest, true).await {
            tracing::warn!(id = %row.id, error = %e, "restart failed");
            drop(_g);
            // Try again later, with a longer back-off.
            let _ = self.db().update_container(&row.id, |r| r.restart_count += 1);
            self.kick(&row.id, false);
        }
    }

    // ---- stop, kill, remove ----

    fn shim_of(&self, row: &ContainerRow) -> Result<Shim> {
        self.shims
            .lock()
            .expect("shims")
            .get(&row.id)
            .cloned()
            .ok_or_else(|| ContainerError::Conflict(format!("container {} is not running", row.name)))
    }

    /// Waits until the container is not running; false on timeout.
    pub async fn wait_stopped(&self, id: &str, timeout: Option<Duration>) -> Result<ContainerRow> {
        let mut rx = self.events.subscribe();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let row = self.db().container(id)?.ok_or_else(|| ContainerError::NotFound(id.into()))?;
            if !is_live(&row.status) {
                return Ok(row);
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Err(ContainerError::Conflict(format!("container {} did not stop in time", row.name)));
            }
            // Events wake us early; the poll covers a lagged receiver.
            let _ = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
        }
    }

    /// Records that the user wants the container stopped. Under its lock: a
    /// restart the loop is making finishes first, and is then stopped.
    async fn want_stopped(&self, id: &str) -> Result<ContainerRow> {
        let lock = self.lock_of(id);
        let _g = lock.lock().await;
        Ok(self.db().update_container(id, |r| r.desired = "stopped".into())?)
    }

    pub async fn stop(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        let row = self.get(id)?;
        let row = self.want_stopped(&row.id).await?;
        if !is_live(&row.status) {
            return Ok(());
        }
        let c = Self::config(&row);
        let timeout = timeout.filter(|t| *t >= 0).map(|t| Duration::from_secs(t as u64)).unwrap_or_else(|| c.stop_timeout());
        let shim = self.shim_of(&row)?;
        let sig = parse_signal(&c.stop_signal).unwrap_or(libc::SIGTERM as u32);
        if row.status == "paused" {
            // A frozen process cannot act on a signal: kill it and thaw.
            let _ = shim.kill(&row.id, "", libc::SIGKILL as u32, true).await;
            let _ = shim.resume(&row.id).await;
        } else if let Err(e) = shim.kill(&row.id, "", sig, false).await {
            // It may have exited on its own meanwhile (its exit on the way
            // here): then it is stopped.
            if !e.is_not_found() && self.wait_stopped(&row.id, Some(Duration::from_secs(2))).await.is_err() {
                return Err(e.into());
            }
        }
        if self.wait_stopped(&row.id, Some(timeout)).await.is_err() {
            tracing::info!(id = %row.id, "stop timeout: killing");
            let _ = shim.kill(&row.id, "", libc::SIGKILL as u32, true).await;
            self.wait_stopped(&row.id, Some(Duration::from_secs(10))).await?;
        }
        self.emit(&row, "stop", None);
        Ok(())
    }

    pub async fn restart(&self, id: &str, timeout: Option<i64>) -> Result<()> {
        self.stop(id, timeout).await?;
        self.start(id).await?;
        Ok(())
    }

    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let row = self.get(id)?;
        if !is_live(&row.status) {
            return Err(ContainerError::Conflict(format!("cannot kill container {}: it is not running", row.name)));
        }
        let sig = if signal.is_empty() { libc::SIGKILL as u32 } else { parse_signal(signal)? };
        let c = Self::config(&row);
        // Like docker: killing with the stop signal or KILL is a stop by the user.
        if sig == libc::SIGKILL as u32 || parse_signal(&c.stop_signal).ok() == Some(sig) {
            self.want_stopped(&row.id).await?;
        }
        if let Err(e) = self.shim_of(&row)?.kill(&row.id, "", sig, false).await {
            if self.wait_stopped(&row.id, Some(Duration::from_millis(500))).await.is_ok() {
                return Err(ContainerError::Conflict(format!("cannot kill container {}: it is not running", row.name)));
            }
            return Err(e.into());
        }
        self.emit(&row, "kill", None);
        Ok(())
    }

    pub async fn remove(&self, id: &str, force: bool) -> Result<()> {
        let row = self.get(id)?;
        if is_live(&row.status) {
            if !force {
                return Err(ContainerError::Conflict(format!(
                    "cannot remove container {}: it is {}: stop it first, or use --force",
                    row.name, row.status
                )));
            }
            self.want_stopped(&row.id).await?;
            if let Ok(shim) = self.shim_of(&row) {
                let _ = shim.kill(&row.id, "", libc::SIGKILL as u32, true).await;
                if row.status == "paused" {
                    let _ = shim.resume(&row.id).await;
                }
            }
            if self.wait_stopped(&row.id, Some(Duration::from_secs(10))).await.is_err() {
                // Its shim does not answer: take it down regardless.
                self.lost(&row).await;
            }
        }
        let lock = self.lock_of(&row.id);
        let _g = lock.lock().await;
        self.teardown(&row.id).await;
        let data = self.paths.data(&row.id);
        if let Err(e) = std::fs::remove_dir_all(&data) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(io_err("remove", &data)(e));
            }
        }
        self.db().delete_container(&row.id)?;
        self.locks.lock().expect("locks").remove(&row.id);
        self.retired.lock().expect("retired").remove(&row.id);
        // Its image may have gone before it (rmi --force): its layers go now.
        let image_gone = self.db().image(&row.image)?.is_none();
        if image_gone {
            let store = self.db();
            if let Err(e) = super::images::collect_garbage(&self.paths.root, &self.content, &store) {
                tracing::warn!(id = %row.id, error = %e, "collect image garbage");
            }
        }
        self.emit(&row, "destroy", None);
        Ok(())
    }

    pub async fn pause(&self, id: &str, pause: bool) -> Result<()> {
        let row = self.get(id)?;
        let (from, to) = if pause { ("running", "paused") } else { ("paused", "running") };
        if row.status != from {
            return Err(ContainerError::Conflict(format!("container {} is {}, not {from}", row.name, row.status)));
        }
        let shim = self.shim_of(&row)?;
        if pause {
            shim.pause(&row.id).await?;
        } else {
            shim.resume(&row.id).await?;
        }
        let row = self.db().update_container(&row.id, |r| r.status = to.into())?;
        self.emit(&row, if pause { "pause" } else { "unpause" }, None);
        Ok(())
    }

    pub fn rename(&self, id: &str, name: &str) -> Result<()> {
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)) {
            return Err(ContainerError::Invalid(format!("invalid container name {name:?}")));
        }
        let row = self.get(id)?;
        let row = self.db().update_container(&row.id, |r| r.name = name.to_string()).map_err(|e| match e {
            StoreError::Exists(n) => ContainerError::Conflict(format!("the container name {n:?} is already in use")),
            e => e.into(),
        })?;
        self.emit(&row, "rename", None);
        Ok(())
    }

    pub async fn prune(&self) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        for row in self.list()? {
            if !is_live(&row.status) {
                self.remove(&row.id, false).await?;
                gone.push(row.id);
            }
        }
        Ok(gone)
    }

    pub fn shim_for(&self, id: &str) -> Result<(ContainerRow, Shim)> {
        let row = self.get(id)?;
        if !is_live(&row.status) {
            return Err(ContainerError::Conflict(format!("container {} is not running", row.name)));
        }
        let shim = self.shim_of(&row)?;
        Ok((row, shim))
    }

    // ---- exec ----

    /// The OCI process of an exec: the container's, with the exec's changes.
    pub fn exec_process(&self, row: &ContainerRow, p: &ExecRequest) -> Result<Vec<u8>> {
        let spec: Spec = serde_json::from_str(&row.spec).map_err(|e| ContainerError::Invalid(format!("stored spec: {e}")))?;
        let mut proc = spec.process().clone().ok_or_else(|| ContainerError::Invalid("stored spec has no process".into()))?;
        if p.args.is_empty() {
            return Err(ContainerError::Invalid("exec needs a command".into()));
        }
        proc.set_args(Some(p.args.clone()));
        proc.set_terminal(Some(p.tty));
        let env = spec::merge_env(proc.env().as_deref().unwrap_or(&[]), &p.env);
        proc.set_env(Some(env));
        if !p.workdir.is_empty() {
            proc.set_cwd(PathBuf::from(&p.workdir));
        }
        if !p.user.is_empty() {
            let (uid, gid) = spec::parse_user(&self.resolve_user(&Self::config(row).chain, &p.user)?)?;
            let mut u = proc.user().clone();
            u.set_uid(uid);
            u.set_gid(gid);
            proc.set_user(u);
        }
        Ok(serde_json::to_vec(&proc).expect("process serializes"))
    }

    pub fn exec_request(
        &self,
        row: &ContainerRow,
        exec_id: &str,
        p: &ExecRequest,
        io: (String, String, String),
    ) -> Result<api::ExecProcessRequest> {
        let spec = self.exec_process(row, p)?;
        Ok(api::ExecProcessRequest {
            id: row.id.clone(),
            exec_id: exec_id.to_string(),
            terminal: p.tty,
            stdin: io.0,
            stdout: io.1,
            stderr: io.2,
            spec: MessageField::some(containerd_shim_protos::protobuf::well_known_types::any::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: spec,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub fn new_exec_id() -> String {
        random_hex(8)
    }
}

/// What `rind exec` asks for.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub tty: bool,
}

/// Docker's exit code for a container that could not start.
fn start_error_code(msg: &str) -> i64 {
    rind_common::exit::start_failure_code(msg).unwrap_or(128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_texts() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut r = ContainerRow {
            id: "x".into(),
            name: "n".into(),
            image: "i".into(),
            spec: "{}".into(),
            desired: "running".into(),
            restart_policy: "no".into(),
            bundle: "b".into(),
            shim_address: None,
            created: "".into(),
            exit_code: Some(3),
            finished_at: Some(humantime::format_rfc3339(t0).to_string()),
            exit_reason: None,
            config: "{}".into(),
            status: "exited".into(),
            pid: 0,
            started_at: Some(humantime::format_rfc3339(t0).to_string()),
            restart_count: 0,
        };
        assert_eq!(status_text(&r, t0 + Duration::from_secs(5)), "Exited (3) 5 seconds ago");
        r.status = "running".into();
        assert_eq!(status_text(&r, t0 + Duration::from_secs(300)), "Up 5 minutes");
        r.status = "created".into();
        assert_eq!(status_text(&r, t0), "Created");
    }
}
