//! `start`: start containers; with -a or -i, one, attached to it.

use anyhow::bail;
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{AttachStart, ContainerRef};
use tonic::transport::Channel;

use super::each;
use crate::{attach, session_failed, start_failure, status};

pub async fn start(c: &mut RindClient<Channel>, attach: bool, interactive: bool, containers: &[String]) -> anyhow::Result<i32> {
    if attach || interactive {
        let [name] = containers else { bail!("start -a takes one container") };
        let info = c.inspect_container(ContainerRef { id: name.clone() }).await.map_err(status)?.into_inner();
        let v: serde_json::Value = serde_json::from_str(&info.json)?;
        let tty = v[0]["Config"]["Tty"].as_bool().unwrap_or(false);
        let session = attach::Session { start: AttachStart { id: name.clone(), stdin: interactive, exec: None }, tty, exec: false };
        let id = name.clone();
        let ended = attach::run(c, session, |mut client| async move {
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
    each(c, containers, |mut cl, id| async move { cl.start_container(ContainerRef { id }).await.map(|_| ()) }).await
}
