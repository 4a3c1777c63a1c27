//! rind-runtime: an OCI runtime with runc's command line. A thin dispatcher:
//! each verb lives in `commands/<verb>.rs`.

mod atomic;
mod cgroups;
mod cli;
mod commands;
mod hooks;
mod log;
mod paths;
mod process;
mod rootfs;
mod seal;
mod state;

use std::io::Write;

use clap::Parser;

use cli::{Cli, Command};

fn dispatch(cli: &Cli) -> anyhow::Result<i32> {
    let g = &cli.global;
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Create(a) => commands::create::create(g, a).map(|_| 0).map_err(Into::into),
        Command::Start { id } => commands::start::start(&g.root, id).map(|_| 0).map_err(Into::into),
        Command::State { id } => {
            let v = commands::state::state(&g.root, id)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            Ok(0)
        }
        Command::Kill { id, signal, all } => commands::kill::kill(&g.root, id, signal, *all).map(|_| 0).map_err(Into::into),
        Command::Delete { id, force } => commands::delete::delete(&g.root, id, *force).map(|_| 0).map_err(Into::into),
        Command::Run(a) => commands::run::run(g, a),
        Command::Exec(a) => commands::exec::exec(g, a),
        Command::List { format, quiet } => commands::list::list(&g.root, *format, *quiet, &mut out).map(|_| 0).map_err(Into::into),
        Command::Spec { bundle, rootless } => commands::spec::spec(bundle, *rootless).map(|_| 0),
        Command::Pause { id } => commands::pause::pause(&g.root, id, true).map(|_| 0).map_err(Into::into),
        Command::Resume { id } => commands::pause::pause(&g.root, id, false).map(|_| 0).map_err(Into::into),
        Command::Ps { format, id, ps_args } => commands::ps::ps(&g.root, id, *format, ps_args, &mut out).map(|_| 0),
        Command::Update(a) => commands::update::update(&g.root, a).map(|_| 0),
        Command::Events { stats, interval, id } => commands::events::events(&g.root, id, *stats, *interval, &mut out).map(|_| 0),
        Command::Features => {
            writeln!(out, "{}", serde_json::to_string_pretty(&commands::features::features())?)?;
            Ok(0)
        }
    }
}

fn main() {
    // Verbs that put our code inside a container first make this binary
    // read-only (CVE-2019-5736). Checked before parsing, so a re-exec costs
    // as little as possible; an id that happens to be "run" only costs a re-exec.
    let spawns = std::env::args_os().skip(1).any(|a| a == "create" || a == "run" || a == "exec");
    let sealed = if spawns { seal::ensure_read_only_exe().map_err(anyhow::Error::from) } else { Ok(()) };
    let cli = Cli::parse();
    log::init(cli.global.log.as_deref(), cli.global.log_format, cli.global.debug);
    let code = match sealed.and_then(|()| dispatch(&cli)) {
        Ok(code) => code,
        Err(e) => {
            // Logged once here, at the boundary; containerd reads it from --log.
            tracing::error!("{e:#}");
            if cli.global.log.is_some() {
                eprintln!("rind-runtime: {e:#}");
            }
            1
        }
    };
    std::process::exit(code);
}
