//! `rm`: remove containers.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::RemoveContainerRequest;
use tonic::transport::Channel;

use super::each;

pub async fn rm(c: &RindClient<Channel>, force: bool, containers: &[String]) -> anyhow::Result<i32> {
    each(c, containers, |mut cl, id| async move { cl.remove_container(RemoveContainerRequest { id, force }).await.map(|_| ()) }).await
}
