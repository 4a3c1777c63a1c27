//! `history` (`image history`): the layers of an image as its config
//! records them, newest first, in docker's columns.

use std::time::SystemTime;

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{HistoryEntry, ImageHistoryRequest};
use tonic::transport::Channel;

use crate::{format, status};

#[derive(clap::Args, Debug)]
pub struct HistoryFlags {
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// json, or a template such as '{{.CreatedBy}} {{.Size}}'
    #[arg(long)]
    pub format: Option<String>,
    pub image: String,
}

/// docker's IMAGE column: 12 hex digits of the id, `<missing>` as it is.
fn id_of(e: &HistoryEntry, no_trunc: bool) -> String {
    match e.id.strip_prefix("sha256:") {
        Some(hex) if !no_trunc => hex.chars().take(12).collect(),
        _ => e.id.clone(),
    }
}

/// docker's CREATED BY: tabs as spaces, cut to 45 characters unless told not to.
fn created_by(e: &HistoryEntry, no_trunc: bool) -> String {
    let s = e.created_by.replace('\t', " ");
    if no_trunc {
        s
    } else {
        format::ellipsis(&s, 45)
    }
}

pub async fn history(c: &mut RindClient<Channel>, f: HistoryFlags) -> anyhow::Result<i32> {
    let r = c.image_history(ImageHistoryRequest { name: f.image }).await.map_err(status)?.into_inner();
    if f.quiet {
        for e in &r.entries {
            println!("{}", id_of(e, f.no_trunc));
        }
        return Ok(0);
    }
    let now = SystemTime::now();
    if let Some(template) = &f.format {
        for e in &r.entries {
            let v = serde_json::json!({
                "ID": id_of(e, f.no_trunc), "CreatedSince": format::since(&e.created, now), "CreatedAt": e.created,
                "CreatedBy": created_by(e, f.no_trunc), "Size": format::human_size(e.size, 3), "Comment": e.comment,
            });
            if template == "json" {
                println!("{v}");
            } else {
                println!("{}", format::render(template, &v));
            }
        }
        return Ok(0);
    }
    let mut table = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"].map(String::from).to_vec()];
    for e in &r.entries {
        table.push(vec![
            id_of(e, f.no_trunc),
            format::since(&e.created, now),
            created_by(e, f.no_trunc),
            format::human_size(e.size, 3),
            e.comment.clone(),
        ]);
    }
    print!("{}", format::table(&table));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_cut_as_dockers() {
        let e = HistoryEntry {
            id: format!("sha256:{}", "ab".repeat(32)),
            created_by: format!("/bin/sh -c\t#(nop) {}", "x".repeat(60)),
            ..Default::default()
        };
        assert_eq!(id_of(&e, false), "abababababab");
        assert_eq!(id_of(&e, true), e.id);
        let cut = created_by(&e, false);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.starts_with("/bin/sh -c #(nop) x") && cut.ends_with('…'), "{cut}");
        assert_eq!(created_by(&e, true), e.created_by.replace('\t', " "));
        let missing = HistoryEntry { id: "<missing>".into(), ..Default::default() };
        assert_eq!(id_of(&missing, false), "<missing>");
    }
}
