//! `version`: ours and rindd's.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::VersionRequest;
use tonic::transport::Channel;

use crate::status;

pub async fn version(c: &mut RindClient<Channel>) -> anyhow::Result<i32> {
    let v = c.version(VersionRequest {}).await.map_err(status)?.into_inner();
    println!("Client: {}\nServer: {} (API {})", env!("CARGO_PKG_VERSION"), v.version, v.api_version);
    Ok(0)
}
