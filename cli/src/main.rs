//! rind: the command line, a thin client of rindd's gRPC API, with docker's
//! commands, flags and exit codes.

/// `println!` and `print!` that end the process quietly, as SIGPIPE does,
/// when stdout is a closed pipe (`rind ps | head`), as docker does; std's
/// panic there.
macro_rules! println {
    () => {
        $crate::errors::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::errors::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

macro_rules! print {
    ($($arg:tt)*) => {
        $crate::errors::write_stdout(format_args!($($arg)*))
    };
}

mod attach;
mod errors;
mod format;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, CommandFactory, Parser, Subcommand};
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::*;
use tonic::transport::{Channel, Endpoint};

const DEFAULT_HOST: &str = "unix:///run/rind/rind.sock";

#[derive(Parser, Debug)]
#[command(name = "rind", version, about = "Run containers with rindd")]
struct Cli {
    /// Daemon socket (also RIND_HOST)
    #[arg(short = 'H', long = "host", env = "RIND_HOST", default_value = DEFAULT_HOST, global = true)]
    host: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Debug, Clone, Default)]
struct CreateFlags {
    /// Keep stdin open
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a terminal
    #[arg(short, long)]
    tty: bool,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to take ours)
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// Bind mount HOST:CONTAINER[:ro]
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// Mount a tmpfs
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// uid[:gid]
    #[arg(short, long)]
    user: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    entrypoint: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    #[arg(long = "read-only")]
    read_only: bool,
    /// Memory limit (e.g. 64m)
    #[arg(short, long)]
    memory: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpus: Option<f64>,
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    #[arg(long)]
    privileged: bool,
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// none or host
    #[arg(long, default_value = "none")]
    network: String,
    /// no, always, unless-stopped, on-failure[:N]
    #[arg(long, default_value = "no", value_parser = format::parse_restart)]
    restart: format::Restart,
    #[arg(short, long = "label")]
    label: Vec<String>,
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    #[arg(long = "stop-timeout")]
    stop_timeout: Option<i64>,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Client and daemon versions
    Version,
    /// What the daemon runs and holds
    Info,
    /// Load images from a `docker save` or OCI layout archive
    Load {
        #[arg(short, long)]
        input: PathBuf,
    },
    /// List images
    Images {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove an image
    Rmi {
        name: String,
        #[arg(short, long)]
        force: bool,
    },
    /// Give an image another name
    Tag {
        source: String,
        target: String,
    },
    /// Image commands
    #[command(subcommand)]
    Image(ImageCmd),
    /// Run a command in a new container
    Run {
        /// Run in the background and print the id
        #[arg(short, long)]
        detach: bool,
        #[command(flatten)]
        flags: CreateFlags,
    },
    /// Create a container
    Create {
        #[command(flatten)]
        flags: CreateFlags,
    },
    /// Start containers
    Start {
        /// Attach to the output
        #[arg(short, long)]
        attach: bool,
        /// Attach stdin
        #[arg(short, long)]
        interactive: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop containers (the stop signal, then SIGKILL)
    Stop {
        /// Seconds to wait before killing
        #[arg(short, long)]
        time: Option<i64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart containers
    Restart {
        #[arg(short, long)]
        time: Option<i64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal (default SIGKILL)
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    Ps {
        #[arg(short, long)]
        all: bool,
        #[arg(short, long)]
        quiet: bool,
        #[arg(short, long)]
        filter: Vec<String>,
        /// json, or a template such as '{{.Names}} {{.Status}}'
        #[arg(long)]
        format: Option<String>,
    },
    /// Low-level information as JSON
    Inspect {
        /// A template such as '{{.State.Status}}'
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// A container's output
    Logs {
        #[arg(short, long)]
        follow: bool,
        /// Lines from the end ("all" for every line)
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// RFC 3339 time or unix seconds, or a duration (10m)
        #[arg(long)]
        since: Option<String>,
        #[arg(short, long)]
        timestamps: bool,
        container: String,
    },
    /// Run a command in a running container
    Exec {
        #[arg(short, long)]
        interactive: bool,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(short, long = "env")]
        env: Vec<String>,
        #[arg(short, long)]
        user: Option<String>,
        #[arg(short, long)]
        workdir: Option<String>,
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Attach to a running container's stdio
    Attach {
        #[arg(long = "no-stdin")]
        no_stdin: bool,
        container: String,
    },
    /// Wait for containers to stop; print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// The processes of a container
    Top {
        container: String,
    },
    /// Resource use
    Stats {
        #[arg(long = "no-stream")]
        no_stream: bool,
        containers: Vec<String>,
    },
    /// Container events, as they happen
    Events,
    Rename {
        container: String,
        name: String,
    },
    /// Container commands
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Shell completions
    Completion {
        shell: clap_complete::Shell,
    },
    /// Write man pages into a directory
    #[command(hide = true)]
    Man {
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ImageCmd {
    Ls {
        #[arg(short, long)]
        quiet: bool,
    },
    Rm {
        name: String,
        #[arg(short, long)]
        force: bool,
    },
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    Tag {
        source: String,
        target: String,
    },
    Load {
        #[arg(short, long)]
        input: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ContainerCmd {
    /// Remove every stopped container
    Prune {
        #[arg(short, long)]
        force: bool,
    },
    Ls {
        #[arg(short, long)]
        all: bool,
        #[arg(short, long)]
        quiet: bool,
    },
}

/// A failure with docker's exit code for it.
#[derive(Debug)]
struct Exit(i32, String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}
impl std::error::Error for Exit {}

async fn connect(host: &str) -> anyhow::Result<RindClient<Channel>> {
    let Some(path) = host.strip_prefix("unix://") else { bail!("-H {host}: only unix:///path is supported") };
    let path = PathBuf::from(path);
    let p = path.clone();
    let channel = Endpoint::try_from("http://rindd.sock")?
        .connect_with_connector(tower::service_fn(move |_| {
            let p = p.clone();
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(p).await?)) }
        }))
        .await
        .map_err(|e| anyhow::anyhow!(errors::connect_failed(&path, &e)))?;
    Ok(RindClient::new(channel.clone()).max_decoding_message_size(64 << 20))
}

/// A failed call as an error: rindd's message, or that rindd went away.
pub fn status(e: tonic::Status) -> anyhow::Error {
    errors::from_status(e)
}

/// An attached session that failed: when rindd went away, say that the exit
/// code of what ran (`what`) is unknown; it may still be running.
fn session_failed(e: anyhow::Error, what: &str) -> anyhow::Error {
    if errors::is_went_away(&e) {
        return Exit(125, format!("rindd went away while {what} ran: its exit code is unknown (it may still be running)")).into();
    }
    e
}

fn read_env_file(p: &PathBuf) -> anyhow::Result<Vec<String>> {
    let s = std::fs::read_to_string(p).with_context(|| format!("read env file {}", p.display()))?;
    Ok(s.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(expand_env).collect())
}

/// `-e KEY` takes KEY from our environment, as docker does.
fn expand_env(kv: &str) -> String {
    if kv.contains('=') {
        kv.to_string()
    } else {
        format!("{kv}={}", std::env::var(kv).unwrap_or_default())
    }
}

fn create_request(f: &CreateFlags) -> anyhow::Result<CreateContainerRequest> {
    let mut env = Vec::new();
    for p in &f.env_file {
        env.extend(read_env_file(p)?);
    }
    env.extend(f.env.iter().map(|e| expand_env(e)));
    let mut binds = Vec::new();
    for v in &f.volume {
        let parts: Vec<&str> = v.split(':').collect();
        let (host, ctr, ro) = match parts.as_slice() {
            [h, c] => (*h, *c, false),
            [h, c, "ro"] => (*h, *c, true),
            [h, c, "rw"] => (*h, *c, false),
            _ => bail!("invalid volume {v:?}: use HOST:CONTAINER[:ro]"),
        };
        let host = std::fs::canonicalize(host).with_context(|| format!("volume {v:?}: host path {host}"))?;
        binds.push(Bind { host: host.display().to_string(), container: ctr.into(), read_only: ro });
    }
    let mut labels = HashMap::new();
    for l in &f.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let memory = f.memory.as_deref().map(format::parse_bytes).transpose().map_err(|e| anyhow::anyhow!("--memory: {e}"))?.unwrap_or(0);
    let entrypoint: Vec<String> = f.entrypoint.as_deref().map(|e| e.split_whitespace().map(String::from).collect()).unwrap_or_default();
    Ok(CreateContainerRequest {
        image: f.image.clone(),
        name: f.name.clone().unwrap_or_default(),
        entrypoint_set: f.entrypoint.is_some(),
        entrypoint,
        cmd: f.command.clone(),
        env,
        workdir: f.workdir.clone().unwrap_or_default(),
        user: f.user.clone().unwrap_or_default(),
        hostname: f.hostname.clone().unwrap_or_default(),
        tty: f.tty,
        open_stdin: f.interactive,
        read_only: f.read_only,
        privileged: f.privileged,
        cap_add: f.cap_add.clone(),
        cap_drop: f.cap_drop.clone(),
        memory,
        cpus: f.cpus.unwrap_or(0.0),
        pids_limit: f.pids_limit.unwrap_or(0),
        labels,
        binds,
        tmpfs: f.tmpfs.clone(),
        network: f.network.clone(),
        security_opt: f.security_opt.clone(),
        restart: f.restart.policy.into(),
        restart_max_retries: f.restart.max_retries,
        auto_remove: f.rm,
        stop_signal: f.stop_signal.clone().unwrap_or_default(),
        stop_timeout: f.stop_timeout.unwrap_or(-1),
    })
}

/// Docker's code for a container that could not start: 127 for a command
/// that is not there, 126 for one that cannot run, else 125.
fn start_failure(e: tonic::Status) -> anyhow::Error {
    let m = errors::message(&e);
    Exit(rind_common::exit::start_failure_code(&m).unwrap_or(125), m).into()
}

async fn run_container(c: &mut RindClient<Channel>, detach: bool, flags: CreateFlags) -> anyhow::Result<i32> {
    if detach && flags.rm && flags.restart.policy != RestartPolicy::No {
        bail!("--rm and --restart conflict");
    }
    let req = create_request(&flags).map_err(|e| Exit(125, format!("{e:#}")))?;
    let created = c.create_container(req).await.map_err(|e| Exit(125, errors::message(&e)))?.into_inner();
    if detach {
        if let Err(e) = c.start_container(ContainerRef { id: created.id.clone() }).await {
            if flags.rm {
                let _ = c.remove_container(RemoveContainerRequest { id: created.id.clone(), force: true }).await;
            }
            return Err(start_failure(e));
        }
        println!("{}", created.id);
        return Ok(0);
    }
    let session = attach::Session {
        start: AttachStart { id: created.id.clone(), stdin: flags.interactive, exec: None },
        tty: flags.tty,
        exec: false,
    };
    let (id, rm) = (created.id.clone(), flags.rm);
    let ended = attach::run(c, session, |mut client| async move {
        if let Err(e) = client.start_container(ContainerRef { id: id.clone() }).await {
            // --rm: a container that never ran goes too.
            if rm {
                let _ = client.remove_container(RemoveContainerRequest { id, force: true }).await;
            }
            return Err(start_failure(e));
        }
        Ok(())
    })
    .await
    .map_err(|e| session_failed(e, "the container"))?;
    Ok(match ended {
        attach::Ended::Exit(code) => code,
        attach::Ended::Detached => 0,
    })
}

/// The containers; those rindd could not read are named on stderr, as
/// docker prints its warnings, and the listing goes on.
async fn list_containers(c: &mut RindClient<Channel>, all: bool) -> anyhow::Result<Vec<Container>> {
    let r = c.list_containers(ListContainersRequest { all }).await.map_err(status)?.into_inner();
    for w in &r.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(r.containers)
}

fn print_containers(list: Vec<Container>, quiet: bool, format: Option<&str>) {
    if quiet {
        for x in list {
            println!("{}", &x.id[..12.min(x.id.len())]);
        }
        return;
    }
    if let Some(f) = format {
        for x in list {
            let v = serde_json::json!({
                "ID": &x.id[..12.min(x.id.len())], "Names": x.name, "Image": x.image, "Command": x.command,
                "CreatedAt": x.created, "State": format::state_name(x.state()), "Status": x.status, "Labels": x.labels, "ExitCode": x.exit_code,
            });
            if f == "json" {
                println!("{v}");
            } else {
                println!("{}", format::render(f, &v));
            }
        }
        return;
    }
    println!("{:<14}{:<20}{:<28}{:<30}NAMES", "CONTAINER ID", "IMAGE", "COMMAND", "STATUS");
    for x in list {
        let mut cmd = format!("\"{}\"", x.command);
        if cmd.len() > 24 {
            cmd = format!("{}…\"", &cmd[..cmd.char_indices().nth(21).map(|(i, _)| i).unwrap_or(cmd.len())]);
        }
        println!("{:<14}{:<20}{:<28}{:<30}{}", &x.id[..12.min(x.id.len())], x.image, cmd, x.status, x.name);
    }
}

/// Runs one call per container, printing each name done, as docker does.
async fn each<F, Fut>(c: &RindClient<Channel>, names: &[String], mut f: F) -> anyhow::Result<i32>
where
    F: FnMut(RindClient<Channel>, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut failed = false;
    for n in names {
        match f(c.clone(), n.clone()).await {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("rind: {}", errors::message(&e));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn since_arg(s: &str) -> String {
    // A duration ("10m") means that long ago.
    match humantime::parse_duration(s) {
        Ok(d) => {
            let t = std::time::SystemTime::now() - d;
            t.duration_since(std::time::UNIX_EPOCH).map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos())).unwrap_or_default()
        }
        Err(_) => s.to_string(),
    }
}

async fn images(c: &mut RindClient<Channel>, quiet: bool) -> anyhow::Result<i32> {
    let r = c.list_images(ListImagesRequest {}).await.map_err(status)?.into_inner();
    if !quiet {
        println!("{:<40} {:<14} {:<8} SIZE", "NAME", "IMAGE ID", "LAYERS");
    }
    for i in r.images {
        if quiet {
            println!("{}", i.name);
        } else {
            let short = i.config_digest.trim_start_matches("sha256:").chars().take(12).collect::<String>();
            println!("{:<40} {:<14} {:<8} {}", i.name, short, i.layers.len(), format::size(i.size));
        }
    }
    Ok(0)
}

/// Streams the archive as it is read: one of any size (or a fifo) is never
/// held in memory.
async fn load(c: &mut RindClient<Channel>, input: &PathBuf) -> anyhow::Result<i32> {
    let mut file = tokio::fs::File::open(input).await.with_context(|| format!("read {}", input.display()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<LoadChunk>(4);
    let (failed, read_error) = tokio::sync::oneshot::channel::<std::io::Error>();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        loop {
            let mut data = vec![0u8; 1 << 20];
            match file.read(&mut data).await {
                Ok(0) => return,
                Ok(n) => {
                    data.truncate(n);
                    if tx.send(LoadChunk { data }).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = failed.send(e);
                    // Keep the stream open: the call is cancelled below, so
                    // rindd never takes a truncated archive for a whole one.
                    return std::future::pending::<()>().await;
                }
            }
        }
    });
    let r = tokio::select! {
        r = c.load_image(tokio_stream::wrappers::ReceiverStream::new(rx)) => r.map_err(status)?.into_inner(),
        Ok(e) = read_error => return Err(anyhow::Error::new(e).context(format!("read {}", input.display()))),
    };
    for n in r.names {
        println!("Loaded image: {n}");
    }
    Ok(0)
}

fn print_inspect(json: &str, format: Option<&str>) -> anyhow::Result<()> {
    match format {
        Some(f) => {
            let v: serde_json::Value = serde_json::from_str(json)?;
            for item in v.as_array().cloned().unwrap_or_default() {
                println!("{}", format::render(f, &item));
            }
        }
        None => println!("{json}"),
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match &cli.command {
        Cmd::Completion { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "rind", &mut std::io::stdout());
            return Ok(0);
        }
        Cmd::Man { dir } => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir).with_context(|| format!("write man pages to {}", dir.display()))?;
            return Ok(0);
        }
        _ => {}
    }
    let mut c = connect(&cli.host).await.map_err(|e| Exit(125, format!("{e:#}")))?;
    match cli.command {
        Cmd::Completion { .. } | Cmd::Man { .. } => unreachable!("handled above"),
        Cmd::Version => {
            let v = c.version(VersionRequest {}).await.map_err(status)?.into_inner();
            println!("Client: {}\nServer: {} (API {})", env!("CARGO_PKG_VERSION"), v.version, v.api_version);
        }
        Cmd::Info => {
            let i = c.info(InfoRequest {}).await.map_err(status)?.into_inner();
            println!("Containers: {}\n Running: {}\n Paused: {}\n Stopped: {}", i.containers, i.running, i.paused, i.stopped);
            println!("Images: {}\nStorage Driver: {}\nCgroup Version: {}", i.images, i.storage_driver, i.cgroup_version);
            println!("Runtime: {}\nKernel Version: {}\nRoot Dir: {}\nState Dir: {}", i.runtime, i.kernel, i.root, i.state);
        }
        Cmd::Load { input } | Cmd::Image(ImageCmd::Load { input }) => return load(&mut c, &input).await,
        Cmd::Images { quiet } | Cmd::Image(ImageCmd::Ls { quiet }) => return images(&mut c, quiet).await,
        Cmd::Rmi { name, force } | Cmd::Image(ImageCmd::Rm { name, force }) => {
            c.remove_image(RemoveImageRequest { name: name.clone(), force }).await.map_err(status)?;
            println!("Untagged: {name}");
        }
        Cmd::Tag { source, target } | Cmd::Image(ImageCmd::Tag { source, target }) => {
            c.tag_image(TagImageRequest { source, target }).await.map_err(status)?;
        }
        Cmd::Image(ImageCmd::Inspect { format, images }) => {
            for name in images {
                let r = c.inspect_image(InspectImageRequest { name }).await.map_err(status)?.into_inner();
                print_inspect(&r.json, format.as_deref())?;
            }
        }
        Cmd::Run { detach, flags } => return run_container(&mut c, detach, flags).await,
        Cmd::Create { flags } => {
            let req = create_request(&flags)?;
            let r = c.create_container(req).await.map_err(status)?.into_inner();
            println!("{}", r.id);
        }
        Cmd::Start { attach, interactive, containers } => {
            if attach || interactive {
                let [name] = containers.as_slice() else { bail!("start -a takes one container") };
                let info = c.inspect_container(ContainerRef { id: name.clone() }).await.map_err(status)?.into_inner();
                let v: serde_json::Value = serde_json::from_str(&info.json)?;
                let tty = v[0]["Config"]["Tty"].as_bool().unwrap_or(false);
                let session = attach::Session { start: AttachStart { id: name.clone(), stdin: interactive, exec: None }, tty, exec: false };
                let id = name.clone();
                let ended = attach::run(&mut c, session, |mut client| async move {
                    client.start_container(ContainerRef { id }).await.map_err(start_failure)?;
                    Ok(())
                })
                .await
                .map_err(|e| session_failed(e, "the container"))?;
                return Ok(match ended {
                    attach::Ended::Exit(code) => code,
                    attach::Ended::Detached => 0,
                });
            }
            return each(&c, &containers, |mut cl, id| async move { cl.start_container(ContainerRef { id }).await.map(|_| ()) }).await;
        }
        Cmd::Stop { time, containers } => {
            return each(&c, &containers, |mut cl, id| async move {
                cl.stop_container(StopContainerRequest { id, timeout: time.unwrap_or(-1) }).await.map(|_| ())
            })
            .await;
        }
        Cmd::Restart { time, containers } => {
            return each(&c, &containers, |mut cl, id| async move {
                cl.restart_container(StopContainerRequest { id, timeout: time.unwrap_or(-1) }).await.map(|_| ())
            })
            .await;
        }
        Cmd::Kill { signal, containers } => {
            return each(&c, &containers, |mut cl, id| {
                let signal = signal.clone();
                async move { cl.kill_container(KillContainerRequest { id, signal }).await.map(|_| ()) }
            })
            .await;
        }
        Cmd::Rm { force, containers } => {
            return each(&c, &containers, |mut cl, id| async move {
                cl.remove_container(RemoveContainerRequest { id, force }).await.map(|_| ())
            })
            .await;
        }
        Cmd::Pause { containers } => {
            return each(&c, &containers, |mut cl, id| async move { cl.pause_container(ContainerRef { id }).await.map(|_| ()) }).await;
        }
        Cmd::Unpause { containers } => {
            return each(&c, &containers, |mut cl, id| async move { cl.unpause_container(ContainerRef { id }).await.map(|_| ()) }).await;
        }
        Cmd::Ps { all, quiet, filter, format } => {
            let list = list_containers(&mut c, all).await?;
            let mut kept = Vec::new();
            for x in list {
                let mut ok = true;
                for f in &filter {
                    ok &= format::matches(f, &x).map_err(|e| anyhow::anyhow!(e))?;
                }
                if ok {
                    kept.push(x);
                }
            }
            print_containers(kept, quiet, format.as_deref());
        }
        Cmd::Container(ContainerCmd::Ls { all, quiet }) => {
            let list = list_containers(&mut c, all).await?;
            print_containers(list, quiet, None);
        }
        Cmd::Inspect { format, containers } => {
            let mut code = 0;
            for id in containers {
                match c.inspect_container(ContainerRef { id: id.clone() }).await {
                    Ok(r) => print_inspect(&r.into_inner().json, format.as_deref())?,
                    Err(e) => {
                        // Not a container: maybe an image.
                        match c.inspect_image(InspectImageRequest { name: id }).await {
                            Ok(r) => print_inspect(&r.into_inner().json, format.as_deref())?,
                            Err(_) => {
                                eprintln!("rind: {}", errors::message(&e));
                                code = 1;
                            }
                        }
                    }
                }
            }
            return Ok(code);
        }
        Cmd::Logs { follow, tail, since, timestamps, container } => {
            let tail =
                if tail == "all" { -1 } else { tail.parse::<i64>().map_err(|_| anyhow::anyhow!("--tail {tail:?}: a number or all"))? };
            let req = LogsRequest { id: container, follow, tail, since: since.as_deref().map(since_arg).unwrap_or_default() };
            let mut s = c.logs(req).await.map_err(status)?.into_inner();
            while let Some(chunk) = s.message().await.map_err(status)? {
                let prefix = if timestamps { format!("{} ", chunk.time) } else { String::new() };
                if chunk.stream == "stderr" {
                    let mut e = std::io::stderr().lock();
                    e.write_all(prefix.as_bytes())?;
                    e.write_all(&chunk.data)?;
                } else {
                    let mut o = std::io::stdout().lock();
                    o.write_all(prefix.as_bytes())?;
                    o.write_all(&chunk.data)?;
                    o.flush()?;
                }
            }
        }
        Cmd::Exec { interactive, tty, detach, env, user, workdir, container, command } => {
            let process = ExecProcess {
                args: command,
                env: env.iter().map(|e| expand_env(e)).collect(),
                user: user.unwrap_or_default(),
                workdir: workdir.unwrap_or_default(),
                tty,
                stdin: interactive && !detach,
                detach,
                privileged: false,
            };
            let session =
                attach::Session { start: AttachStart { id: container, stdin: process.stdin, exec: Some(process) }, tty, exec: true };
            if detach {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                tx.send(AttachIn { msg: Some(attach_in::Msg::Start(session.start)) }).await.ok();
                let mut out =
                    c.exec(tokio_stream::wrappers::ReceiverStream::new(rx)).await.map_err(|e| Exit(126, errors::message(&e)))?.into_inner();
                out.message().await.map_err(status)?;
                return Ok(0);
            }
            let ended = attach::run(&mut c, session, |_| async { Ok(()) }).await.map_err(|e| {
                if errors::is_went_away(&e) {
                    return session_failed(e, "the command");
                }
                let m = format!("{e:#}");
                Exit(rind_common::exit::start_failure_code(&m).unwrap_or(126), m).into()
            })?;
            return Ok(match ended {
                attach::Ended::Exit(code) => code,
                attach::Ended::Detached => 0,
            });
        }
        Cmd::Attach { no_stdin, container } => {
            let info = c.inspect_container(ContainerRef { id: container.clone() }).await.map_err(status)?.into_inner();
            let v: serde_json::Value = serde_json::from_str(&info.json)?;
            if v[0]["State"]["Status"] != "running" {
                bail!("you cannot attach to a stopped container, start it first");
            }
            let tty = v[0]["Config"]["Tty"].as_bool().unwrap_or(false);
            let stdin = !no_stdin && v[0]["Config"]["OpenStdin"].as_bool().unwrap_or(false);
            let session = attach::Session { start: AttachStart { id: container, stdin, exec: None }, tty, exec: false };
            let ended = attach::run(&mut c, session, |_| async { Ok(()) }).await.map_err(|e| session_failed(e, "the container"))?;
            return Ok(match ended {
                attach::Ended::Exit(code) => code,
                attach::Ended::Detached => 0,
            });
        }
        Cmd::Wait { containers } => {
            let mut code = 0;
            for id in containers {
                match c.wait(ContainerRef { id }).await {
                    Ok(r) => println!("{}", r.into_inner().exit_code),
                    Err(e) => {
                        eprintln!("rind: {}", errors::message(&e));
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
        Cmd::Top { container } => {
            let t = c.top(ContainerRef { id: container }).await.map_err(status)?.into_inner();
            println!("{}", t.titles.join("\t"));
            for r in t.rows {
                println!("{}", r.fields.join("\t"));
            }
        }
        Cmd::Stats { no_stream, containers } => {
            let mut s = c.stats(StatsRequest { ids: containers, stream: !no_stream }).await.map_err(status)?.into_inner();
            while let Some(r) = s.message().await.map_err(status)? {
                if !no_stream {
                    print!("\x1b[2J\x1b[H");
                }
                println!("{:<14}{:<24}{:<9}{:<24}PIDS", "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT");
                for x in r.stats {
                    let limit =
                        if x.memory_limit == 0 || x.memory_limit >= 1 << 60 { "unlimited".into() } else { format::size(x.memory_limit) };
                    println!(
                        "{:<14}{:<24}{:<9}{:<24}{}",
                        &x.id[..12.min(x.id.len())],
                        x.name,
                        format!("{:.2}%", x.cpu_percent),
                        format!("{} / {}", format::size(x.memory_usage), limit),
                        x.pids
                    );
                }
                std::io::stdout().flush().ok();
            }
        }
        Cmd::Events => {
            let mut s = c.events(EventsRequest {}).await.map_err(status)?.into_inner();
            while let Some(e) = s.message().await.map_err(status)? {
                let mut attrs: Vec<String> = e.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                attrs.sort();
                println!("{} container {} {} ({})", e.time, e.action, e.id, attrs.join(", "));
                std::io::stdout().flush().ok();
            }
        }
        Cmd::Rename { container, name } => {
            c.rename_container(RenameContainerRequest { id: container, name }).await.map_err(status)?;
        }
        Cmd::Container(ContainerCmd::Prune { force: _ }) => {
            let r = c.prune_containers(PruneContainersRequest {}).await.map_err(status)?.into_inner();
            println!("Deleted Containers:");
            for id in r.deleted {
                println!("{id}");
            }
        }
    }
    Ok(0)
}

fn main() {
    // Usage errors exit 125, as docker's do; --help and --version exit 0.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 125 } else { 0 });
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rind: {e}");
            std::process::exit(125);
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if errors::is_broken_pipe(&e) {
                errors::die_of_sigpipe();
            }
            eprintln!("rind: {e:#}");
            e.downcast_ref::<Exit>().map(|x| x.0).unwrap_or(1)
        }
    };
    // The stdin reader thread may still block in read(2): leave without it.
    std::process::exit(code);
}
