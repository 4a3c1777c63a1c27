//! `attach`: join a running container's stdio (the session itself is
//! `crate::attach`).

use anyhow::bail;
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{AttachStart, ContainerRef};
use tonic::transport::Channel;

use crate::{attach, session_failed, status};

pub async fn attach(c: &mut RindClient<Channel>, no_stdin: bool, container: String) -> anyhow::Result<i32> {
    let info = c.inspect_container(ContainerRef { id: container.clone() }).await.map_err(status)?.into_inner();
    let v: serde_json::Value = serde_json::from_str(&info.json)?;
    if v[0]["State"]["Status"] != "running" {
        bail!("you cannot attach to a stopped container, start it first");
    }
    let tty = v[0]["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !no_stdin && v[0]["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let session = attach::Session { start: AttachStart { id: container, stdin, exec: None }, tty, exec: false };
    let ended = attach::run(c, session, |_| async { Ok(()) }).await.map_err(|e| session_failed(e, "the container"))?;
    Ok(match ended {
        attach::Ended::Exit(code) => code,
        attach::Ended::Detached => 0,
    })
}
