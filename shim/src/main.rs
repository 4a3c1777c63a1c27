//! containerd-shim-rind-v2: containerd's shim v2 protocol for one container.
//! `start` daemonises a server and prints its address; `delete` cleans up
//! after a shim that is gone; with no action, the server itself runs.

mod args;
mod console;
mod container;
mod events;
mod exit_file;
mod exits;
mod idle;
mod logs;
mod metrics;
mod oom;
mod paths;
mod process;
mod reaper;
mod rootfs;
mod runtime;
mod service;
mod stdio;

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use containerd_shim_protos::protobuf::{Message, MessageField};

/// The listening socket `start` hands to the server, as containerd's shims do.
const LISTENER_FD: i32 = 3;

fn main() {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("containerd-shim-rind-v2: {e}");
            std::process::exit(2);
        }
    };
    let result = match args.action.as_deref() {
        Some("start") => start(&args),
        Some("delete") => delete(&args),
        Some("version") => {
            println!("containerd-shim-rind-v2 {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        None => serve(&args),
        Some(other) => Err(anyhow::anyhow!("unknown action {other:?}")),
    };
    if let Err(e) = result {
        eprintln!("containerd-shim-rind-v2: {e:#}");
        std::process::exit(1);
    }
}

fn bundle_dir(args: &args::Args) -> anyhow::Result<PathBuf> {
    match &args.bundle {
        Some(b) => Ok(b.clone()),
        None => std::env::current_dir().context("current directory (the bundle)"),
    }
}

/// `start`: a second start for the same id returns the running shim's address.
fn start(args: &args::Args) -> anyhow::Result<()> {
    let bundle = bundle_dir(args)?;
    let dir = paths::socket_dir();
    let sock = paths::socket_path(&dir, &args.address, &args.namespace, &args.id);
    let address = format!("unix://{}", sock.display());
    if UnixStream::connect(&sock).is_ok() {
        std::fs::write(bundle.join(paths::ADDRESS_FILE), &address).context("write address file")?;
        println!("{address}");
        return Ok(());
    }
    // Root only: whoever can connect to a shim controls its container.
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).with_context(|| format!("create {}", dir.display()))?;
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).with_context(|| format!("listen on {}", sock.display()))?;
    let exe = std::env::current_exe().context("find own binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(["-namespace", &args.namespace, "-id", &args.id, "-address", &args.address, "-publish-binary", &args.publish_binary]);
    if args.debug {
        cmd.arg("-debug");
    }
    cmd.current_dir(&bundle).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let lfd = listener.as_raw_fd();
    // SAFETY: between fork and exec we only call async-signal-safe setsid and dup2.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2 onto itself would keep FD_CLOEXEC: clear it instead.
            let rc = if lfd == LISTENER_FD { libc::fcntl(lfd, libc::F_SETFD, 0) } else { libc::dup2(lfd, LISTENER_FD) };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&sock);
            return Err(e).context("spawn shim server");
        }
    };
    drop(child);
    std::fs::write(bundle.join(paths::ADDRESS_FILE), &address).context("write address file")?;
    let mut out = std::io::stdout().lock();
    write!(out, "{address}")?;
    Ok(())
}

/// `delete`: the shim is gone; clean the container and report its exit.
fn delete(args: &args::Args) -> anyhow::Result<()> {
    let bundle = bundle_dir(args)?;
    let choice: runtime::RuntimeChoice = std::fs::read(bundle.join(paths::RUNTIME_CHOICE_FILE))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or(runtime::RuntimeChoice { binary: paths::DEFAULT_RUNTIME.into(), root: paths::runtime_root().join(&args.namespace) });
    let _ = Command::new(&choice.binary)
        .arg("--root")
        .arg(&choice.root)
        .args(["delete", "--force", &args.id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    rootfs::unmount(&bundle.join(paths::ROOTFS));
    // The shim is gone (killed, or never cleaned up): its socket file too.
    let sock = paths::socket_path(&paths::socket_dir(), &args.address, &args.namespace, &args.id);
    if UnixStream::connect(&sock).is_err() {
        let _ = std::fs::remove_file(&sock);
    }
    let mut r = containerd_shim_protos::shim::shim::DeleteResponse::new();
    match exit_file::read(&bundle.join(paths::EXIT_FILE)) {
        Some(exit) => {
            r.pid = exit.pid as u32;
            r.exit_status = exit.status;
            r.exited_at = MessageField::some(events::timestamp(exit.time()));
        }
        // No exit was recorded: the status is unknown. SIGKILL's, as the runc
        // shim reports, for containerd; and no exited_at, which tells a
        // client that reads it (rindd) that this status is made up.
        None => r.exit_status = 128 + libc::SIGKILL as u32,
    }
    std::io::stdout().write_all(&r.write_to_bytes()?)?;
    Ok(())
}

fn init_logging(debug: bool) {
    // containerd reads the shim's log from the "log" fifo in the bundle.
    let fifo = std::fs::OpenOptions::new().write(true).custom_flags_nonblock().open("log");
    let builder =
        tracing_subscriber::fmt().with_ansi(false).with_max_level(if debug { tracing::Level::DEBUG } else { tracing::Level::INFO });
    let _ = match fifo {
        Ok(f) => builder.with_writer(std::sync::Mutex::new(f)).try_init(),
        Err(_) => builder.with_writer(std::io::sink).try_init(),
    };
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

/// The server: subreaper, ttrpc Task service on fd 3, until Shutdown.
fn serve(args: &args::Args) -> anyhow::Result<()> {
    init_logging(args.debug);
    nix::sys::prctl::set_child_subreaper(true).context("become child subreaper")?;
    let bundle = std::env::current_dir().context("current directory (the bundle)")?;
    // SAFETY: fd 3 is the listener `start` passed us; nothing else owns it.
    let check = unsafe { UnixListener::from_raw_fd(LISTENER_FD) };
    if check.local_addr().is_err() {
        bail!("fd {LISTENER_FD} is not a listening socket: run this shim through `start`");
    }
    let sock_path = check.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf));
    let fd = check.into_raw_fd();
    // Runtime commands we spawn must not inherit our listener.
    // SAFETY: F_SETFD on our own fd.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    rt.block_on(async {
        let reaper = reaper::Reaper::start().context("watch SIGCHLD")?;
        let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let publisher = events::Publisher::new(ttrpc_address, args.namespace.clone());
        let container = container::Container::new(args.namespace.clone(), args.id.clone(), bundle, reaper.clone(), publisher);
        // Subscribed before anything is spawned: no exit goes unseen.
        container.monitor_exits(reaper.subscribe());
        let svc = service::TaskService::new(container);
        let shutdown = svc.shutdown.clone();
        // containerd 2.x speaks containerd.task.v3.Task; 1.6 and 1.7 the same
        // messages as containerd.task.v2.Task: serve both names.
        let mut task = containerd_shim_protos::shim_async::create_task(svc.clone());
        let v2: Vec<_> = containerd_shim_protos::shim_async::create_task(svc).into_values().collect();
        for s in v2 {
            task.insert("containerd.task.v2.Task".to_string(), s);
        }
        // SAFETY: the listener fd is handed to the server, which owns it from here.
        let server = unsafe { ttrpc::asynchronous::Server::new().add_unix_listener(LISTENER_FD) }.context("ttrpc listener")?;
        let mut server = server.register_service(task);
        server.start().await.context("start ttrpc server")?;
        shutdown.notified().await;
        // Let the Shutdown reply go out before we stop (a client that misses
        // it sees the connection close, which means the same).
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let _ = server.shutdown().await;
        anyhow::Ok(())
    })?;
    if let Some(p) = sock_path {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
