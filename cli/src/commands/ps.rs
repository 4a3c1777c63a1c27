//! `ps` (and `container ls`): list containers, filtered, as a table, ids,
//! JSON or a template.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{Container, ListContainersRequest};
use tonic::transport::Channel;

use crate::{format, status};

pub async fn ps(c: &mut RindClient<Channel>, all: bool, quiet: bool, filter: &[String], format: Option<&str>) -> anyhow::Result<i32> {
    let list = list_containers(c, all).await?;
    let mut kept = Vec::new();
    for x in list {
        let mut ok = true;
        for f in filter {
            ok &= format::matches(f, &x).map_err(|e| anyhow::anyhow!(e))?;
        }
        if ok {
            kept.push(x);
        }
    }
    print_containers(kept, quiet, format);
    Ok(0)
}

/// `container ls`: `ps` without filters or templates.
pub async fn ls(c: &mut RindClient<Channel>, all: bool, quiet: bool) -> anyhow::Result<i32> {
    let list = list_containers(c, all).await?;
    print_containers(list, quiet, None);
    Ok(0)
}

/// The containers; those rindd could not read are named on stderr, as
/// docker prints its warnings, and the listing goes on.
async fn list_containers(c: &mut RindClient<Channel>, all: bool) -> anyhow::Result<Vec<Container>> {
    let r = c.list_containers(ListContainersRequest { all }).await.map_err(status)?.into_inner();
    for w in &r.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(r.containers)
}

fn print_containers(list: Vec<Container>, quiet: bool, format: Option<&str>) {
    if quiet {
        for x in list {
            println!("{}", &x.id[..12.min(x.id.len())]);
        }
        return;
    }
    if let Some(f) = format {
        for x in list {
            let v = serde_json::json!({
                "ID": &x.id[..12.min(x.id.len())], "Names": x.name, "Image": x.image, "Command": x.command,
                "CreatedAt": x.created, "State": format::state_name(x.state()), "Status": x.status, "Labels": x.labels, "ExitCode": x.exit_code,
            });
            if f == "json" {
                println!("{v}");
            } else {
                println!("{}", format::render(f, &v));
            }
        }
        return;
    }
    println!("{:<14}{:<20}{:<28}{:<30}NAMES", "CONTAINER ID", "IMAGE", "COMMAND", "STATUS");
    for x in list {
        let mut cmd = format!("\"{}\"", x.command);
        if cmd.len() > 24 {
            cmd = format!("{}…\"", &cmd[..cmd.char_indices().nth(21).map(|(i, _)| i).unwrap_or(cmd.len())]);
        }
        println!("{:<14}{:<20}{:<28}{:<30}{}", &x.id[..12.min(x.id.len())], x.image, cmd, x.status, x.name);
    }
}
