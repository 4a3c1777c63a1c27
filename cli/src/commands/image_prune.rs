//! `image prune`: remove dangling images (with `-a`, every image no
//! container uses), in docker's words.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{PruneImagesRequest, PruneImagesResponse};
use tonic::transport::Channel;

use crate::{format, status};

#[derive(clap::Args, Debug)]
pub struct PruneFlags {
    /// Remove every image no container uses, not only dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// docker's report: "Deleted Images:" and a line per name and image, a
/// blank line, then the total.
fn report(r: &PruneImagesResponse) -> String {
    let mut out = String::new();
    if !r.deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for d in &r.deleted {
            if d.untagged.is_empty() {
                out.push_str(&format!("deleted: {}\n", d.deleted));
            } else {
                out.push_str(&format!("untagged: {}\n", d.untagged));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("Total reclaimed space: {}\n", format::human_size(r.space_reclaimed, 4)));
    out
}

fn confirmed(all: bool) -> bool {
    super::confirm(if all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    })
}

pub async fn prune(c: &mut RindClient<Channel>, f: PruneFlags) -> anyhow::Result<i32> {
    if !f.force && !confirmed(f.all) {
        return Ok(0);
    }
    let r = c.prune_images(PruneImagesRequest { all: f.all }).await.map_err(status)?.into_inner();
    print!("{}", report(&r));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rind_api::v1::PrunedImage;

    #[test]
    fn the_report_is_dockers() {
        let r = PruneImagesResponse {
            deleted: vec![
                PrunedImage { untagged: "busybox:old".into(), deleted: String::new() },
                PrunedImage { untagged: String::new(), deleted: "sha256:ab".into() },
            ],
            space_reclaimed: 4_261_114,
        };
        assert_eq!(report(&r), "Deleted Images:\nuntagged: busybox:old\ndeleted: sha256:ab\n\nTotal reclaimed space: 4.261MB\n");
        assert_eq!(report(&PruneImagesResponse::default()), "Total reclaimed space: 0B\n");
    }
}
