//! The ttrpc endpoint shims publish their events to (`--state/events.sock`,
//! containerd's Events.Forward). TaskExit drives the container's record;
//! the others only feed `rind events`.

use std::path::Path;
use std::sync::Arc;

use containerd_shim_protos::api::ForwardRequest;
use containerd_shim_protos::events::task::{TaskExit, TaskOOM};
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::{create_events, Events};
use ttrpc::r#async::TtrpcContext;

use crate::services::containers::Containers;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("serve shim events on {path}")]
    Serve {
        path: String,
        #[source]
        source: ttrpc::Error,
    },
}

struct Receiver {
    containers: Arc<Containers>,
}

#[async_trait::async_trait]
impl Events for Receiver {
    async fn forward(&self, _ctx: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        let Some(event) = req.envelope.as_ref().and_then(|e| e.event.as_ref()) else { return Ok(Empty::new()) };
        match event.type_url.trim_start_matches("type.googleapis.com/") {
            "containerd.events.TaskExit" => {
                let Ok(e) = TaskExit::parse_from_bytes(&event.value) else { return Ok(Empty::new()) };
                // Only the init's exit: execs end through Wait.
                if e.id == e.container_id {
                    let at = e.exited_at.as_ref().map(crate::shims::to_system_time).unwrap_or_else(std::time::SystemTime::now);
                    let c = self.containers.clone();
                    // Answer the shim at once; the record and teardown follow.
                    tokio::spawn(async move { c.task_exited(&e.container_id, e.pid, e.exit_status, at).await });
                }
            }
            "containerd.events.TaskOOM" => {
                if let Ok(e) = TaskOOM::parse_from_bytes(&event.value) {
                    self.containers.oom(&e.container_id);
                }
            }
            _ => {}
        }
        Ok(Empty::new())
    }
}

/// Starts serving; the server lives as long as the returned handle.
pub async fn serve(path: &Path, containers: Arc<Containers>) -> Result<ttrpc::r#async::Server, EventsError> {
    let _ = std::fs::remove_file(path);
    let addr = format!("unix://{}", path.display());
    let err = |source| EventsError::Serve { path: path.display().to_string(), source };
    let mut server =
        ttrpc::r#async::Server::new().bind(&addr).map_err(err)?.register_service(create_events(Arc::new(Receiver { containers })));
    server.start().await.map_err(err)?;
    // Only root (the shims) may publish.
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %rind_common::error::Chain(&e), "restrict events socket");
    }
    Ok(server)
}
