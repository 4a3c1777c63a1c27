//! rind: the command line, a thin client of rindd's gRPC API, with docker's
//! commands, flags and exit codes. This file parses the command line,
//! connects and maps errors to exit codes; each verb is in `commands/`.

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
mod commands;
mod credentials;
mod errors;
mod format;

use std::path::PathBuf;

use anyhow::bail;
use clap::{CommandFactory, Parser, Subcommand};
use rind_api::v1::rind_client::RindClient;
use tonic::transport::{Channel, Endpoint};

use commands::create::CreateFlags;
use commands::exec::ExecFlags;
use commands::history::HistoryFlags;
use commands::image_prune::PruneFlags;
use commands::images::ImagesFlags;
use commands::save::SaveFlags;

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
    /// Download an image from a registry
    Pull(PullFlags),
    /// Upload an image to a registry
    Push {
        /// NAME[:TAG]
        name: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Log in to a registry (default: Docker Hub)
    Login {
        server: Option<String>,
        #[arg(short, long)]
        username: Option<String>,
        #[arg(short, long)]
        password: Option<String>,
        /// Take the password from stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Log out from a registry (default: Docker Hub)
    Logout {
        server: Option<String>,
    },
    /// List images
    Images(ImagesFlags),
    /// Write images to an archive (docker's and OCI's) that `load` reads
    Save(SaveFlags),
    /// The history of an image
    History(HistoryFlags),
    /// Remove images
    Rmi {
        #[arg(required = true)]
        names: Vec<String>,
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
    /// Network commands
    #[command(subcommand)]
    Network(commands::network::NetworkCmd),
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
    /// A container's published ports
    Port {
        container: String,
        /// PRIVATE_PORT[/PROTO]: only this one
        private: Option<String>,
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
    Exec(ExecFlags),
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
    Ls(ImagesFlags),
    Save(SaveFlags),
    History(HistoryFlags),
    /// Remove dangling images (-a: every image no container uses)
    Prune(PruneFlags),
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
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
    Pull(PullFlags),
    Push {
        name: String,
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(clap::Args, Debug)]
struct PullFlags {
    /// NAME[:TAG|@DIGEST]
    name: String,
    /// os/arch[/variant] of an image with several (default: this machine's)
    #[arg(long, default_value = "")]
    platform: String,
    /// Print only the image's name
    #[arg(short, long)]
    quiet: bool,
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
pub struct Exit(pub i32, pub String);

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
pub fn session_failed(e: anyhow::Error, what: &str) -> anyhow::Error {
    if errors::is_went_away(&e) {
        return Exit(125, format!("rindd went away while {what} ran: its exit code is unknown (it may still be running)")).into();
    }
    e
}

/// Docker's code for a container that could not start: 127 for a command
/// that is not there, 126 for one that cannot run, else 125.
pub fn start_failure(e: tonic::Status) -> anyhow::Error {
    let m = errors::message(&e);
    Exit(rind_common::exit::start_failure_code(&m).unwrap_or(125), m).into()
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match &cli.command {
        Cmd::Completion { shell } => return commands::completion::completion(*shell, Cli::command()),
        Cmd::Man { dir } => return commands::completion::man(dir, Cli::command()),
        // Only the CLI's own file: no daemon needed.
        Cmd::Logout { server } => return commands::login::logout(server.as_deref()),
        _ => {}
    }
    let mut c = connect(&cli.host).await.map_err(|e| Exit(125, format!("{e:#}")))?;
    match cli.command {
        Cmd::Completion { .. } | Cmd::Man { .. } | Cmd::Logout { .. } => unreachable!("handled above"),
        Cmd::Version => commands::version::version(&mut c).await,
        Cmd::Info => commands::info::info(&mut c).await,
        Cmd::Load { input } | Cmd::Image(ImageCmd::Load { input }) => commands::load::load(&mut c, &input).await,
        Cmd::Pull(f) | Cmd::Image(ImageCmd::Pull(f)) => commands::pull::pull_verb(&mut c, &f.name, &f.platform, f.quiet).await,
        Cmd::Push { name, quiet } | Cmd::Image(ImageCmd::Push { name, quiet }) => commands::push::push(&mut c, &name, quiet).await,
        Cmd::Login { server, username, password, password_stdin } => {
            commands::login::login(&mut c, server.as_deref(), username.as_deref(), password.as_deref(), password_stdin).await
        }
        Cmd::Images(f) | Cmd::Image(ImageCmd::Ls(f)) => commands::images::images(&mut c, f).await,
        Cmd::Save(f) | Cmd::Image(ImageCmd::Save(f)) => commands::save::save(&mut c, f).await,
        Cmd::History(f) | Cmd::Image(ImageCmd::History(f)) => commands::history::history(&mut c, f).await,
        Cmd::Image(ImageCmd::Prune(f)) => commands::image_prune::prune(&mut c, f).await,
        Cmd::Rmi { names, force } | Cmd::Image(ImageCmd::Rm { names, force }) => commands::images::rmi(&mut c, names, force).await,
        Cmd::Tag { source, target } | Cmd::Image(ImageCmd::Tag { source, target }) => commands::images::tag(&mut c, source, target).await,
        Cmd::Image(ImageCmd::Inspect { format, images }) => commands::images::inspect(&mut c, format.as_deref(), images).await,
        Cmd::Network(cmd) => commands::network::network(&mut c, cmd).await,
        Cmd::Port { container, private } => commands::port::port(&mut c, container, private).await,
        Cmd::Run { detach, flags } => commands::run::run(&mut c, detach, flags).await,
        Cmd::Create { flags } => commands::create::create(&mut c, &flags).await,
        Cmd::Start { attach, interactive, containers } => commands::start::start(&mut c, attach, interactive, &containers).await,
        Cmd::Stop { time, containers } => commands::stop::stop(&c, time, &containers).await,
        Cmd::Restart { time, containers } => commands::restart::restart(&c, time, &containers).await,
        Cmd::Kill { signal, containers } => commands::kill::kill(&c, &signal, &containers).await,
        Cmd::Rm { force, containers } => commands::rm::rm(&c, force, &containers).await,
        Cmd::Pause { containers } => commands::pause::pause(&c, &containers).await,
        Cmd::Unpause { containers } => commands::pause::unpause(&c, &containers).await,
        Cmd::Ps { all, quiet, filter, format } => commands::ps::ps(&mut c, all, quiet, &filter, format.as_deref()).await,
        Cmd::Container(ContainerCmd::Ls { all, quiet }) => commands::ps::ls(&mut c, all, quiet).await,
        Cmd::Inspect { format, containers } => commands::inspect::inspect(&mut c, format.as_deref(), containers).await,
        Cmd::Logs { follow, tail, since, timestamps, container } => {
            commands::logs::logs(&mut c, follow, &tail, since.as_deref(), timestamps, container).await
        }
        Cmd::Exec(flags) => commands::exec::exec(&mut c, flags).await,
        Cmd::Attach { no_stdin, container } => commands::attach::attach(&mut c, no_stdin, container).await,
        Cmd::Wait { containers } => commands::wait::wait(&mut c, containers).await,
        Cmd::Top { container } => commands::top::top(&mut c, container).await,
        Cmd::Stats { no_stream, containers } => commands::stats::stats(&mut c, no_stream, containers).await,
        Cmd::Events => commands::events::events(&mut c).await,
        Cmd::Rename { container, name } => commands::rename::rename(&mut c, container, name).await,
        Cmd::Container(ContainerCmd::Prune { force: _ }) => commands::prune::prune(&mut c).await,
    }
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
    let code = match rt.block_on(dispatch(cli)) {
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
