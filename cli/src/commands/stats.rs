//! `stats`: resource use, redrawn as it comes, or once with --no-stream.

use std::io::Write;

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::StatsRequest;
use tonic::transport::Channel;

use crate::{format, status};

pub async fn stats(c: &mut RindClient<Channel>, no_stream: bool, containers: Vec<String>) -> anyhow::Result<i32> {
    let mut s = c.stats(StatsRequest { ids: containers, stream: !no_stream }).await.map_err(status)?.into_inner();
    while let Some(r) = s.message().await.map_err(status)? {
        if !no_stream {
            print!("\x1b[2J\x1b[H");
        }
        println!("{:<14}{:<24}{:<9}{:<24}PIDS", "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT");
        for x in r.stats {
            let limit = if x.memory_limit == 0 || x.memory_limit >= 1 << 60 { "unlimited".into() } else { format::size(x.memory_limit) };
            println!(
                "{:<14}{:<24}{:<9}{:<24}{}",
                &x.id[..12.min(x.id.len())],
                x.name,
                format!("{:.2}%", x.cpu_percent),
                format!("{} / {}", format::size(x.memory_usage), limit),
                x.pids
            );
        }
        std::io::stdout().flush().ok();
    }
    Ok(0)
}
