//! Container networking through CNI. rindd writes a conflist per network
//! (`ROOT/networks/NAME.conflist`), makes and pins each container's network
//! namespace (`STATE/net/ns/ID`), runs the plugins' ADD before the
//! container first starts and DEL when it is removed, and keeps each ADD's
//! result (`STATE/net/results/ID-NETWORK.json`) for DEL, inspect and a
//! restarted rindd. Addresses (host-local) live under `STATE/net/ipam`, so
//! a reboot frees them with everything else volatile.

pub mod cni;
pub mod create;
pub mod nat;
pub mod netns;
pub mod ports;
pub mod subnet;

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
    #[error("{0}")]
    Invalid(String),
    #[error("network with name {0} already exists")]
    Exists(String),
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    #[error("network {name} is in use by container(s) {containers}: remove them or disconnect them first")]
    InUse { name: String, containers: String },
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

/// A network as rind keeps it, beside its plugins in the conflist (under
/// "rind": plugins are given only their own entries).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkInfo {
    pub name: String,
    pub id: String,
    pub created: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// What one container's attachment to one network is: kept on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub result: Value,
    pub ports: Vec<PortMapping>,
    /// The container's interface on the network: eth0 for its first.
    #[serde(default = "first_ifname")]
    pub ifname: String,
}

impl Attachment {
    pub fn address(&self) -> Option<Address> {
        cni::address_of(&self.result, &self.ifname)
    }
}

/// The interface of a container's first network.
pub const IFNAME: &str = "eth0";

fn first_ifname() -> String {
    IFNAME.to_string()
}

pub struct Networks {
    conf_dir: PathBuf,
    state: PathBuf,
    plugin_dirs: Vec<PathBuf>,
    timeout: Duration,
    /// Held by `create` from its checks to its conflist written.
    creating: std::sync::Mutex<()>,
    /// Networks whose NAT rule this rindd has seen in place.
    nat_done: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The versions each plugin speaks, asked once per rindd.
    versions: tokio::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
}

