//! `network create`, `ls`, `rm`: rind's networks as conflists it writes.

use std::collections::BTreeMap;

use serde_json::Value;

use super::subnet::{self, Cidr};
use super::{cni, random_id, write_json, NetworkError, NetworkInfo, Networks, DEFAULT_NETWORK};

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// The network a create makes, checked against the networks there are
/// (pure): a valid name, a subnet that overlaps none (one picked when not
/// given), a gateway and an ip-range inside it.
pub fn plan(o: &CreateOptions, existing: &[NetworkInfo], id: &str, created: &str) -> Result<NetworkInfo, NetworkError> {
    if !crate::names::follows_rule(&o.name) {
        return Err(NetworkError::Invalid(format!("invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]+ is allowed", o.name)));
    }
    if existing.iter().any(|n| n.name == o.name) {
        return Err(NetworkError::Exists(o.name.clone()));
    }
    let taken: Vec<(Cidr, &str)> =
        existing.iter().filter_map(|n| Cidr::parse(&n.subnet, "subnet").ok().map(|c| (c, n.name.as_str()))).collect();
    let cidr = match &o.subnet {
        Some(s) => {
            let c = Cidr::parse(s, "subnet")?;
            if let Some((t, name)) = taken.iter().find(|(t, _)| t.overlaps(&c)) {
                return Err(NetworkError::Invalid(format!("subnet {c} overlaps {t} of network {name}")));
            }
            c
        }
        None if o.gateway.is_some() || o.ip_range.is_some() => {
            return Err(NetworkError::Invalid("--gateway and --ip-range need --subnet".into()));
        }
        None => subnet::pick(&taken.iter().map(|(c, _)| *c).collect::<Vec<_>>())?,
    };
    let gateway = match &o.gateway {
        Some(g) => {
            let ip: std::net::Ipv4Addr =
                g.parse().map_err(|_| NetworkError::Invalid(format!("invalid gateway {g:?}: not an IPv4 address")))?;
            let (first, last) = cidr.hosts();
            if !(first..=last).contains(&ip) {
                return Err(NetworkError::Invalid(format!("gateway {ip} is not a host address of subnet {cidr}")));
            }
            ip
        }
        None => cidr.gateway(),
    };
    if let Some(r) = &o.ip_range {
        let range = Cidr::parse(r, "ip-range")?;
        if !(cidr.contains(range.addr) && cidr.len <= range.len) {
            return Err(NetworkError::Invalid(format!("ip-range {range} is not inside subnet {cidr}")));
        }
    }
    Ok(NetworkInfo {
        name: o.name.clone(),
        id: id.to_string(),
        created: created.to_string(),
        // Linux names an interface in at most 15 bytes: docker's form.
        bridge: format!("br-{}", &id[..12]),
        subnet: cidr.to_string(),
        gateway: gateway.to_string(),
        ip_range: o.ip_range.clone(),
        internal: o.internal,
        labels: o.labels.clone(),
    })
}

/// The info a conflist carries; for one written before rind kept it, what
/// its bridge plugin says (pure).
pub fn info_of(list: &Value) -> NetworkInfo {
    if let Some(info) = list.get("rind").and_then(|v| serde_json::from_value::<NetworkInfo>(v.clone()).ok()) {
        return info;
    }
    let bridge = &list["plugins"][0];
    let range = &bridge["ipam"]["ranges"][0][0];
    let name = list["name"].as_str().unwrap_or("").to_string();
    NetworkInfo {
        id: name.clone(),
        name,
        bridge: bridge["bridge"].as_str().unwrap_or("").into(),
        subnet: range["subnet"].as_str().unwrap_or("").into(),
        gateway: range["gateway"].as_str().unwrap_or("").into(),
        internal: bridge["isGateway"] == Value::Bool(false),
        ..Default::default()
    }
}

impl Networks {
    pub fn create(&self, o: &CreateOptions) -> Result<NetworkInfo, NetworkError> {
        let _one = self.creating.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let info = plan(o, &self.list()?, &random_id(), &crate::store::format_time(std::time::SystemTime::now()))?;
        write_json(&self.conflist_path(&info.name), &cni::bridge_conflist(&info, &self.state.join("ipam")))?;
        tracing::info!(network = %info.name, subnet = %info.subnet, "network created");
        Ok(info)
    }

    /// Every network, by name.
    pub fn list(&self) -> Result<Vec<NetworkInfo>, NetworkError> {
        self.names()?.iter().map(|n| self.conflist(n).map(|l| info_of(&l))).collect()
    }

