//! `top`: the processes of a container, as rindd lists them.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::ContainerRef;
use tonic::transport::Channel;

use crate::status;

pub async fn top(c: &mut RindClient<Channel>, container: String) -> anyhow::Result<i32> {
    let t = c.top(ContainerRef { id: container }).await.map_err(status)?.into_inner();
    println!("{}", t.titles.join("\t"));
    for r in t.rows {
        println!("{}", r.fields.join("\t"));
    }
    Ok(0)
}
