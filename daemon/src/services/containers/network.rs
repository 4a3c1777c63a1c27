//! A container's networks: checked and its ports chosen at create,
//! attached (namespace pinned, CNI ADD) while its shim starts, joined or
//! left by `network connect`/`disconnect`, detached (CNI DEL) when it is
//! removed; and the /etc/hosts files that give names on user-defined
//! networks.

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
pub(super) fn hosts_file(c: &Config, own: Option<&str>, peers: &[(String, Vec<String>)]) -> String {
    let hostname = c.run.hostname.as_deref().unwrap_or("");
    let mut s = format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{hostname}\n", own.unwrap_or("127.0.0.1"));
    for (host, ip) in &c.run.add_hosts {
        s.push_str(&format!("{ip}\t{host}\n"));
    }
    for (ip, names) in peers {
        s.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    s
}

/// The container's resolv.conf (pure): the host's, with its nameservers,
/// search domains or options replaced by `--dns`, `--dns-search`,
/// `--dns-option` when given, as docker does.
pub(super) fn resolv_conf(host: &str, c: &Config) -> String {
    let r = &c.run;
    let replaced = |l: &str| {
        let key = l.split_whitespace().next().unwrap_or("");
        (!r.dns.is_empty() && key == "nameserver")
            || (!r.dns_search.is_empty() && (key == "search" || key == "domain"))
            || (!r.dns_options.is_empty() && key == "options")
    };
    let mut out: String = host.lines().filter(|l| !replaced(l)).map(|l| format!("{l}\n")).collect();
    for ns in &r.dns {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    for (key, values) in [("search", &r.dns_search), ("options", &r.dns_options)] {
        if !values.is_empty() {
            out.push_str(&format!("{key} {}\n", values.join(" ")));
        }
    }
    out
}

/// Checks `--ip`, `--network-alias`, `--add-host` and `--dns` against the
/// container's network (None: none or host), as docker does; `--ip` is kept
/// with its subnet's prefix (as host-local takes it) and `host-gateway` as
/// the network's gateway (pure).
pub(super) fn check_options(run: &mut crate::services::spec::RunOptions, net: Option<&crate::network::NetworkInfo>) -> Result<()> {
    let user_defined = net.filter(|n| n.name != crate::network::DEFAULT_NETWORK);
    let invalid = |m: String| ContainerError::Invalid(m);
    if let Some(ip) = run.ip.clone() {
        let n = user_defined.ok_or_else(|| invalid(format!("--ip {ip}: an address can be chosen only on a user-defined network")))?;
        let addr: std::net::Ipv4Addr = ip.parse().map_err(|_| invalid(format!("--ip {ip:?}: not an IPv4 address")))?;
        let cidr = crate::network::subnet::Cidr::parse(&n.subnet, "subnet")?;
        let (first, last) = cidr.hosts();
        if !(first..=last).contains(&addr) || addr.to_string() == n.gateway {
            return Err(invalid(format!(
                "--ip {addr} is not a host address of network {}'s subnet {cidr} (its gateway is {})",
                n.name, n.gateway
            )));
        }
        run.ip = Some(format!("{addr}/{}", cidr.len));
    }
    if let Some(a) = run.network_aliases.first() {
        if user_defined.is_none() {
            return Err(invalid(format!("--network-alias {a}: aliases work only on user-defined networks")));
        }
    }
    if let Some(a) = run.network_aliases.iter().find(|a| !crate::names::follows_rule(a)) {
        return Err(invalid(format!("invalid --network-alias {a:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]+ is allowed")));
    }
    for (host, ip) in &mut run.add_hosts {
        if ip == "host-gateway" {
            *ip = net
                .map(|n| n.gateway.clone())
                .ok_or_else(|| invalid(format!("--add-host {host}:host-gateway needs a network with a gateway")))?;
        } else if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(format!("invalid --add-host {host}:{ip}: not an IP address")));
        }
    }
    if let Some(d) = run.dns.iter().find(|d| d.parse::<std::net::IpAddr>().is_err()) {
        return Err(invalid(format!("invalid --dns {d:?}: not an IP address")));
    }
    Ok(())
}

/// One of a container's networks: its first (the run's `--network`) or
/// one it was connected to since.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub network: String,
    /// eth0 for the first network, eth1… in the order of connects.
    pub ifname: String,
    pub aliases: Vec<String>,
    /// With its subnet's prefix.
    pub ip: Option<String>,
}

/// A container attached to a network, as its peers see it.
pub struct Peer {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub attachment: crate::network::Attachment,
}