    /// The networks' names, sorted.
    pub(super) fn names(&self) -> Result<Vec<String>, NetworkError> {
        let entries =
            std::fs::read_dir(&self.conf_dir).map_err(|source| NetworkError::Io { op: "read", path: self.conf_dir.clone(), source })?;
        let mut out: Vec<String> =
            entries.flatten().filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".conflist").map(String::from)).collect();
        out.sort();
        Ok(out)
    }

    /// A network by name, or by a unique prefix of its id (as docker).
    pub fn find(&self, name_or_id: &str) -> Result<NetworkInfo, NetworkError> {
        let all = self.list()?;
        if let Some(n) = all.iter().find(|n| n.name == name_or_id) {
            return Ok(n.clone());
        }
        let by_id: Vec<&NetworkInfo> = all.iter().filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id)).collect();
        match by_id.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(NetworkError::NotFound(name_or_id.to_string())),
            _ => Err(NetworkError::Invalid(format!("{name_or_id} matches more than one network: give more of the id"))),
        }
    }

    /// Removes a network no container uses (the caller has checked, under
    /// the lock creates of containers take): its conflist and addresses.
    pub fn remove(&self, name: &str) -> Result<(), NetworkError> {
        if name == DEFAULT_NETWORK {
            return Err(NetworkError::Predefined(name.to_string()));
        }
        let path = self.conflist_path(name);
        let info = info_of(&self.conflist(name)?);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(NetworkError::NotFound(name.to_string())),
            Err(source) => return Err(NetworkError::Io { op: "remove", path, source }),
            Ok(()) => {}
        }
        let ipam = self.state.join("ipam").join(name);
        if let Err(e) = std::fs::remove_dir_all(&ipam) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(network = name, path = %ipam.display(), error = %e, "remove the network's address records");
            }
        }
        if !info.internal {
            super::nat::remove(&info);
        }
        self.nat_done.lock().expect("nat").remove(name);
        tracing::info!(network = name, "network removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, subnet: &str) -> NetworkInfo {
        NetworkInfo { name: name.into(), subnet: subnet.into(), ..Default::default() }
    }

    fn opts(name: &str) -> CreateOptions {
        CreateOptions { name: name.into(), ..Default::default() }
    }

    #[test]
    fn a_network_gets_a_free_subnet_its_gateway_and_a_bridge_named_by_its_id() {
        let id = "ab".repeat(32);
        let existing = [net("bridge", "172.30.0.0/16"), net("one", "172.31.0.0/24")];
        let n = plan(&opts("two"), &existing, &id, "t").unwrap();
        assert_eq!((n.subnet.as_str(), n.gateway.as_str(), n.bridge.as_str()), ("172.31.1.0/24", "172.31.1.1", "br-abababababab"));
        let o = CreateOptions {
            subnet: Some("10.5.0.0/16".into()),
            gateway: Some("10.5.0.254".into()),
            ip_range: Some("10.5.1.0/24".into()),
            internal: true,
            ..opts("mine")
        };
        let n = plan(&o, &existing, &id, "t").unwrap();
        assert_eq!(
            (n.subnet.as_str(), n.gateway.as_str(), n.ip_range.as_deref(), n.internal),
            ("10.5.0.0/16", "10.5.0.254", Some("10.5.1.0/24"), true)
        );
    }

    #[test]
    fn bad_creates_say_what_is_wrong() {
        let id = "cd".repeat(32);
        let existing = [net("bridge", "172.30.0.0/16")];
        for (o, want) in [
            (opts("bridge"), "network with name bridge already exists"),
            (opts("-x"), "invalid network name"),
            (CreateOptions { subnet: Some("172.30.5.0/24".into()), ..opts("n1") }, "overlaps 172.30.0.0/16 of network bridge"),
            (CreateOptions { subnet: Some("10.0.0.0/24".into()), gateway: Some("10.0.1.1".into()), ..opts("n1") }, "not a host address"),
            (CreateOptions { subnet: Some("10.0.0.0/24".into()), ip_range: Some("10.0.0.0/16".into()), ..opts("n1") }, "not inside subnet"),
            (CreateOptions { gateway: Some("10.0.0.1".into()), ..opts("n1") }, "need --subnet"),
            (CreateOptions { subnet: Some("10.0.0.0".into()), ..opts("n1") }, "invalid subnet"),
        ] {
            let e = plan(&o, &existing, &id, "t").unwrap_err().to_string();
            assert!(e.contains(want), "{o:?}: {e}");
        }
    }

    #[test]
    fn create_list_find_remove() {
        let (root, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let n = Networks::open(root.path(), state.path(), vec![], super::super::DEFAULT_SUBNET).unwrap();
        let made = n.create(&opts("web")).unwrap();
        assert_eq!(n.list().unwrap().iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["bridge", "web"]);
        assert_eq!(n.find(&made.id[..10]).unwrap(), made);
        assert_eq!(info_of(&n.conflist("web").unwrap()), made);
        assert!(matches!(n.remove("bridge"), Err(NetworkError::Predefined(_))));
        n.remove("web").unwrap();
        assert!(matches!(n.remove("web"), Err(NetworkError::NotFound(_))));
        assert!(matches!(n.find("web"), Err(NetworkError::NotFound(_))));
    }
}
