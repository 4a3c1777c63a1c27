//! A container's network: checked and its ports chosen at create, attached
//! (namespace pinned, CNI ADD) before its first start, detached (CNI DEL)
//! when it is removed.

use super::*;
use oci_spec::image::ImageConfiguration;
use std::path::PathBuf;

use crate::network::{ports, NetworkError, Networks, PortMapping};

/// What create needs of the network: where the namespace will be pinned
/// (for the spec), and the lock on networks and host ports, held until the
/// row is in.
pub(super) struct Planned<'a> {
    pub netns: Option<PathBuf>,
    _planning: Option<std::sync::MutexGuard<'a, ()>>,
}

/// A container's /etc/hosts (pure): localhost, its hostname on its own
/// address (loopback before it has one), then its peers on a user-defined
/// network, each under its names.
pub(super) fn hosts_file(hostname: &str, own: Option<&str>, peers: &[(String, Vec<String>)]) -> String {
    let mut s = format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{hostname}\n", own.unwrap_or("127.0.0.1"));
    for (ip, names) in peers {
        s.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    s
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
            return Ok(Planned { netns: None, _planning: None });
        }
        let nets = self.nets(&c.run.network)?;
        // Until the row is in: no network rm in between, no other create
        // taking the same host port.
        let planning = self.network_plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Named by id or name: kept by name.
        c.run.network = nets.find(&c.run.network)?.name;
        let netns = Some(nets.netns(id));
        if c.run.ports.is_empty() {
            return Ok(Planned { netns, _planning: Some(planning) });
        }
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
        Ok(Planned { netns, _planning: Some(planning) })
    }

    /// Before a start: the namespace pinned and attached (kept from an
    /// earlier start when there is one).
    pub(super) async fn attach_network(&self, id: &str, c: &Config) -> Result<()> {
        if !on_network(c) {
            return Ok(());
        }
        let a = self.nets(&c.run.network)?.attach(id, &c.run.network, &c.run.ports).await?;
        if c.run.network == crate::network::DEFAULT_NETWORK {
            // No names on the default network (docker's rule): its own line only.
            let own = a.address().map(|x| x.ip);
            self.write_hosts(id, &hosts_file(c.run.hostname.as_deref().unwrap_or(""), own.as_deref(), &[]));
        } else {
            self.refresh_hosts(&c.run.network)?;
        }
        Ok(())
    }

    /// Rewrites the /etc/hosts of every container attached to a
    /// user-defined `network`, so each finds the others by name and short
    /// id as they come and go (nerdctl's way: no resolver to run).
    fn refresh_hosts(&self, network: &str) -> Result<()> {
        // One at a time: each sees every attachment made before it, so the
        // last one writes what is true now.
        let _one = self.hosts_refresh.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let attached = self.attached(network)?;
        let entries: Vec<(String, String, Vec<String>)> = attached
            .iter()
            .filter_map(|(id, name, a)| a.address().map(|x| (id.clone(), x.ip, vec![name.clone(), id[..12].to_string()])))
            .collect();
        for (id, ip, _) in &entries {
            let Ok(row) = self.get(id) else { continue };
            let hostname = Config::of(&row).ok().and_then(|c| c.run.hostname).unwrap_or_default();
            let peers: Vec<(String, Vec<String>)> =
                entries.iter().filter(|(other, _, _)| other != id).map(|(_, ip, names)| (ip.clone(), names.clone())).collect();
            self.write_hosts(id, &hosts_file(&hostname, Some(ip), &peers));
        }
        Ok(())
    }

    /// In place (the file is bind-mounted: a new inode would not be seen).
    fn write_hosts(&self, id: &str, content: &str) {
        use std::io::Write;
        let path = self.paths.data(id).join("hosts");
        let written = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).and_then(|mut f| f.write_all(content.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(id, path = %path.display(), error = %e, "write /etc/hosts");
        }
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
            Some(network) => {
                let done = nets.detach(id, &network).await;
                // The others forget it (rm deletes its row after: it is left out by its attachment gone).
                if network != crate::network::DEFAULT_NETWORK {
                    if let Err(e) = self.refresh_hosts(&network) {
                        tracing::warn!(id, network, error = %rind_common::error::Chain(&e), "refresh /etc/hosts");
                    }
                }
                done
            }
            None if c.is_none() => crate::network::netns::remove(&nets.netns(id)).map_err(NetworkError::from),
            None => Ok(()),
        };
        if let Err(e) = done {
            tracing::warn!(id, error = %rind_common::error::Chain(&e), "detach from the network");
        }
    }

    /// `network rm`: refused while a container (of any state) names it.
    pub fn remove_network(&self, name_or_id: &str) -> Result<String> {
        let nets = self.nets(name_or_id)?;
        let _planning = self.network_plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let name = nets.find(name_or_id)?.name;
        let users: Vec<String> =
            self.list()?.into_iter().filter(|r| Config::of(r).is_ok_and(|c| c.run.network == name)).map(|r| r.name).collect();
        if !users.is_empty() {
            return Err(NetworkError::InUse { name, containers: users.join(", ") }.into());
        }
        nets.remove(&name)?;
        Ok(name)
    }

    /// `network prune`: every network but the default that no container names.
    pub fn prune_networks(&self) -> Result<Vec<String>> {
        let Some(nets) = self.networks.get() else { return Ok(Vec::new()) };
        let _planning = self.network_plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let used: std::collections::HashSet<String> =
            self.list()?.iter().filter_map(|r| Config::of(r).ok()).map(|c| c.run.network).collect();
        let mut gone = Vec::new();
        for n in nets.list()? {
            if n.name != crate::network::DEFAULT_NETWORK && !used.contains(&n.name) {
                nets.remove(&n.name)?;
                gone.push(n.name);
            }
        }
        Ok(gone)
    }

    /// The containers attached to `network`: (id, name, attachment).
    pub fn attached(&self, network: &str) -> Result<Vec<(String, String, crate::network::Attachment)>> {
        let Some(nets) = self.networks.get() else { return Ok(Vec::new()) };
        Ok(self
            .list()?
            .into_iter()
            .filter(|r| Config::of(r).is_ok_and(|c| c.run.network == network))
            .filter_map(|r| nets.attachment(&r.id, network).map(|a| (r.id, r.name, a)))
            .collect())
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