impl Networks {
    /// Opens rindd's networks, writing the default bridge's conflist when
    /// there is none (`subnet` as configured).
    pub fn open(root: &Path, state: &Path, plugin_dirs: Vec<PathBuf>, subnet: &str) -> Result<Networks, NetworkError> {
        let n = Networks {
            conf_dir: root.join("networks"),
            state: state.join("net"),
            plugin_dirs,
            timeout: Duration::from_secs(120),
            creating: std::sync::Mutex::new(()),
            nat_done: std::sync::Mutex::new(Default::default()),
            versions: tokio::sync::Mutex::new(Default::default()),
        };
        for d in [&n.conf_dir, &n.state] {
            std::fs::create_dir_all(d).map_err(|source| NetworkError::Io { op: "create", path: d.clone(), source })?;
        }
        let default = n.conflist_path(DEFAULT_NETWORK);
        if !default.exists() {
            let cidr = subnet::Cidr::parse(subnet, "bridge_subnet")?;
            let info = NetworkInfo {
                name: DEFAULT_NETWORK.into(),
                id: random_id(),
                created: crate::store::format_time(std::time::SystemTime::now()),
                bridge: DEFAULT_BRIDGE.into(),
                subnet: cidr.to_string(),
                gateway: cidr.gateway().to_string(),
                ..Default::default()
            };
            write_json(&default, &cni::bridge_conflist(&info, &n.state.join("ipam")))?;
        }
        // rind's conflists follow this rindd's plugin layout (an upgrade may
        // change it): each is written again from what it says of itself.
        for name in n.names()? {
            let list = n.conflist(&name)?;
            let mut info = create::info_of(&list);
            if list.get("rind").is_none() {
                info.id = random_id();
            }
            let want = cni::bridge_conflist(&info, &n.state.join("ipam"));
            if want != list {
                write_json(&n.conflist_path(&name), &want)?;
            }
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

    /// The network's conflist with the CNI version its plugins all speak
    /// (the spec's negotiation: each plugin's VERSION, asked once).
    async fn negotiated(&self, network: &str) -> Result<Value, NetworkError> {
        let mut list = self.conflist(network)?;
        let plugins = cni::plugins(&list)?;
        let mut known = self.versions.lock().await;
        let mut supported = Vec::new();
        for (name, _) in &plugins {
            if !known.contains_key(name) {
                let v = cni::versions(name, &self.plugin_dirs, self.timeout).await?;
                known.insert(name.clone(), v);
            }
            supported.push(known[name].clone());
        }
        let wanted = list["cniVersion"].as_str().unwrap_or(cni::VERSION).to_string();
        let version = cni::negotiate(&wanted, &supported).ok_or_else(|| {
            let names: Vec<&str> = plugins.iter().map(|(n, _)| n.as_str()).collect();
            NetworkError::Invalid(format!("network {network}: its plugins ({}) share no CNI version up to {wanted}", names.join(", ")))
        })?;
        list["cniVersion"] = Value::String(version);
        Ok(list)
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

    /// The networks a container has kept results for.
    pub fn attached_to(&self, id: &str) -> Vec<String> {
        let prefix = format!("{id}-");
        let entries = std::fs::read_dir(self.state.join("results")).into_iter().flatten().flatten();
        entries
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix(&prefix)?.strip_suffix(".json").map(String::from)
            })
            .collect()
    }

    /// Pins the container's namespace (if it is not) and attaches it to
    /// `network` as `ifname` with `ports` published; an attachment already
    /// made (a restart of the container, or of rindd) is kept as it is.
    /// What a failed ADD set up is undone; the namespace stays for
    /// `release`. `ip`: the address asked for (`--ip`), with its subnet's
    /// prefix.
    pub async fn attach(
        &self,
        id: &str,
        network: &str,
        ifname: &str,
        ports: &[PortMapping],
        ip: Option<&str>,
    ) -> Result<Attachment, NetworkError> {
        let pin = self.netns(id);
        let list = self.negotiated(network).await?;
        let rc = runtime_config(ports, ip);
        let inv = cni::Invocation { container_id: id, netns: &pin, ifname, runtime_config: &rc };
        if netns::is_pinned(&pin) {
            if let Some(a) = self.attachment(id, network) {
                // Kept from an earlier start: CNI CHECK says whether it is
                // still whole (a veth or address gone); if not, it is made again.
                match cni::run_list(&list, cni::Command::Check, &inv, Some(&a.result), &self.plugin_dirs, self.timeout).await {
                    Ok(_) => return Ok(a),
                    Err(e) => {
                        tracing::warn!(id, network, error = %rind_common::error::Chain(&e), "the network fails CNI CHECK: attaching it again");
                        let _ = cni::run_list(&list, cni::Command::Del, &inv, Some(&a.result), &self.plugin_dirs, self.timeout).await;
                    }
                }
            }
        }
        self.ensure_nat(&create::info_of(&list)).await?;
        netns::create(&pin)?;
        let added = cni::run_list(&list, cni::Command::Add, &inv, None, &self.plugin_dirs, self.timeout).await;
        let result = match added {
            Ok(r) => r,
            Err(e) => {
                // Whatever the plugins that ran set up (an address, a veth) goes.
                let _ = cni::run_list(&list, cni::Command::Del, &inv, None, &self.plugin_dirs, self.timeout).await;
                return Err(e.into());
            }
        };
        let a = Attachment { network: network.to_string(), result, ports: ports.to_vec(), ifname: ifname.to_string() };
        let path = self.result_path(id, network);
        if let Err(e) = write_json(&path, &serde_json::to_value(&a).expect("json")) {
            let _ = cni::run_list(&list, cni::Command::Del, &inv, Some(&a.result), &self.plugin_dirs, self.timeout).await;
            return Err(e);
        }
        tracing::info!(id, network, address = ?a.address().map(|x| x.ip), "attached");
        Ok(a)
    }

    async fn ensure_nat(&self, info: &NetworkInfo) -> Result<(), NetworkError> {
        if info.internal || self.nat_done.lock().expect("nat").contains(&info.name) {
            return Ok(());
        }
        let i = info.clone();
        tokio::task::spawn_blocking(move || nat::ensure(&i))
            .await
            .map_err(|e| NetworkError::Invalid(format!("network {}: NAT rule: {e}", info.name)))??;
        self.nat_done.lock().expect("nat").insert(info.name.clone());
        Ok(())
    }

    /// Detaches the container from `network` (CNI DEL with the kept
    /// result). Safe to repeat: what is gone is skipped.
    pub async fn detach(&self, id: &str, network: &str) -> Result<(), NetworkError> {
        let pin = self.netns(id);
        let kept = self.attachment(id, network);
        let result_path = self.result_path(id, network);
        if kept.is_some() || netns::is_pinned(&pin) {
            let list = self.negotiated(network).await?;
            let rc = runtime_config(kept.as_ref().map(|a| a.ports.as_slice()).unwrap_or(&[]), None);
            let ifname = kept.as_ref().map_or(IFNAME, |a| a.ifname.as_str());
            let inv = cni::Invocation { container_id: id, netns: &pin, ifname, runtime_config: &rc };
            cni::run_list(&list, cni::Command::Del, &inv, kept.as_ref().map(|a| &a.result), &self.plugin_dirs, self.timeout).await?;
        }
        match std::fs::remove_file(&result_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(NetworkError::Io { op: "remove", path: result_path, source: e })
            }
            _ => {}
        }
        Ok(())
    }

    /// Unpins the container's namespace (after its last detach).
    pub fn release(&self, id: &str) -> Result<(), NetworkError> {
        Ok(netns::remove(&self.netns(id))?)
    }
}

/// CNI's runtimeConfig for `ports` and an asked-for address, CIDR (pure).
fn runtime_config(ports: &[PortMapping], ip: Option<&str>) -> Value {
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
    let mut rc = json!({ "portMappings": maps });
    if let Some(ip) = ip {
        rc["ips"] = json!([ip]);
    }
    rc
}

/// 64 hex digits, as docker's network ids.
fn random_id() -> String {
    let mut buf = [0u8; 32];
    // SAFETY: buf is a valid, writable buffer of buf.len() bytes; getrandom(2)
    // cannot fail for so small a request once the pool is ready.
    unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    buf.iter().map(|b| format!("{b:02x}")).collect()
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
    fn runtime_config_carries_the_mappings_as_portmap_reads_them() {
        let p = [PortMapping { host_ip: "127.0.0.1".into(), host_port: 8080, container_port: 80, protocol: "tcp".into() }];
        assert_eq!(
            runtime_config(&p, None),
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}]})
        );
        assert_eq!(runtime_config(&[], Some("10.1.0.9/16")), json!({"portMappings": [], "ips": ["10.1.0.9/16"]}));
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
