//! `container prune`: remove every stopped container.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::PruneContainersRequest;
use tonic::transport::Channel;

use crate::status;

pub async fn prune(c: &mut RindClient<Channel>) -> anyhow::Result<i32> {
    let r = c.prune_containers(PruneContainersRequest {}).await.map_err(status)?.into_inner();
    println!("Deleted Containers:");
    for id in r.deleted {
        println!("{id}");
    }
    Ok(0)
}