impl Config {
    /// The container's networks: the first, then those connected since.
    pub fn links(&self) -> Vec<Link> {
        let mut out = Vec::new();
        if on_network(self) {
            out.push(Link {
                network: self.run.network.clone(),
                ifname: crate::network::IFNAME.to_string(),
                aliases: self.run.network_aliases.clone(),
                ip: self.run.ip.clone(),
            });
        }
        out.extend(self.connected.iter().cloned());
        out
    }
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
            check_options(&mut c.run, None)?;
            return Ok(Planned { netns: None, _planning: None });
        }
        let nets = self.nets(&c.run.network)?;
        // Until the row is in: no network rm in between, no other create
        // taking the same host port or address.
        let planning = self.network_plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let info = nets.find(&c.run.network)?;
        // Named by id or name: kept by name.
        c.run.network = info.name.clone();
        check_options(&mut c.run, Some(&info))?;
        let netns = Some(nets.netns(id));
        if c.run.ports.is_empty() && c.run.ip.is_none() {
            return Ok(Planned { netns, _planning: Some(planning) });
        }
        let others: Vec<(String, Config)> = self.list()?.into_iter().filter_map(|r| Config::of(&r).ok().map(|c| (r.name, c))).collect();
        if let Some(ip) = &c.run.ip {
            if let Some((name, _)) =
                others.iter().find(|(_, o)| o.links().iter().any(|l| l.network == c.run.network && l.ip.as_ref() == Some(ip)))
            {
                return Err(ContainerError::Conflict(format!("address {ip} is already taken by container {name}")));
            }
        }
        let taken: Vec<PortMapping> = others.into_iter().flat_map(|(_, other)| other.run.ports).collect();
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

    /// Before a start: the namespace pinned and attached to each of the
    /// container's networks (kept from an earlier start when there is one).
    pub(super) async fn attach_network(&self, id: &str, c: &Config) -> Result<()> {
        for l in c.links() {
            // Ports are published on the first network only, as docker does.
            let ports = if l.ifname == crate::network::IFNAME { c.run.ports.as_slice() } else { &[] };
            self.nets(&l.network)?.attach(id, &l.network, &l.ifname, ports, l.ip.as_deref()).await?;
        }
        self.refresh_hosts(id, c)
    }

    /// Rewrites the /etc/hosts of `id` and of every container sharing a
    /// user-defined network with it, so each finds the others by name,
    /// short id and alias as they come and go (nerdctl's way: no resolver
    /// to run). The default network has no names (docker's rule).
    fn refresh_hosts(&self, id: &str, c: &Config) -> Result<()> {
        // One at a time: each sees every attachment made before it, so the
        // last one writes what is true now.
        let _one = self.hosts_refresh.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let named: Vec<String> = c.links().into_iter().map(|l| l.network).filter(|n| n != crate::network::DEFAULT_NETWORK).collect();
        let mut touched: Vec<String> = vec![id.to_string()];
        for n in &named {
            touched.extend(self.attached(n)?.into_iter().map(|p| p.id));
        }
        touched.sort();
        touched.dedup();
        for t in touched {
            let Ok(row) = self.get(&t) else { continue };
            let Ok(tc) = Config::of(&row) else { continue };
            self.write_hosts(&t, &self.hosts_of(&t, &tc)?);
        }
        Ok(())
    }

    /// A container's /etc/hosts: its own address on its first network, and
    /// its peers on each user-defined network it is on.
    fn hosts_of(&self, id: &str, c: &Config) -> Result<String> {
        let Some(nets) = self.networks.get() else { return Ok(hosts_file(c, None, &[])) };
        let links = c.links();
        let own = links.first().and_then(|l| nets.attachment(id, &l.network)).and_then(|a| a.address()).map(|a| a.ip);
        let mut peers = Vec::new();
        for l in links.iter().filter(|l| l.network != crate::network::DEFAULT_NETWORK) {
            for p in self.attached(&l.network)?.into_iter().filter(|p| p.id != id) {
                if let Some(addr) = p.attachment.address() {
                    let mut names = vec![p.name, p.id[..12].to_string()];
                    names.extend(p.aliases);
                    peers.push((addr.ip, names));
                }
            }
        }
        Ok(hosts_file(c, own.as_deref(), &peers))
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

    /// At remove: CNI DEL on each network and the namespace unpinned. A
    /// failure is logged: the container goes regardless.
    pub(super) async fn detach_network(&self, id: &str, c: Option<&Config>) {
        let Some(nets) = self.networks.get() else { return };
        // Without its config (an unreadable row, or none): whatever was kept.
        let networks: Vec<String> = match c {
            Some(c) => c.links().into_iter().map(|l| l.network).collect(),
            None => nets.attached_to(id),
        };
        for network in &networks {
            if let Err(e) = nets.detach(id, network).await {
                tracing::warn!(id, network, error = %rind_common::error::Chain(&e), "detach from the network");
            }
        }
        if let Err(e) = nets.release(id) {
            tracing::warn!(id, error = %rind_common::error::Chain(&e), "unpin the network namespace");
        }
        // The others forget it (its attachments are gone).
        if let Some(c) = c {
            if let Err(e) = self.refresh_peers(id, c.links().into_iter().map(|l| l.network)) {
                tracing::warn!(id, error = %rind_common::error::Chain(&e), "refresh /etc/hosts");
            }
        }
    }

    /// The hosts files of the containers on `networks` (the user-defined
    /// ones) other than `id`: it is leaving them.
    fn refresh_peers(&self, id: &str, networks: impl IntoIterator<Item = String>) -> Result<()> {
        for n in networks.into_iter().filter(|n| n != crate::network::DEFAULT_NETWORK) {
            // One peer's refresh rewrites everyone on its networks.
            if let Some(peer) = self.attached(&n)?.into_iter().find(|p| p.id != id) {
                let row = self.get(&peer.id)?;
                self.refresh_hosts(&peer.id, &Config::of(&row)?)?;
            }
        }
        Ok(())
    }

    /// `network connect`: the container joins `network` as its next
    /// interface, at once when its namespace exists (a running container),
    /// else at its next start.
    pub async fn connect(&self, id_or_name: &str, network: &str, aliases: Vec<String>, ip: Option<String>) -> Result<()> {
        let row = self.get(id_or_name)?;
        let lock = self.lock_of(&row.id);
        let _g = lock.lock().await;
        let (row, c) = {
            let nets = self.nets(network)?;
            let _planning = self.network_plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let row = self.reread(&row.id)?;
            let mut c = Config::of(&row)?;
            if !on_network(&c) {
                return Err(ContainerError::Invalid(format!(
                    "container {} is on network {}: it cannot join another",
                    row.name, c.run.network
                )));
            }
            let info = nets.find(network)?;
            if c.links().iter().any(|l| l.network == info.name) {
                return Err(ContainerError::Conflict(format!("container {} is already on network {}", row.name, info.name)));
            }
            let mut probe = crate::services::spec::RunOptions { ip, network_aliases: aliases, ..Default::default() };
            check_options(&mut probe, Some(&info))?;
            if let Some(ip) = &probe.ip {
                let taken = self
                    .list()?
                    .into_iter()
                    .filter_map(|r| Config::of(&r).ok().map(|c| (r.name, c)))
                    .find(|(_, o)| o.links().iter().any(|l| l.network == info.name && l.ip.as_ref() == Some(ip)));
                if let Some((name, _)) = taken {
                    return Err(ContainerError::Conflict(format!("address {ip} is already taken by container {name}")));
                }
            }
            let ifname = (1..).map(|n| format!("eth{n}")).find(|n| !c.links().iter().any(|l| &l.ifname == n)).expect("a free name");
            c.connected.push(Link { network: info.name, ifname, aliases: probe.network_aliases, ip: probe.ip });
            let config = serde_json::to_string(&c).expect("config serializes");
            (self.db().update_container(&row.id, |r| r.config = config.clone())?, c)
        };
        let nets = self.nets(network)?;
        if crate::network::netns::is_pinned(&nets.netns(&row.id)) {
            let l = c.connected.last().expect("just pushed");
            if let Err(e) = nets.attach(&row.id, &l.network, &l.ifname, &[], l.ip.as_deref()).await {
                // Not connected after all.
                let mut back = c.clone();
                back.connected.pop();
                let config = serde_json::to_string(&back).expect("config serializes");
                self.db().update_container(&row.id, |r| r.config = config.clone())?;
                return Err(e.into());
            }
            self.refresh_hosts(&row.id, &c)?;
        }
        Ok(())
    }

    /// `network disconnect`: CNI DEL for that network and the container's
    /// config without it. Its first network stays (rind keeps one).
    pub async fn disconnect(&self, id_or_name: &str, network: &str) -> Result<()> {
        let row = self.get(id_or_name)?;
        let lock = self.lock_of(&row.id);
        let _g = lock.lock().await;
        let row = self.reread(&row.id)?;
        let mut c = Config::of(&row)?;
        let nets = self.nets(network)?;
        let name = nets.find(network).map(|i| i.name).unwrap_or_else(|_| network.to_string());
        if c.run.network == name {
            return Err(ContainerError::Invalid(format!(
                "container {} cannot leave {name}, its first network: rind keeps a container on the network it was created on",
                row.name
            )));
        }
        let before = c.connected.len();
        c.connected.retain(|l| l.network != name);
        if c.connected.len() == before {
            return Err(ContainerError::NotFound(format!("container {} is not on network {name}", row.name)));
        }
        nets.detach(&row.id, &name).await?;
        let config = serde_json::to_string(&c).expect("config serializes");
        self.db().update_container(&row.id, |r| r.config = config.clone())?;
        // Its old peers forget it; its own file loses them.
        self.refresh_peers(&row.id, [name])?;
        self.refresh_hosts(&row.id, &c)
    }

    /// `network rm`: refused while a container (of any state) names it.
    pub fn remove_network(&self, name_or_id: &str) -> Result<String> {
        let nets = self.nets(name_or_id)?;
        let _planning = self.network_plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let name = nets.find(name_or_id)?.name;
        let users: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|r| Config::of(r).is_ok_and(|c| c.links().iter().any(|l| l.network == name)))
            .map(|r| r.name)
            .collect();
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
            self.list()?.iter().filter_map(|r| Config::of(r).ok()).flat_map(|c| c.links().into_iter().map(|l| l.network)).collect();
        let mut gone = Vec::new();
        for n in nets.list()? {
            if n.name != crate::network::DEFAULT_NETWORK && !used.contains(&n.name) {
                nets.remove(&n.name)?;
                gone.push(n.name);
            }
        }
        Ok(gone)
    }

    /// The containers attached to `network`.
    pub fn attached(&self, network: &str) -> Result<Vec<Peer>> {
        let Some(nets) = self.networks.get() else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for r in self.list()? {
            let Ok(c) = Config::of(&r) else { continue };
            let Some(l) = c.links().into_iter().find(|l| l.network == network) else { continue };
            if let Some(attachment) = nets.attachment(&r.id, network) {
                out.push(Peer { id: r.id, name: r.name, aliases: l.aliases, attachment });
            }
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::NetworkInfo;
    use crate::services::spec::RunOptions;

    fn net(name: &str) -> NetworkInfo {
        NetworkInfo { name: name.into(), subnet: "10.7.0.0/16".into(), gateway: "10.7.0.1".into(), ..Default::default() }
    }

    #[test]
    fn options_follow_the_network() {
        let mut run = RunOptions {
            ip: Some("10.7.3.4".into()),
            network_aliases: vec!["db".into()],
            add_hosts: vec![("gw".into(), "host-gateway".into())],
            ..Default::default()
        };
        check_options(&mut run, Some(&net("mine"))).unwrap();
        assert_eq!((run.ip.as_deref(), run.add_hosts[0].1.as_str()), (Some("10.7.3.4/16"), "10.7.0.1"));
        for (run, network, want) in [
            (RunOptions { ip: Some("10.7.3.4".into()), ..Default::default() }, Some(net("bridge")), "only on a user-defined network"),
            (RunOptions { ip: Some("10.8.0.2".into()), ..Default::default() }, Some(net("mine")), "not a host address"),
            (RunOptions { ip: Some("10.7.0.1".into()), ..Default::default() }, Some(net("mine")), "its gateway is 10.7.0.1"),
            (RunOptions { ip: Some("x".into()), ..Default::default() }, Some(net("mine")), "not an IPv4 address"),
            (RunOptions { network_aliases: vec!["db".into()], ..Default::default() }, None, "only on user-defined networks"),
            (RunOptions { network_aliases: vec!["d b".into()], ..Default::default() }, Some(net("mine")), "invalid --network-alias"),
            (RunOptions { add_hosts: vec![("h".into(), "host-gateway".into())], ..Default::default() }, None, "needs a network"),
            (RunOptions { add_hosts: vec![("h".into(), "nope".into())], ..Default::default() }, None, "not an IP address"),
            (RunOptions { dns: vec!["dns.example".into()], ..Default::default() }, None, "invalid --dns"),
        ] {
            let mut run = run;
            let e = check_options(&mut run, network.as_ref()).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn etc_files_carry_the_flags() {
        let c = Config {
            run: RunOptions {
                hostname: Some("h1".into()),
                add_hosts: vec![("db".into(), "10.0.0.5".into())],
                dns: vec!["10.0.0.53".into()],
                dns_search: vec!["a.example".into(), "b.example".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let hosts = hosts_file(&c, Some("10.7.0.2"), &[("10.7.0.3".into(), vec!["web".into(), "abc".into()])]);
        assert_eq!(
            hosts,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.7.0.2\th1\n10.0.0.5\tdb\n10.7.0.3\tweb abc\n"
        );
        let resolv = resolv_conf("nameserver 1.1.1.1\nsearch old.example\noptions ndots:2\n", &c);
        assert_eq!(resolv, "options ndots:2\nnameserver 10.0.0.53\nsearch a.example b.example\n");
        assert_eq!(resolv_conf("nameserver 1.1.1.1\n", &Config::default()), "nameserver 1.1.1.1\n");
    }
}
