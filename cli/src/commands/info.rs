//! `info`: what rindd runs and holds.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::InfoRequest;
use tonic::transport::Channel;

use crate::status;

pub async fn info(c: &mut RindClient<Channel>) -> anyhow::Result<i32> {
    let i = c.info(InfoRequest {}).await.map_err(status)?.into_inner();
    println!("Containers: {}\n Running: {}\n Paused: {}\n Stopped: {}", i.containers, i.running, i.paused, i.stopped);
    println!("Images: {}\nStorage Driver: {}\nCgroup Version: {}", i.images, i.storage_driver, i.cgroup_version);
    println!("Runtime: {}\nKernel Version: {}\nRoot Dir: {}\nState Dir: {}", i.runtime, i.kernel, i.root, i.state);
    Ok(0)
}
