//! `logs`: a container's output (its stderr on our stderr), the last
//! `--tail` lines or those since `--since`, and with -f as it comes.

use std::io::Write;

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::LogsRequest;
use tonic::transport::Channel;

use crate::status;

pub async fn logs(
    c: &mut RindClient<Channel>,
    follow: bool,
    tail: &str,
    since: Option<&str>,
    timestamps: bool,
    container: String,
) -> anyhow::Result<i32> {
    let tail = if tail == "all" { -1 } else { tail.parse::<i64>().map_err(|_| anyhow::anyhow!("--tail {tail:?}: a number or all"))? };
    let req = LogsRequest { id: container, follow, tail, since: since.map(since_arg).unwrap_or_default() };
    let mut s = c.logs(req).await.map_err(status)?.into_inner();
    while let Some(chunk) = s.message().await.map_err(status)? {
        let prefix = if timestamps { format!("{} ", chunk.time) } else { String::new() };
        if chunk.stream == "stderr" {
            let mut e = std::io::stderr().lock();
            e.write_all(prefix.as_bytes())?;
            e.write_all(&chunk.data)?;
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(prefix.as_bytes())?;
            o.write_all(&chunk.data)?;
            o.flush()?;
        }
    }
    Ok(0)
}

fn since_arg(s: &str) -> String {
    // A duration ("10m") means that long ago.
    match humantime::parse_duration(s) {
        Ok(d) => {
            let t = std::time::SystemTime::now() - d;
            t.duration_since(std::time::UNIX_EPOCH).map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos())).unwrap_or_default()
        }
        Err(_) => s.to_string(),
    }
}
