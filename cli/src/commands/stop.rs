//! `stop`: the stop signal, then SIGKILL after the timeout.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::StopContainerRequest;
use tonic::transport::Channel;

use super::each;

pub async fn stop(c: &RindClient<Channel>, time: Option<i64>, containers: &[String]) -> anyhow::Result<i32> {
    each(c, containers, |mut cl, id| async move {
        cl.stop_container(StopContainerRequest { id, timeout: time.unwrap_or(-1) }).await.map(|_| ())
    })
    .await
}
