//! `run`: create a container, start it, and attach to it (or with -d print
//! its id); `--rm` removes one that never started too.

use anyhow::bail;
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{AttachStart, ContainerRef, RemoveContainerRequest, RestartPolicy};
use tonic::transport::Channel;

use super::create::{create_pulling, CreateFlags};
use crate::{attach, session_failed, start_failure};

pub async fn run(c: &mut RindClient<Channel>, detach: bool, flags: CreateFlags) -> anyhow::Result<i32> {
    if detach && flags.rm && flags.restart.policy != RestartPolicy::No {
        bail!("--rm and --restart conflict");
    }
    let created = create_pulling(c, &flags).await?;
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
