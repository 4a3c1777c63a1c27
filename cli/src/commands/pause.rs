//! `pause` and `unpause`: freeze and thaw containers.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::ContainerRef;
use tonic::transport::Channel;

use super::each;

pub async fn pause(c: &RindClient<Channel>, containers: &[String]) -> anyhow::Result<i32> {
    each(c, containers, |mut cl, id| async move { cl.pause_container(ContainerRef { id }).await.map(|_| ()) }).await
}

pub async fn unpause(c: &RindClient<Channel>, containers: &[String]) -> anyhow::Result<i32> {
    each(c, containers, |mut cl, id| async move { cl.unpause_container(ContainerRef { id }).await.map(|_| ()) }).await
}
