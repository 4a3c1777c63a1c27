//! rindd: the daemon. Wires the stores, services and API together and
//! serves them on a unix socket.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Parser;
use rind_api::v1::rind_server::RindServer;

#[derive(Parser, Debug)]
#[command(name = "rindd", version, about = "The rind daemon")]
struct Args {
    /// Persistent state: metadata, content, snapshots
    #[arg(long, default_value = "/var/lib/rind")]
    root: PathBuf,
    /// Volatile state: bundles, sockets
    #[arg(long, default_value = "/run/rind")]
    state: PathBuf,
    /// The API socket
    #[arg(long)]
    socket: Option<PathBuf>,
    #[arg(long)]
    debug: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_max_level(if args.debug { tracing::Level::DEBUG } else { tracing::Level::INFO })
        .with_writer(std::io::stderr)
        .init();
    let socket = args.socket.clone().unwrap_or_else(|| args.state.join("rind.sock"));
    for d in [&args.root, &args.state] {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let content = Arc::new(rindd::content::ContentStore::open(&args.root.join("content")).context("content store")?);
    let store = Arc::new(Mutex::new(rindd::store::Store::open(&args.root.join("meta.db")).context("metadata store")?));
    let api = rindd::api::rind::RindApi { root: args.root.clone(), content, store };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    rt.block_on(async {
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
        tonic::transport::Server::builder()
            .add_service(RindServer::new(api))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .context("serve")?;
        let _ = std::fs::remove_file(&socket);
        anyhow::Ok(())
    })
}
