//! Containers: what the user asks for goes to the database first; each
//! running container is owned by its shim, which rindd drives over ttrpc
//! (through `ShimLauncher` and `TaskApi`; the tests' fake is `fake.rs`).
//!
//! ```text
//! --root/containers/<id>/   upper/ work/ <id>.log hostname hosts resolv.conf
//! --state/containers/<id>/  the bundle: config.json rootfs/ address exit init-stdin
//! ```
//! One tokio mutex per container serialises every verb (start, stop, kill,
//! pause, rename, exec, remove, an exit, a shim's death, recovery): each
//! checks the state, acts and records under it; waiting for an exit never
//! holds it. One file per verb below; the types and shared helpers are here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
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
use crate::shims::{ShimError, ShimLauncher, TaskApi};
use crate::snapshots::{chain_ids, Snapshots};
use crate::store::{ContainerRow, Desired, Status, Store, StoreError};

mod create;
mod exec;
mod exit;
#[cfg(test)]
mod fake;
mod kill;
mod monitor;
mod name;
mod network;
mod pause;
mod reconcile;
mod recover;
mod remove;
mod rename;
mod start;
mod stop;

pub use exec::ExecRequest;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("no such image: {0} (pull it with `rind pull`, or load it with `rind load -i FILE`)")]
    NoImage(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Shim(#[from] ShimError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image config {digest}: {message}")]
    ImageConfig { digest: String, message: String },
    /// The row's config column (JSON) does not parse: never read as defaults.
    #[error("metadata store: container {id} ({name}): bad config")]
    BadConfig {
        id: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
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
    /// The policy asked for at create; the row's `restart_policy` is the one
    /// the reconcile loop reads.
    pub restart: Policy,
    pub auto_remove: bool,
    pub stop_signal: String,
    pub stop_timeout: Option<i64>,
    /// -P: the image's EXPOSEd ports are added at create.
    pub publish_all: bool,
    /// Networks joined by `network connect` (the first is `run.network`).
    pub connected: Vec<network::Link>,
}

impl Config {
    /// The config a row keeps; one that does not parse is an error naming
    /// the container.
    pub fn of(row: &ContainerRow) -> Result<Config> {
        serde_json::from_str(&row.config).map_err(|source| ContainerError::BadConfig { id: row.id.clone(), name: row.name.clone(), source })
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
    /// This, for the tasks that watch shims (see `monitor.rs`).
    me: Weak<Containers>,
    pub paths: Paths,
    pub store: Arc<Mutex<Store>>,
    pub content: Arc<ContentStore>,
    /// Starts shims and connects to them (the shim binary, or a test's fake).
    launcher: Arc<dyn ShimLauncher>,
    /// The connected shims of live containers, by container id.
    shims: Mutex<HashMap<String, Arc<dyn TaskApi>>>,
    /// Addresses of shims told to shut down, by container.
    retired: Mutex<HashMap<String, String>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub events: broadcast::Sender<Event>,
    kick: mpsc::UnboundedSender<Kick>,
    /// Container networks (CNI); unset, only `none` and `host` exist.
    pub networks: std::sync::OnceLock<Arc<crate::network::Networks>>,
    /// Held by a create on a network from its checks until its row is in,
    /// and by `network rm`: no container is made on a network being
    /// removed, and no two take one host port.
    network_plan: Mutex<()>,
    /// Serialises the rewrites of user-defined networks' /etc/hosts files.
    hosts_refresh: Mutex<()>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // getrandom(2) cannot fail for small requests once the pool is ready.
    // SAFETY: buf is a valid, writable buffer of buf.len() bytes.
    unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_name() -> String {
    name_for(u32::from_str_radix(&random_hex(4), 16).unwrap_or(0) as usize)
}

/// The `n`th generated name (pure): a word from each list and a number,
/// each part from its own digits of `n`, so a million names differ.
fn name_for(n: usize) -> String {
    const LEFT: &[&str] = &["brave", "calm", "eager", "fond", "keen", "lucid", "quiet", "sharp", "swift", "witty"];
    const RIGHT: &[&str] = &["curie", "dijkstra", "hopper", "knuth", "lovelace", "noether", "ritchie", "thompson", "turing", "wirth"];
    let (l, r) = (LEFT.len(), RIGHT.len());
    format!("{}_{}_{}", LEFT[n % l], RIGHT[(n / l) % r], (n / (l * r)) % 10_000)
}

/// A signal by name (TERM, SIGTERM, RTMIN+1) or number.
pub fn parse_signal(s: &str) -> Result<u32> {
    rind_common::signal::parse_signal(s).map(|n| n as u32).map_err(|e| ContainerError::Invalid(e.to_string()))
}

/// Docker's "Up 3 seconds" / "Exited (0) 2 minutes ago".
pub fn status_text(row: &ContainerRow, now: SystemTime) -> String {
    let ago = |t: Option<SystemTime>| human_duration(t.and_then(|t| now.duration_since(t).ok()).unwrap_or_default());
    match row.status {
        Status::Running => format!("Up {}", ago(row.started_at)),
        Status::Paused => format!("Up {} (Paused)", ago(row.started_at)),
        Status::Exited => format!("Exited ({}) {} ago", row.exit_code.unwrap_or(-1), ago(row.finished_at)),
        Status::Dead => format!("Dead ({})", row.exit_reason.clone().unwrap_or_default()),
        Status::Restarting => format!("Restarting ({}) {} ago", row.exit_code.unwrap_or(-1), ago(row.finished_at)),
        Status::Created => "Created".into(),
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

impl Containers {
    pub fn new(
        paths: Paths,
        store: Arc<Mutex<Store>>,
        content: Arc<ContentStore>,
        launcher: Arc<dyn ShimLauncher>,
    ) -> (Arc<Containers>, mpsc::UnboundedReceiver<Kick>) {
        let (kick, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        let c = Arc::new_cyclic(|me| Containers {
            me: me.clone(),
            paths,
            store,
            content,
            launcher,
            shims: Mutex::new(HashMap::new()),
            retired: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            events,
            kick,
            networks: std::sync::OnceLock::new(),
            network_plan: Mutex::new(()),
            hosts_refresh: Mutex::new(()),
        });
        (c, rx)
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
        // A unique id prefix, as docker accepts; an unreadable row counts,
        // so a prefix of its id gives its error, not "no such container".
        let mut rows: Vec<_> = self
            .db()
            .scan_containers()?
            .into_iter()
            .filter(|r| {
                let id = match r {
                    Ok(r) => &r.id,
                    Err(StoreError::Corrupt { id, .. }) => id,
                    Err(_) => return false,
                };
                !name.is_empty() && id.starts_with(name)
            })
            .collect();
        match rows.len() {
            1 => Ok(rows.pop().expect("one row")?),
            0 => Err(ContainerError::NotFound(id_or_name.into())),
            _ => Err(ContainerError::Invalid(format!("{id_or_name} matches more than one container: give more of the id"))),
        }
    }

    /// Every container that reads, and the errors of those that do not
    /// (each naming its row).
    pub fn scan(&self) -> Result<(Vec<ContainerRow>, Vec<StoreError>)> {
        let (mut rows, mut bad) = (Vec::new(), Vec::new());
        for r in self.db().scan_containers()? {
            match r {
                Ok(r) => rows.push(r),
                Err(e) => bad.push(e),
            }
        }
        Ok((rows, bad))
    }

    /// Every container that reads. A row that does not is left out with a
    /// warning naming it, as dockerd skips a container it cannot load: one
    /// bad row must not stop `ps`, `info` or the restart of the others.
    pub fn list(&self) -> Result<Vec<ContainerRow>> {
        let (rows, bad) = self.scan()?;
        for e in &bad {
            tracing::warn!(error = %rind_common::error::Chain(e), "skipping an unreadable container");
        }
        Ok(rows)
    }

    fn config(row: &ContainerRow) -> Result<Config> {
        Config::of(row)
    }

    fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().expect("locks").entry(id.to_string()).or_default().clone()
    }

    /// The row of container `id` (an exact id) as it is now: what a verb
    /// reads again once it holds the container's lock.
    fn reread(&self, id: &str) -> Result<ContainerRow> {
        self.db().container(id)?.filter(|r| r.id == id).ok_or_else(|| ContainerError::NotFound(id.into()))
    }

    fn emit(&self, row: &ContainerRow, action: &'static str, exit_code: Option<i64>) {
        let _ = self.events.send(Event { time: SystemTime::now(), id: row.id.clone(), name: row.name.clone(), action, exit_code });
    }

    pub fn kick(&self, id: &str, daemon_start: bool) {
        let _ = self.kick.send(Kick { id: id.to_string(), daemon_start });
    }

    /// Deletes the task and stops the shim (best effort: each step is
    /// retried by the next reconcile), then removes the bundle. Returns the
    /// init's exit as the shim's Delete reported it or, with no shim to ask,
    /// the shim binary's `delete`. Under the container's lock.
    pub(super) async fn teardown(&self, id: &str) -> Option<(u32, Option<SystemTime>)> {
        let bundle = self.paths.bundle(id);
        let shim = self.shims.lock().expect("shims").remove(id);
        // The address recorded before the shim was started; for a bundle
        // with none (its row gone: a create or remove cut short), the
        // address a shim for it would have.
        let address = self.db().container(id).ok().flatten().and_then(|r| r.shim_address);
        let address = address.or_else(|| bundle.is_dir().then(|| self.launcher.address(id)));
        let shim = match shim {
            Some(s) => Some(s),
            None => match address {
                Some(a) => tokio::time::timeout(Duration::from_secs(1), self.launcher.connect(&a)).await.ok().and_then(|r| r.ok()),
                None => None,
            },
        };
        let mut clean = false;
        let mut exit = None;
        if let Some(s) = shim {
            match Self::delete_task(id, s.as_ref()).await {
                Ok(r) => {
                    clean = true;
                    exit = Some((r.exit_status, r.exited_at.as_ref().map(crate::shims::to_system_time)));
                }
                Err(e) if e.is_not_found() => clean = true,
                Err(e) => tracing::warn!(id, error = %rind_common::error::Chain(&e), "delete task"),
            }
            if let Err(e) = s.shutdown(id).await {
                tracing::debug!(id, error = %rind_common::error::Chain(&e), "shutdown shim");
            }
            self.retired.lock().expect("retired").insert(id.to_string(), s.address().to_string());
        }
        if !clean && bundle.is_dir() {
            // The shim is gone: its `delete` cleans runtime state and mounts.
            match self.launcher.delete(id, &bundle).await {
                Ok(e) => exit = Some(e),
                Err(e) => tracing::warn!(id, error = %rind_common::error::Chain(&e), "shim delete"),
            }
        }
        let _ = nix::mount::umount2(&bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        if let Err(e) = std::fs::remove_dir_all(&bundle) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(id, error = %rind_common::error::Chain(&e), path = %bundle.display(), "remove bundle");
            }
        }
        let _ = self.db().update_container(id, |r| r.shim_address = None);
        exit
    }

    /// Task.Delete of the init. A task still live is one rindd never recorded
    /// as running (a start cut short): it is killed first, or its shim would
    /// refuse both the Delete and the Shutdown and outlive the container.
    async fn delete_task(id: &str, shim: &dyn TaskApi) -> std::result::Result<api::DeleteResponse, ShimError> {
        match shim.delete(id, "").await {
            Err(e) if !e.is_not_found() => {
                tracing::debug!(id, error = %rind_common::error::Chain(&e), "delete task: killing it first");
                let _ = shim.kill(id, "", libc::SIGKILL as u32, true).await;
                let _ = tokio::time::timeout(Duration::from_secs(10), shim.wait(id, "")).await;
                shim.delete(id, "").await
            }
            r => r,
        }
    }

    /// Waits (2 s at most) until the last shim told to shut down for `id`
    /// has closed its socket.
    pub(super) async fn await_retired(&self, id: &str) {
        let old = self.retired.lock().expect("retired").remove(id);
        if let Some(path) = old.as_deref().and_then(|a| a.strip_prefix("unix://")) {
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while std::os::unix::net::UnixStream::connect(path).is_ok() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    pub(super) fn shim_of(&self, row: &ContainerRow) -> Result<Arc<dyn TaskApi>> {
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
            if !row.status.is_live() {
                return Ok(row);
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Err(ContainerError::Conflict(format!("container {} did not stop in time", row.name)));
            }
            // Events wake us early; the poll covers a lagged receiver.
            let _ = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
        }
    }

    pub fn shim_for(&self, id: &str) -> Result<(ContainerRow, Arc<dyn TaskApi>)> {
        let row = self.get(id)?;
        if !row.status.is_live() {
            return Err(ContainerError::Conflict(format!("container {} is not running", row.name)));
        }
        let shim = self.shim_of(&row)?;
        Ok((row, shim))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_names_differ_for_a_million_numbers() {
        let names: std::collections::HashSet<String> = (0..1_000_000).step_by(7).map(super::name_for).collect();
        assert_eq!(names.len(), (0..1_000_000).step_by(7).count());
        assert_eq!(super::name_for(0), "brave_curie_0");
    }

    use super::*;
    use crate::services::containers::fake;

    #[test]
    fn an_unreadable_row_is_an_error_naming_it_and_left_out_of_the_list() {
        let h = fake::Harness::new();
        h.insert("a1", Status::Exited, fake::config("always"), |_| {});
        h.insert("b1", Status::Running, fake::config("no"), |_| {});
        h.spoil("a1", "restart_policy", "sometimes");
        for key in ["a1", "a1-name", "a"] {
            let e = h.containers.get(key).expect_err("never read as restart policy no");
            let msg = rind_common::error::chain(&e);
            for part in ["a1 (a1-name)", "restart_policy", "\"sometimes\""] {
                assert!(msg.contains(part), "{key}: {msg}");
            }
        }
        assert_eq!(h.containers.get("b").expect("the other reads").id, "b1");
        let ids: Vec<String> = h.containers.list().expect("list").into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["b1"]);
        let (_, bad) = h.containers.scan().expect("scan");
        assert!(matches!(bad.as_slice(), [StoreError::Corrupt { id, column: "restart_policy", .. }] if id == "a1"), "{bad:?}");
    }

    #[test]
    fn a_config_that_does_not_parse_is_an_error_naming_the_container() {
        let h = fake::Harness::new();
        h.insert("a", Status::Exited, fake::config("no"), |r| r.config = r#"{"restart": 3}"#.into());
        let e = Config::of(&h.row("a").expect("row")).expect_err("never read as defaults");
        assert!(e.to_string().contains("container a (a-name): bad config"), "{e}");
    }

    #[test]
    fn status_texts() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut r = ContainerRow {
            id: "x".into(),
            name: "n".into(),
            image: "i".into(),
            spec: "{}".into(),
            desired: Desired::Running,
            restart_policy: Policy::No,
            bundle: "b".into(),
            shim_address: None,
            created: t0,
            exit_code: Some(3),
            finished_at: Some(t0),
            exit_reason: None,
            config: "{}".into(),
            status: Status::Exited,
            pid: 0,
            started_at: Some(t0),
            restart_count: 0,
            oom_killed: false,
        };
        assert_eq!(status_text(&r, t0 + Duration::from_secs(5)), "Exited (3) 5 seconds ago");
        r.status = Status::Running;
        assert_eq!(status_text(&r, t0 + Duration::from_secs(300)), "Up 5 minutes");
        r.status = Status::Created;
        assert_eq!(status_text(&r, t0), "Created");
    }
}
