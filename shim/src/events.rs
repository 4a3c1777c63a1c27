//! Events to containerd (or rindd) through the events service at
//! TTRPC_ADDRESS. TaskExit is never dropped: it is retried with back-off
//! until it is delivered or the task is deleted. `TaskEvents` builds the
//! task events from the shim's own types.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{MessageDyn, MessageField, MessageFull};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use containerd_shim_protos::topics;
use tokio::sync::Mutex;

use crate::exit_file::Exit;
use crate::process::ProcessId;
use crate::rootfs::Mount;
use crate::stdio::StdioConfig;

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

/// The task events of the one container. Verbs publish theirs while they
/// hold the process lock, so one process's events go out in the order of
/// its states (TaskStart before its TaskExit, TaskPaused before TaskResumed).
pub struct TaskEvents {
    publisher: Arc<Publisher>,
    container_id: String,
    /// The init was deleted: a TaskExit not delivered yet is no longer retried.
    deleted: Arc<AtomicBool>,
}

impl TaskEvents {
    pub fn new(publisher: Arc<Publisher>, container_id: String, deleted: Arc<AtomicBool>) -> TaskEvents {
        TaskEvents { publisher, container_id, deleted }
    }

    pub async fn created(&self, bundle: &str, rootfs: &[Mount], stdio: &StdioConfig, pid: i32) {
        let mut ev = TaskCreate::new();
        ev.container_id = self.container_id.clone();
        ev.bundle = bundle.to_string();
        ev.rootfs = rootfs
            .iter()
            .map(|m| {
                let mut w = containerd_shim_protos::types::mount::Mount::new();
                (w.type_, w.source, w.target, w.options) = (m.kind.clone(), m.source.clone(), m.target.clone(), m.options.clone());
                w
            })
            .collect();
        let mut io = TaskIO::new();
        (io.stdin, io.stdout, io.stderr, io.terminal) = (stdio.stdin.clone(), stdio.stdout.clone(), stdio.stderr.clone(), stdio.terminal);
        ev.io = MessageField::some(io);
        ev.pid = pid as u32;
        self.publisher.publish(topics::TASK_CREATE_EVENT_TOPIC, ev).await;
    }

    /// TaskStart for the init, TaskExecStarted for an exec.
    pub async fn started(&self, id: &ProcessId, pid: i32) {
        match id {
            ProcessId::Init => {
                let mut ev = TaskStart::new();
                ev.container_id = self.container_id.clone();
                ev.pid = pid as u32;
                self.publisher.publish(topics::TASK_START_EVENT_TOPIC, ev).await;
            }
            ProcessId::Exec(exec_id) => {
                let mut ev = TaskExecStarted::new();
                ev.container_id = self.container_id.clone();
                ev.exec_id = exec_id.clone();
                ev.pid = pid as u32;
                self.publisher.publish(topics::TASK_EXEC_STARTED_EVENT_TOPIC, ev).await;
            }
        }
    }

    pub async fn exec_added(&self, exec_id: &str) {
        let mut ev = TaskExecAdded::new();
        ev.container_id = self.container_id.clone();
        ev.exec_id = exec_id.to_string();
        self.publisher.publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, ev).await;
    }

    pub async fn paused(&self) {
        let mut ev = TaskPaused::new();
        ev.container_id = self.container_id.clone();
        self.publisher.publish(topics::TASK_PAUSED_EVENT_TOPIC, ev).await;
    }

    pub async fn resumed(&self) {
        let mut ev = TaskResumed::new();
        ev.container_id = self.container_id.clone();
        self.publisher.publish(topics::TASK_RESUMED_EVENT_TOPIC, ev).await;
    }

    /// The init was deleted, with its exit.
    pub async fn deleted(&self, pid: i32, exit: &Exit) {
        let mut ev = TaskDelete::new();
        ev.container_id = self.container_id.clone();
        ev.pid = pid as u32;
        ev.exit_status = exit.status;
        ev.exited_at = MessageField::some(timestamp(exit.time()));
        self.publisher.publish(topics::TASK_DELETE_EVENT_TOPIC, ev).await;
    }

    /// TaskExit, retried until delivered or the task is deleted.
    pub fn exited(&self, id: &ProcessId, exit: &Exit) {
        let deleted = self.deleted.clone();
        self.publisher
            .publish_until(topics::TASK_EXIT_EVENT_TOPIC, task_exit(&self.container_id, id, exit), move || deleted.load(Ordering::SeqCst));
    }

    /// An OOM kill in the container's memory cgroup.
    pub fn oom(&self) {
        let (publisher, container_id) = (self.publisher.clone(), self.container_id.clone());
        tokio::spawn(async move {
            let mut ev = TaskOOM::new();
            ev.container_id = container_id;
            publisher.publish(topics::TASK_OOM_EVENT_TOPIC, ev).await;
        });
    }
}

/// containerd names the init's exit by the container id, an exec's by its exec id.
fn task_exit(container_id: &str, id: &ProcessId, exit: &Exit) -> TaskExit {
    let mut ev = TaskExit::new();
    ev.container_id = container_id.to_string();
    ev.id = match id {
        ProcessId::Init => container_id.to_string(),
        ProcessId::Exec(e) => e.clone(),
    };
    ev.pid = exit.pid as u32;
    ev.exit_status = exit.status;
    ev.exited_at = MessageField::some(timestamp(exit.time()));
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_exit_names_the_init_by_the_container_and_an_exec_by_its_id() {
        let exit = Exit::now(7, 137);
        let ev = task_exit("c1", &ProcessId::Init, &exit);
        assert_eq!((ev.container_id.as_str(), ev.id.as_str(), ev.pid, ev.exit_status), ("c1", "c1", 7, 137));
        let ev = task_exit("c1", &ProcessId::Exec("e1".into()), &exit);
        assert_eq!(ev.id, "e1");
        assert_eq!(ev.exited_at.seconds, timestamp(exit.time()).seconds);
    }

    #[test]
    fn to_any_names_the_event_by_its_full_proto_name() {
        assert_eq!(to_any(&TaskOOM::new()).type_url, "containerd.events.TaskOOM");
    }
}
