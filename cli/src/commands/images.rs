//! The image verbs: `images` (`image ls`), `rmi` (`image rm`), `tag`
//! (`image tag`) and `image inspect`. `load` has its own file.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{InspectImageRequest, ListImagesRequest, RemoveImageRequest, TagImageRequest};
use tonic::transport::Channel;

use super::inspect::print_inspect;
use crate::{format, status};

pub async fn images(c: &mut RindClient<Channel>, quiet: bool) -> anyhow::Result<i32> {
    let r = c.list_images(ListImagesRequest {}).await.map_err(status)?.into_inner();
    if !quiet {
        println!("{:<40} {:<14} {:<8} SIZE", "NAME", "IMAGE ID", "LAYERS");
    }
    for i in r.images {
        if quiet {
            println!("{}", i.name);
        } else {
            let short = i.config_digest.trim_start_matches("sha256:").chars().take(12).collect::<String>();
            println!("{:<40} {:<14} {:<8} {}", i.name, short, i.layers.len(), format::size(i.size));
        }
    }
    Ok(0)
}

pub async fn rmi(c: &mut RindClient<Channel>, name: String, force: bool) -> anyhow::Result<i32> {
    c.remove_image(RemoveImageRequest { name: name.clone(), force }).await.map_err(status)?;
    println!("Untagged: {name}");
    Ok(0)
}

pub async fn tag(c: &mut RindClient<Channel>, source: String, target: String) -> anyhow::Result<i32> {
    c.tag_image(TagImageRequest { source, target }).await.map_err(status)?;
    Ok(0)
}

pub async fn inspect(c: &mut RindClient<Channel>, format: Option<&str>, images: Vec<String>) -> anyhow::Result<i32> {
    for name in images {
        let r = c.inspect_image(InspectImageRequest { name }).await.map_err(status)?.into_inner();
        print_inspect(&r.json, format)?;
    }
    Ok(0)
}
