//! rind.v1.Rind: the CLI's API, a thin adapter over `services/`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rind_api::v1::rind_server::Rind;
use rind_api::v1::*;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::content::ContentStore;
use crate::services::images::{self, ImageError};
use crate::store::{Store, StoreError};

/// The one mapping from daemon errors to gRPC codes.
fn status_of(e: ImageError) -> Status {
    match &e {
        ImageError::Archive(_) | ImageError::Unpack(crate::images::unpack::UnpackError::Hostile { .. }) | ImageError::Config { .. } => {
            Status::invalid_argument(e.to_string())
        }
        ImageError::Store(StoreError::NotFound(_)) => Status::not_found(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

pub struct RindApi {
    pub root: PathBuf,
    pub content: Arc<ContentStore>,
    pub store: Arc<Mutex<Store>>,
}

#[tonic::async_trait]
impl Rind for RindApi {
    async fn version(&self, _req: Request<VersionRequest>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse { version: env!("CARGO_PKG_VERSION").into(), api_version: rind_api::API_VERSION.into() }))
    }

    async fn load_image(&self, req: Request<Streaming<LoadChunk>>) -> Result<Response<LoadImageResponse>, Status> {
        // Spool the stream to the ingest area first: the archive is read in one pass after.
        let ingest = self.root.join("ingest");
        tokio::fs::create_dir_all(&ingest).await.map_err(|e| Status::internal(format!("create {}: {e}", ingest.display())))?;
        // Unique per load: concurrent loads share one runtime thread.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let spool = ingest.join(format!("load-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        let mut file = tokio::fs::File::create(&spool).await.map_err(|e| Status::internal(format!("create {}: {e}", spool.display())))?;
        let mut stream = req.into_inner();
        let received = async {
            use tokio::io::AsyncWriteExt;
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk?.data).await.map_err(|e| Status::internal(e.to_string()))?;
            }
            file.flush().await.map_err(|e| Status::internal(e.to_string()))
        }
        .await;
        if let Err(e) = received {
            let _ = tokio::fs::remove_file(&spool).await;
            return Err(e);
        }
        let (root, content, store, path) = (self.root.clone(), self.content.clone(), self.store.clone(), spool.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&path).map_err(|e| Status::internal(format!("open {}: {e}", path.display())))?;
            let mut store = store.lock().expect("store lock");
            images::load(&root, &content, &mut store, f).map_err(status_of)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()));
        let _ = tokio::fs::remove_file(&spool).await;
        let loaded = loaded??;
        Ok(Response::new(LoadImageResponse { names: loaded.into_iter().flat_map(|l| l.names).collect() }))
    }

    async fn list_images(&self, _req: Request<ListImagesRequest>) -> Result<Response<ListImagesResponse>, Status> {
        let rows = self.store.lock().expect("store lock").images().map_err(|e| Status::internal(e.to_string()))?;
        let images =
            rows.into_iter().map(|r| Image { name: r.name, config_digest: r.config, layers: r.layers, created: r.created }).collect();
        Ok(Response::new(ListImagesResponse { images }))
    }

    async fn remove_image(&self, req: Request<RemoveImageRequest>) -> Result<Response<RemoveImageResponse>, Status> {
        let req = req.into_inner();
        let mut store = self.store.lock().expect("store lock");
        if store.image(&req.name).map_err(|e| Status::internal(e.to_string()))?.is_none() {
            return Err(Status::not_found(format!("image {} not found", req.name)));
        }
        let users: Vec<String> = store
            .containers()
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .filter(|c| c.image == req.name)
            .map(|c| c.name)
            .collect();
        if !users.is_empty() && !req.force {
            return Err(Status::failed_precondition(format!(
                "image {} is used by container(s) {}: use --force",
                req.name,
                users.join(", ")
            )));
        }
        let removed = store.delete_image(&req.name).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(RemoveImageResponse { removed }))
    }
}
