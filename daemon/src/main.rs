//! rindd: the daemon. Wires the stores, services and API together, makes
//! its state agree with what the shims report, then serves.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Parser;
use rind_api::v1::rind_server::RindServer;
use rindd::config::Config;
use rindd::services::containers::{Containers, Paths};
use rindd::shims::ShimBinary;

#[derive(Parser, Debug)]
#[command(name = "rindd", version, about = "The rind daemon")]
struct Args {
    /// Configuration file
    #[arg(long)]
    config: Option<PathBuf>,
    /// Persistent state: metadata, content, snapshots [default: /var/lib/rind]
    #[arg(long)]
    root: Option<PathBuf>,
    /// Volatile state: bundles, sockets [default: /run/rind]
    #[arg(long)]
    state: Option<PathBuf>,
    /// The API socket [default: <state>/rind.sock]
    #[arg(long)]
    socket: Option<PathBuf>,
    /// The shim binary [default: containerd-shim-rind-v2 beside rindd, else on PATH]
    #[arg(long)]
    shim: Option<PathBuf>,
    /// The OCI runtime the shims run [default: rind-runtime]
    #[arg(long)]
    runtime: Option<String>,
    #[arg(long)]
    debug: bool,
}

/// A binary beside our own, else the bare name for PATH.
fn beside_us(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = Config::load(args.config.as_deref().unwrap_or(Path::new(rindd::config::DEFAULT_PATH)), args.config.is_some())?;
    let debug = args.debug || file.debug.unwrap_or(false);
    tracing_subscriber::fmt()
        .with_max_level(if debug { tracing::Level::DEBUG } else { tracing::Level::INFO })
        .with_writer(std::io::stderr)
        .init();
    let root = args.root.or(file.root).unwrap_or_else(|| "/var/lib/rind".into());
    let state = args.state.or(file.state).unwrap_or_else(|| "/run/rind".into());
    let socket = args.socket.or(file.socket).unwrap_or_else(|| state.join("rind.sock"));
    let shim_path = args.shim.or(file.shim).unwrap_or_else(|| beside_us("containerd-shim-rind-v2"));
    let runtime = args.runtime.or(file.runtime).or_else(|| {
        let r = beside_us("rind-runtime");
        r.is_absolute().then(|| r.display().to_string())
    });
    // Before anything else touches them: a second rindd on either dir stops
    // here. Held until we exit.
    let _locks = rindd::dirs::prepare(&root, &state)?;
    let content = Arc::new(rindd::content::ContentStore::open(&root.join("content")).context("content store")?);
    let store = Arc::new(Mutex::new(rindd::store::Store::open(&root.join("meta.db")).context("metadata store")?));
    // No load runs yet: whatever a load left (a rindd killed mid-load) goes.
    let cleaned = rindd::services::ingest::clean_at_start(&root, &content, &store.lock().expect("store lock")).context("clean ingest")?;
    if cleaned != rindd::services::ingest::Cleaned::default() {
        tracing::info!(
            partial = cleaned.partial,
            blobs = cleaned.collected.blobs,
            snapshots = cleaned.collected.snapshots,
            "cleaned up after an interrupted load"
        );
    }
    let events_sock = state.join("events.sock");
    let runtime_name = runtime.clone().unwrap_or_else(|| "rind-runtime".into());
    let shim = Arc::new(ShimBinary { path: shim_path, events: events_sock.clone(), runtime, state: state.clone() });
    let paths = Paths { root: root.clone(), state: state.clone() };
    let limits = rindd::images::Limits {
        max_layer_size: file.max_layer_size.map_or(rindd::images::Limits::DEFAULT_MAX_LAYER_SIZE, |s| s.0),
        ..Default::default()
    };
    // TLS to registries: rustls with ring, chosen once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("tokio runtime")?;
    rt.block_on(async {
        let (containers, kicks) = Containers::new(paths, store.clone(), content.clone(), shim);
        if file.bridge.as_deref() != Some("none") {
            let dirs = file
                .cni_plugin_dirs
                .clone()
                .unwrap_or_else(|| rindd::network::DEFAULT_PLUGIN_DIRS.iter().map(std::path::PathBuf::from).collect());
            let subnet = file.bridge_subnet.as_deref().unwrap_or(rindd::network::DEFAULT_SUBNET);
            let nets = rindd::network::Networks::open(&root, &state, dirs, subnet).context("networks")?;
            let _ = containers.networks.set(Arc::new(nets));
        }
        // Events first: shims that exited while we were down deliver their TaskExit now.
        let _events = rindd::events::serve(&events_sock, containers.clone()).await?;
        let t0 = std::time::Instant::now();
        containers.recover().await.context("reconcile containers")?;
        tracing::info!(containers = containers.list().map(|l| l.len()).unwrap_or(0), ms = t0.elapsed().as_millis() as u64, "reconciled");
        tokio::spawn(containers.clone().reconcile_loop(kicks));
        if let Some(parent) = socket.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).with_context(|| format!("listen on {}", socket.display()))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660)).context("socket permissions")?;
        tracing::info!(socket = %socket.display(), "serving");
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        let hosts = Arc::new(rindd::registry::hosts::Hosts::new(
            file.registries.clone(),
            file.certs_dir.clone(),
            std::time::Duration::from_secs(file.registry_timeout.unwrap_or(60).max(1)),
        ));
        let puller = Arc::new(rindd::registry::pull::Puller::new(
            root.clone(),
            content.clone(),
            store.clone(),
            hosts,
            limits,
            file.max_concurrent_downloads.unwrap_or(3),
        ));
        let api = rindd::api::rind::RindApi { root: root.clone(), content, store, containers, runtime: runtime_name, limits, puller };
        // Containers keep running: their shims own them, not us.
        tonic::transport::Server::builder()
            .add_service(RindServer::new(api))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .context("serve")?;
        let _ = std::fs::remove_file(&socket);
        anyhow::Ok(())
    })
}
