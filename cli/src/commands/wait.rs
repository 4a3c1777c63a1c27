//! `wait`: block until containers stop; print their exit codes.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::ContainerRef;
use tonic::transport::Channel;

use crate::errors;

pub async fn wait(c: &mut RindClient<Channel>, containers: Vec<String>) -> anyhow::Result<i32> {
    let mut code = 0;
    for id in containers {
        match c.wait(ContainerRef { id }).await {
            Ok(r) => println!("{}", r.into_inner().exit_code),
            Err(e) => {
                eprintln!("rind: {}", errors::message(&e));
                code = 1;
            }
        }
    }
    Ok(code)
}
