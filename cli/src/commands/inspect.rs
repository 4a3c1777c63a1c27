//! `inspect`: a container's low-level information as JSON, or an image's
//! when no container has that name.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{ContainerRef, InspectImageRequest};
use tonic::transport::Channel;

use crate::{errors, format};

pub async fn inspect(c: &mut RindClient<Channel>, format: Option<&str>, containers: Vec<String>) -> anyhow::Result<i32> {
    let mut code = 0;
    for id in containers {
        match c.inspect_container(ContainerRef { id: id.clone() }).await {
            Ok(r) => print_inspect(&r.into_inner().json, format)?,
            Err(e) => {
                // Not a container: maybe an image.
                match c.inspect_image(InspectImageRequest { name: id }).await {
                    Ok(r) => print_inspect(&r.into_inner().json, format)?,
                    Err(_) => {
                        eprintln!("rind: {}", errors::message(&e));
                        code = 1;
                    }
                }
            }
        }
    }
    Ok(code)
}

/// The JSON as rindd sent it, or each item through a `--format` template.
pub fn print_inspect(json: &str, format: Option<&str>) -> anyhow::Result<()> {
    match format {
        Some(f) => {
            let v: serde_json::Value = serde_json::from_str(json)?;
            for item in v.as_array().cloned().unwrap_or_default() {
                println!("{}", format::render(f, &item));
            }
        }
        None => println!("{json}"),
    }
    Ok(())
}
