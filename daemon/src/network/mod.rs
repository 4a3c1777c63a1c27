//! Container networking through CNI. rindd writes a conflist per network
//! (`ROOT/networks/NAME.conflist`), makes and pins each container's network
//! namespace (`STATE/net/ns/ID`), runs the plugins' ADD before the
//! container first starts and DEL when it is removed, and keeps each ADD's
//! result (`STATE/net/results/ID-NETWORK.json`) for DEL, inspect and a
//! restarted rindd. Addresses (host-local) live under `STATE/net/ipam`, so
//! a reboot frees them with everything else volatile.

pub mod cni;
pub mod netns;
pub mod ports;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use cni::Address;
pub use ports::PortMapping;

/// The default network's name, docker's.
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_BRIDGE: &str = "rind0";
/// Not docker's 172.17.0.0/16, so both can run on one host.
pub const DEFAULT_SUBNET: &str = "172.30.0.0/16";
pub const DEFAULT_PLUGIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network {0} not found")]
    NotFound(String),
    #[error("invalid subnet {subnet:?}: {reason}")]
    Subnet { subnet: String, reason: String },
    #[error(transparent)]
    Cni(#[from] cni::CniError),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not parse")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// What one container's attachment to one network is: kept on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub result: Value,
    pub ports: Vec<PortMapping>,
}

impl Attachment {
    pub fn address(&self) -> Option<Address> {
        cni::address_of(&self.result, IFNAME)
    }
}

const IFNAME: &str = "eth0";

pub struct Networks {
    conf_dir: PathBuf,
    state: PathBuf,
    plugin_dirs: Vec<PathBuf>,
    timeout: Duration,
}

impl Networks {
    /// Opens rindd's networks, writing the default bridge's conflist when
    /// there is none (`subnet` as configured).
    pub fn open(root: &Path, state: &Path, plugin_dirs: Vec<PathBuf>, subnet: &str) -> Result<Networks, NetworkError> {
        let n = Networks { conf_dir: root.join("networks"), state: state.join("net"), plugin_dirs, timeout: Duration::from_secs(120) };
        for d in [&n.conf_dir, &n.state] {
            std::fs::create_dir_all(d).map_err(|source| NetworkError::Io { op: "create", path: d.clone(), source })?;
        }
        let default = n.conflist_path(DEFAULT_NETWORK);
        if !default.exists() {
            let gateway = gateway_of(subnet)?;
            let list = cni::bridge_conflist(DEFAULT_NETWORK, DEFAULT_BRIDGE, subnet, &gateway, None, false, &n.state.join("ipam"));
            write_json(&default, &list)?;
        }
        Ok(n)
    }

    fn conflist_path(&self, network: &str) -> PathBuf {
        self.conf_dir.join(format!("{network}.conflist"))
    }

    /// Where a container's network namespace is pinned.
    pub fn netns(&self, id: &str) -> PathBuf {
        self.state.join("ns").join(id)
    }

    fn result_path(&self, id: &str, network: &str) -> PathBuf {
        self.state.join("results").join(format!("{id}-{network}.json"))
    }

