//! A container's network: checked and its ports chosen at create, attached
//! (namespace pinned, CNI ADD) before its first start, detached (CNI DEL)
//! when it is removed.

use super::*;
use std::path::PathBuf;

use crate::network::{ports, NetworkError, Networks, PortMapping};

/// What create needs of the network: where the namespace will be pinned
/// (for the spec), and the lock on host ports, held until the row is in.
pub(super) struct Planned<'a> {
    pub netns: Option<PathBuf>,
    _publishing: Option<std::sync::MutexGuard<'a, ()>>,
}

/// Whether the container has a network of rindd's (not none or host).
pub(super) fn on_network(c: &Config) -> bool {
    !matches!(c.run.network.as_str(), "" | "none" | "host")
}

impl Containers {
    fn nets(&self, network: &str) -> Result<&Arc<Networks>> {
        self.networks
            .get()
            .ok_or_else(|| NetworkError::NotFound(format!("{network} (rindd runs without networks: bridge = \"none\")")).into())
    }

    /// At create: the network (the default when none was asked for) exists,
    /// `-P` adds the image's EXPOSEd ports, host ports are chosen for
    /// `-p PORT` and none is published by another container.
    pub(super) fn plan_network(&self, id: &str, c: &mut Config, image: &ImageConfiguration) -> Result<Planned<'_>> {
        if c.run.network.is_empty() {
            c.run.network = if self.networks.get().is_some() { crate::network::DEFAULT_NETWORK } else { "none" }.to_string();
        }
        if c.publish_all {
            let exposed = image.config().as_ref().and_then(|x| x.exposed_ports().clone()).unwrap_or_default();
            for e in exposed {
                let m = ports::parse(&e).map_err(|e| ContainerError::Invalid(format!("the image's EXPOSE: {e}")))?;
                if !c.run.ports.iter().any(|p| p.container_port == m.container_port && p.protocol == m.protocol) {
                    c.run.ports.push(m);
                }
            }
        }
        if !on_network(c) {
            if !c.run.ports.is_empty() {
                return Err(ContainerError::Invalid(format!("ports cannot be published on network {:?}", c.run.network)));
            }
            return Ok(Planned { netns: None, _publishing: None });
        }
        let nets = self.nets(&c.run.network)?;
        nets.conflist(&c.run.network)?;
        let netns = Some(nets.netns(id));
        if c.run.ports.is_empty() {
            return Ok(Planned { netns, _publishing: None });
        }
        let publishing = self.publishing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let taken: Vec<PortMapping> = self.list()?.iter().filter_map(|r| Config::of(r).ok()).flat_map(|other| other.run.ports).collect();
        for i in 0..c.run.ports.len() {
            let p = &mut c.run.ports[i];
            if p.host_port == 0 {
                p.host_port = ports::free_port(&p.host_ip, &p.protocol)
                    .map_err(|e| ContainerError::Invalid(format!("no free host port for {}: {e}", p.key())))?;
            }
            let p = &c.run.ports[i];
            let clash = taken.iter().chain(&c.run.ports[..i]).find(|o| ports::clash(p, o));
            if clash.is_some() {
                let on = if p.host_ip.is_empty() { "0.0.0.0".to_string() } else { p.host_ip.clone() };
                return Err(ContainerError::Conflict(format!(
                    "host port {on}:{}/{} is already published by another container",
                    p.host_port, p.protocol
                )));
            }
        }
        Ok(Planned { netns, _publishing: Some(publishing) })
    }

    /// Before a start: the namespace pinned and attached (kept from an
    /// earlier start when there is one).
    pub(super) async fn attach_network(&self, id: &str, c: &Config) -> Result<()> {
        if !on_network(c) {
            return Ok(());
        }
        self.nets(&c.run.network)?.attach(id, &c.run.network, &c.run.ports).await?;
        Ok(())
    }

    /// At remove: CNI DEL and the namespace unpinned. A failure is logged:
    /// the container goes regardless.
    pub(super) async fn detach_network(&self, id: &str, c: Option<&Config>) {
        let Some(nets) = self.networks.get() else { return };
        // Without its config (an unreadable row, or none): whatever was kept.
        let network = match c {
            Some(c) => on_network(c).then(|| c.run.network.clone()),
            None => nets.attached_to(id),
        };
        let done = match network {
            Some(network) => nets.detach(id, &network).await,
            None if c.is_none() => crate::network::netns::remove(&nets.netns(id)).map_err(NetworkError::from),
            None => Ok(()),
        };
        if let Err(e) = done {
            tracing::warn!(id, error = %rind_common::error::Chain(&e), "detach from the network");
        }
    }

    /// At rindd's start: namespaces and attachments of containers that have
    /// no row (a remove cut short) go.
    pub(super) async fn detach_orphans(&self, known: &std::collections::HashSet<&str>) {
        let Some(nets) = self.networks.get() else { return };
        for id in nets.known_ids() {
            if !known.contains(id.as_str()) {
                tracing::info!(id, "detaching the network of a container that has no row");
                self.detach_network(&id, None).await;
            }
        }
    }
}
