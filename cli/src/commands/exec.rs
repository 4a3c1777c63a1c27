//! `exec`: run a command in a running container, attached to it, or with -d
//! in the background.

use clap::Args;
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{attach_in, AttachIn, AttachStart, ExecProcess};
use tonic::transport::Channel;

use super::create::expand_env;
use crate::{attach, errors, session_failed, status, Exit};

// No doc comment here: clap would take it for the verb's about text, which
// is the `Exec` variant's in main.rs.
#[derive(Args, Debug)]
pub struct ExecFlags {
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

pub async fn exec(c: &mut RindClient<Channel>, flags: ExecFlags) -> anyhow::Result<i32> {
    let ExecFlags { interactive, tty, detach, env, user, workdir, container, command } = flags;
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
    let session = attach::Session { start: AttachStart { id: container, stdin: process.stdin, exec: Some(process) }, tty, exec: true };
    if detach {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(AttachIn { msg: Some(attach_in::Msg::Start(session.start)) }).await.ok();
        let mut out =
            c.exec(tokio_stream::wrappers::ReceiverStream::new(rx)).await.map_err(|e| Exit(126, errors::message(&e)))?.into_inner();
        out.message().await.map_err(status)?;
        return Ok(0);
    }
    let ended = attach::run(c, session, |_| async { Ok(()) }).await.map_err(|e| {
        if errors::is_went_away(&e) {
            return session_failed(e, "the command");
        }
        let m = format!("{e:#}");
        Exit(rind_common::exit::start_failure_code(&m).unwrap_or(126), m).into()
    })?;
    Ok(match ended {
        attach::Ended::Exit(code) => code,
        attach::Ended::Detached => 0,
    })
}
