//! `events`: container events, one line each, as they happen.

use std::io::Write;

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::EventsRequest;
use tonic::transport::Channel;

use crate::status;

pub async fn events(c: &mut RindClient<Channel>) -> anyhow::Result<i32> {
    let mut s = c.events(EventsRequest {}).await.map_err(status)?.into_inner();
    while let Some(e) = s.message().await.map_err(status)? {
        let mut attrs: Vec<String> = e.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        attrs.sort();
        println!("{} container {} {} ({})", e.time, e.action, e.id, attrs.join(", "));
        std::io::stdout().flush().ok();
    }
    Ok(0)
}
