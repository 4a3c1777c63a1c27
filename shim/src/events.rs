//! Events to containerd (or rindd) through the events service at
//! TTRPC_ADDRESS. TaskExit is never dropped: it is retried with back-off
//! until it is delivered or the task is deleted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{MessageDyn, MessageField, MessageFull};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use tokio::sync::Mutex;

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

/// containerd resolves event types by their full proto name.
pub fn to_any(m: &dyn MessageDyn) -> Any {
    let mut a = Any::new();
    a.type_url = m.descriptor_dyn().full_name().to_string();
    a.value = m.write_to_bytes_dyn().unwrap_or_default();
    a
}

pub struct Publisher {
    address: String,
    namespace: String,
    client: Mutex<Option<EventsClient>>,
}

impl Publisher {
    pub fn new(address: String, namespace: String) -> Arc<Publisher> {
        Arc::new(Publisher { address, namespace, client: Mutex::new(None) })
    }

    async fn send(&self, topic: &str, event: &dyn MessageDyn) -> Result<(), String> {
        if self.address.is_empty() {
            return Ok(());
        }
        let mut guard = self.client.lock().await;
        if guard.is_none() {
            let addr = if self.address.starts_with("unix://") { self.address.clone() } else { format!("unix://{}", self.address) };
            let c = Client::connect(&addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
            *guard = Some(EventsClient::new(c));
        }
        let mut env = Envelope::new();
        env.timestamp = MessageField::some(timestamp(SystemTime::now()));
        env.namespace = self.namespace.clone();
        env.topic = topic.to_string();
        env.event = MessageField::some(to_any(event));
        let mut req = ForwardRequest::new();
        req.envelope = MessageField::some(env);
        let client = guard.as_ref().expect("connected above");
        match client.forward(ttrpc::context::with_timeout(5_000_000_000), &req).await {
            Ok(_) => Ok(()),
            Err(e) => {
                *guard = None;
                Err(e.to_string())
            }
        }
    }

    /// Best effort: logged when it fails.
    pub async fn publish<M: MessageFull>(&self, topic: &str, event: M) {
        if let Err(e) = self.send(topic, &event).await {
            tracing::warn!(topic, error = %e, "publish event");
        }
    }

    /// Retries until delivered or `cancelled` returns true (the task was deleted).
    pub fn publish_until<M: MessageFull>(self: &Arc<Self>, topic: &'static str, event: M, cancelled: impl Fn() -> bool + Send + 'static) {
        let p = self.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(50);
            while let Err(e) = p.send(topic, &event).await {
                if cancelled() {
                    return;
                }
                tracing::warn!(topic, error = %e, retry_in = ?wait, "publish event");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        });
    }
}
