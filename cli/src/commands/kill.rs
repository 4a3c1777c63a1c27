//! `kill`: send a signal to containers.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::KillContainerRequest;
use tonic::transport::Channel;

use super::each;

pub async fn kill(c: &RindClient<Channel>, signal: &str, containers: &[String]) -> anyhow::Result<i32> {
    each(c, containers, |mut cl, id| {
        let signal = signal.to_string();
        async move { cl.kill_container(KillContainerRequest { id, signal }).await.map(|_| ()) }
    })
    .await
}
