//! `push` (`image push`): rindd sends the image's blobs the registry lacks,
//! then its manifest; the CLI shows docker's progress.

use anyhow::Context;
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::PushImageRequest;
use tonic::transport::Channel;

use super::pull::{Show, View};
use crate::credentials;
use crate::status;

pub async fn push(c: &mut RindClient<Channel>, image: &str, quiet: bool) -> anyhow::Result<i32> {
    let auth = credentials::lookup(&credentials::registry_of(image)).context("read registry credentials")?;
    let mut stream = c.push_image(PushImageRequest { reference: image.to_string(), auth }).await.map_err(status)?.into_inner();
    let show = Show::for_stdout(quiet);
    let mut view = View::new(show);
    while let Some(p) = stream.message().await.map_err(|e| {
        view.abandon();
        status(e)
    })? {
        if p.id.is_empty() && p.status.is_empty() {
            if show == Show::Quiet {
                println!("{image}");
            }
            continue;
        }
        view.show(&p);
    }
    view.finish();
    Ok(0)
}
