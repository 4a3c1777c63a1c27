//! `rename`: give a container another name.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::RenameContainerRequest;
use tonic::transport::Channel;

use crate::status;

pub async fn rename(c: &mut RindClient<Channel>, container: String, name: String) -> anyhow::Result<i32> {
    c.rename_container(RenameContainerRequest { id: container, name }).await.map_err(status)?;
    Ok(0)
}
