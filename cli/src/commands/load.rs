//! `load` (`image load`): a `docker save` or OCI layout archive, streamed to
//! rindd.

use std::path::PathBuf;

use anyhow::Context;
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::LoadChunk;
use tonic::transport::Channel;

use crate::status;

/// Streams the archive as it is read: one of any size (or a fifo) is never
/// held in memory.
pub async fn load(c: &mut RindClient<Channel>, input: &PathBuf) -> anyhow::Result<i32> {
    let mut file = tokio::fs::File::open(input).await.with_context(|| format!("read {}", input.display()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<LoadChunk>(4);
    let (failed, read_error) = tokio::sync::oneshot::channel::<std::io::Error>();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        loop {
            let mut data = vec![0u8; 1 << 20];
            match file.read(&mut data).await {
                Ok(0) => return,
                Ok(n) => {
                    data.truncate(n);
                    if tx.send(LoadChunk { data }).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = failed.send(e);
                    // Keep the stream open: the call is cancelled below, so
                    // rindd never takes a truncated archive for a whole one.
                    return std::future::pending::<()>().await;
                }
            }
        }
    });
    let r = tokio::select! {
        r = c.load_image(tokio_stream::wrappers::ReceiverStream::new(rx)) => r.map_err(status)?.into_inner(),
        Ok(e) = read_error => return Err(anyhow::Error::new(e).context(format!("read {}", input.display()))),
    };
    for n in r.names {
        // An image that came without a name is known by its id, as docker says.
        if n.starts_with("sha256:") {
            println!("Loaded image ID: {n}");
        } else {
            println!("Loaded image: {n}");
        }
    }
    Ok(0)
}