    pub fn conflist(&self, network: &str) -> Result<Value, NetworkError> {
        let path = self.conflist_path(network);
        match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|source| NetworkError::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NetworkError::NotFound(network.to_string())),
            Err(source) => Err(NetworkError::Io { op: "read", path, source }),
        }
    }

    /// The container's attachment to `network`, from its kept ADD result.
    pub fn attachment(&self, id: &str, network: &str) -> Option<Attachment> {
        let data = std::fs::read(self.result_path(id, network)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// The containers with a pinned namespace or a kept result.
    pub fn known_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for e in std::fs::read_dir(self.state.join("ns")).into_iter().flatten().flatten() {
            ids.push(e.file_name().to_string_lossy().to_string());
        }
        for e in std::fs::read_dir(self.state.join("results")).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            // ID-NETWORK.json: ids are hex, so the first '-' ends it.
            if let Some((id, _)) = name.split_once('-') {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        ids.dedup();
        ids
    }

    /// The network a container has a kept result for, if any.
    pub fn attached_to(&self, id: &str) -> Option<String> {
        let prefix = format!("{id}-");
        std::fs::read_dir(self.state.join("results")).ok()?.flatten().find_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix(&prefix)?.strip_suffix(".json").map(String::from)
        })
    }

    /// Pins the container's namespace and attaches it to `network` with
    /// `ports` published; an attachment already made (a restart of the
    /// container, or of rindd) is kept as it is. Whatever fails is undone.
    pub async fn attach(&self, id: &str, network: &str, ports: &[PortMapping]) -> Result<Attachment, NetworkError> {
        let pin = self.netns(id);
        if netns::is_pinned(&pin) {
            if let Some(a) = self.attachment(id, network) {
                return Ok(a);
            }
        }
        let list = self.conflist(network)?;
        netns::create(&pin)?;
        let rc = runtime_config(ports);
        let inv = cni::Invocation { container_id: id, netns: &pin, ifname: IFNAME, runtime_config: &rc };
        let added = cni::run_list(&list, cni::Command::Add, &inv, None, &self.plugin_dirs, self.timeout).await;
        let result = match added {
            Ok(r) => r,
            Err(e) => {
                // Whatever the plugins that ran set up (an address, a veth) goes.
                let _ = cni::run_list(&list, cni::Command::Del, &inv, None, &self.plugin_dirs, self.timeout).await;
                let _ = netns::remove(&pin);
                return Err(e.into());
            }
        };
        let a = Attachment { network: network.to_string(), result, ports: ports.to_vec() };
        let path = self.result_path(id, network);
        if let Err(e) = write_json(&path, &serde_json::to_value(&a).expect("json")) {
            let _ = cni::run_list(&list, cni::Command::Del, &inv, Some(&a.result), &self.plugin_dirs, self.timeout).await;
            let _ = netns::remove(&pin);
            return Err(e);
        }
        tracing::info!(id, network, address = ?a.address().map(|x| x.ip), "attached");
        Ok(a)
    }

    /// Detaches the container from `network` (CNI DEL with the kept result)
    /// and removes its namespace. Safe to repeat: what is gone is skipped.
    pub async fn detach(&self, id: &str, network: &str) -> Result<(), NetworkError> {
        let pin = self.netns(id);
        let kept = self.attachment(id, network);
        let result_path = self.result_path(id, network);
        if kept.is_some() || netns::is_pinned(&pin) {
            let list = self.conflist(network)?;
            let rc = runtime_config(kept.as_ref().map(|a| a.ports.as_slice()).unwrap_or(&[]));
            let inv = cni::Invocation { container_id: id, netns: &pin, ifname: IFNAME, runtime_config: &rc };
            cni::run_list(&list, cni::Command::Del, &inv, kept.as_ref().map(|a| &a.result), &self.plugin_dirs, self.timeout).await?;
        }
        match std::fs::remove_file(&result_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(NetworkError::Io { op: "remove", path: result_path, source: e })
            }
            _ => {}
        }
        netns::remove(&pin)?;
        Ok(())
    }
}

/// CNI's runtimeConfig for `ports` (pure).
fn runtime_config(ports: &[PortMapping]) -> Value {
    let maps: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut m = json!({"hostPort": p.host_port, "containerPort": p.container_port, "protocol": p.protocol});
            if !p.host_ip.is_empty() {
                m["hostIP"] = json!(p.host_ip);
            }
            m
        })
        .collect();
    json!({ "portMappings": maps })
}

/// The first address of an IPv4 subnet: its gateway (pure).
pub fn gateway_of(subnet: &str) -> Result<String, NetworkError> {
    let bad = |reason: &str| NetworkError::Subnet { subnet: subnet.to_string(), reason: reason.to_string() };
    let (addr, len) = subnet.split_once('/').ok_or_else(|| bad("needs a prefix length, as in 172.30.0.0/16"))?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad("is not an IPv4 address"))?;
    let len: u32 = len.parse().ok().filter(|l| (8..=30).contains(l)).ok_or_else(|| bad("the prefix length must be from 8 to 30"))?;
    let mask = u32::MAX << (32 - len);
    if u32::from(addr) & !mask != 0 {
        return Err(bad("has host bits set"));
    }
    Ok(std::net::Ipv4Addr::from((u32::from(addr) & mask) + 1).to_string())
}

fn write_json(path: &Path, v: &Value) -> Result<(), NetworkError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| NetworkError::Io { op: "create", path: dir.to_path_buf(), source })?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).expect("json")).map_err(|source| NetworkError::Io {
        op: "write",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| NetworkError::Io { op: "rename", path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_and_bad_subnets() {
        assert_eq!(gateway_of("172.30.0.0/16").unwrap(), "172.30.0.1");
        assert_eq!(gateway_of("10.1.2.0/24").unwrap(), "10.1.2.1");
        for (s, want) in [("10.0.0.0", "prefix length"), ("10.0.0.1/24", "host bits"), ("x/24", "IPv4"), ("10.0.0.0/31", "from 8 to 30")] {
            let e = gateway_of(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn runtime_config_carries_the_mappings_as_portmap_reads_them() {
        let p = [PortMapping { host_ip: "127.0.0.1".into(), host_port: 8080, container_port: 80, protocol: "tcp".into() }];
        assert_eq!(
            runtime_config(&p),
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}]})
        );
    }

    #[test]
    fn the_default_network_is_written_once_and_unknown_ones_are_not_found() {
        let (root, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let n = Networks::open(root.path(), state.path(), vec![], DEFAULT_SUBNET).unwrap();
        let list = n.conflist(DEFAULT_NETWORK).unwrap();
        assert_eq!(list["plugins"][0]["bridge"], DEFAULT_BRIDGE);
        assert_eq!(list["plugins"][0]["ipam"]["ranges"][0][0]["gateway"], "172.30.0.1");
        assert!(matches!(n.conflist("nope"), Err(NetworkError::NotFound(_))));
        assert!(Networks::open(root.path(), state.path(), vec![], "bad").is_ok(), "an existing default is kept");
    }
}
