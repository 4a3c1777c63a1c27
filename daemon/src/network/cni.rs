//! CNI, as the spec has a runtime drive plugins: a conflist's plugins run
//! in order for ADD (each given the previous one's result), in reverse for
//! DEL (each given the cached result), with the container's netns, id and
//! interface name in the environment and the plugin's config on stdin.
//! Building inputs and reading outputs are pure; `exec` runs a plugin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

/// The CNI version rind speaks and writes into its conflists.
pub const VERSION: &str = "1.0.0";

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI plugin {plugin:?} not found in {dirs}")]
    NoPlugin { plugin: String, dirs: String },
    #[error("network {network}: the conflist {reason}")]
    Conflist { network: String, reason: String },
    #[error("CNI {command} of plugin {plugin}: {message}")]
    Plugin { plugin: String, command: &'static str, message: String },
    #[error("CNI {command} of plugin {plugin}: run {path}")]
    Exec {
        plugin: String,
        command: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a plugin is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
        }
    }
}

/// One container's attachment to one network, as a plugin sees it.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// `runtimeConfig` values, handed to plugins whose `capabilities` ask
    /// for them (portMappings, …).
    pub runtime_config: &'a Value,
}

/// The stdin of the conflist's plugin `plugin` (pure): its own config
/// with the list's name and version, the previous result, and the
/// runtime config its capabilities ask for.
pub fn plugin_input(conflist: &Value, plugin: &Value, prev: Option<&Value>, runtime_config: &Value) -> Value {
    let mut conf = plugin.clone();
    let obj = conf.as_object_mut().expect("plugins are objects (checked by plugins())");
    obj.insert("name".into(), conflist["name"].clone());
    obj.insert("cniVersion".into(), conflist["cniVersion"].clone());
    if let Some(p) = prev {
        obj.insert("prevResult".into(), p.clone());
    }
    let wanted: Vec<String> = plugin
        .get("capabilities")
        .and_then(Value::as_object)
        .map(|caps| caps.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let rc: serde_json::Map<String, Value> = wanted.iter().filter_map(|k| runtime_config.get(k).map(|v| (k.clone(), v.clone()))).collect();
    if !rc.is_empty() {
        obj.insert("runtimeConfig".into(), Value::Object(rc));
    }
    obj.remove("capabilities");
    obj.remove(ONLY_WITH);
    conf
}

/// The key by which rind's own lists mark a plugin that is there only for
/// one runtime config (portmap: `portMappings`); stripped before the plugin
/// sees its config.
const ONLY_WITH: &str = "rindOnlyWith";

/// Whether a plugin of the list runs for this container (pure): one marked
/// `rindOnlyWith` is left out when the container has none of that runtime
/// config (portmap without published ports: an exec and iptables calls for
/// nothing, at every run and rm). Unmarked plugins always run, as the spec
/// says, so lists rind did not write run whole.
pub fn needed(plugin: &Value, runtime_config: &Value) -> bool {
    let Some(key) = plugin.get(ONLY_WITH).and_then(Value::as_str) else { return true };
    match runtime_config.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// The conflist's plugins, checked: a name, and each plugin an object
/// with a `type` (pure).
pub fn plugins(conflist: &Value) -> Result<Vec<(String, Value)>, CniError> {
    let network = conflist["name"].as_str().unwrap_or("").to_string();
    let bad = |reason: &str| CniError::Conflist { network: network.clone(), reason: reason.to_string() };
    if network.is_empty() {
        return Err(bad("has no name"));
    }
    let list = conflist["plugins"].as_array().ok_or_else(|| bad("has no plugins list"))?;
    if list.is_empty() {
        return Err(bad("has an empty plugins list"));
    }
    list.iter()
        .map(|p| {
            let t = p.get("type").and_then(Value::as_str).filter(|t| !t.is_empty() && !t.contains('/'));
            t.map(|t| (t.to_string(), p.clone())).ok_or_else(|| bad("has a plugin without a valid type"))
        })
        .collect()
}

/// The message of a plugin's error output (`{"code", "msg", "details"}`), or
/// its raw output when that does not parse (pure).
pub fn error_message(stdout: &[u8], stderr: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(stdout) {
        if let Some(msg) = v.get("msg").and_then(Value::as_str) {
            let details = v.get("details").and_then(Value::as_str).filter(|d| !d.is_empty());
            return match details {
                Some(d) => format!("{msg}: {d}"),
                None => msg.to_string(),
            };
        }
    }
    let text = String::from_utf8_lossy(if stdout.trim_ascii().is_empty() { stderr } else { stdout });
    text.trim().to_string()
}

/// The first directory of `dirs` holding `plugin` (the CNI_PATH search).
pub fn find(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    dirs.iter().map(|d| d.join(plugin)).find(|p| p.is_file()).ok_or_else(|| CniError::NoPlugin {
        plugin: plugin.to_string(),
        dirs: dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":"),
    })
}

/// Runs the whole conflist for `cmd`: ADD in order, threading results;
/// DEL in reverse and CHECK in order, each given `cached` (the ADD's
/// result). The final result (ADD), or Null.
pub async fn run_list(
    conflist: &Value,
    cmd: Command,
    inv: &Invocation<'_>,
    cached: Option<&Value>,
    dirs: &[PathBuf],
    timeout: Duration,
) -> Result<Value, CniError> {
    let mut plugins = plugins(conflist)?;
    plugins.retain(|(_, p)| needed(p, inv.runtime_config));
    if cmd == Command::Del {
        plugins.reverse();
    }
    let mut prev = cached.cloned();
    for (name, plugin) in &plugins {
        let input = plugin_input(conflist, plugin, prev.as_ref(), inv.runtime_config);
        let out = exec(name, cmd, inv, &input, dirs, timeout).await?;
        if cmd == Command::Add {
            prev = Some(out);
        }
    }
    Ok(if cmd == Command::Add { prev.unwrap_or(Value::Null) } else { Value::Null })
}

/// Runs one plugin; its result on success.
pub async fn exec(
    plugin: &str,
    cmd: Command,
    inv: &Invocation<'_>,
    input: &Value,
    dirs: &[PathBuf],
    timeout: Duration,
) -> Result<Value, CniError> {
    use tokio::io::AsyncWriteExt;
    let path = find(plugin, dirs)?;
    let exec_err = |source| CniError::Exec { plugin: plugin.to_string(), command: cmd.as_str(), path: path.clone(), source };
    let cni_path = std::env::join_paths(dirs).unwrap_or_default();
    let mut child = tokio::process::Command::new(&path)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", cmd.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_PATH", cni_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(exec_err)?;
    let body = serde_json::to_vec(input).expect("json");
    let mut stdin = child.stdin.take().expect("piped");
    let out = tokio::time::timeout(timeout, async {
        stdin.write_all(&body).await?;
        drop(stdin);
        child.wait_with_output().await
    })
    .await
    .map_err(|_| CniError::Plugin {
        plugin: plugin.into(),
        command: cmd.as_str(),
        message: format!("no answer in {} s", timeout.as_secs()),
    })?
    .map_err(exec_err)?;
    if !out.status.success() {
        return Err(CniError::Plugin { plugin: plugin.into(), command: cmd.as_str(), message: error_message(&out.stdout, &out.stderr) });
    }
    if cmd != Command::Add {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| CniError::Plugin {
        plugin: plugin.into(),
        command: cmd.as_str(),
        message: format!("its result does not parse: {e}"),
    })
}

/// The versions a plugin speaks (CNI_COMMAND=VERSION).
pub async fn versions(plugin: &str, dirs: &[PathBuf], timeout: Duration) -> Result<Vec<String>, CniError> {
    use tokio::io::AsyncWriteExt;
    let path = find(plugin, dirs)?;
    let exec_err = |source| CniError::Exec { plugin: plugin.to_string(), command: "VERSION", path: path.clone(), source };
    let mut child = tokio::process::Command::new(&path)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(exec_err)?;
    let mut stdin = child.stdin.take().expect("piped");
    let body = serde_json::to_vec(&json!({"cniVersion": VERSION})).expect("json");
    let out = tokio::time::timeout(timeout, async {
        stdin.write_all(&body).await?;
        drop(stdin);
        child.wait_with_output().await
    })
    .await
    .map_err(|_| CniError::Plugin { plugin: plugin.into(), command: "VERSION", message: format!("no answer in {} s", timeout.as_secs()) })?
    .map_err(exec_err)?;
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| CniError::Plugin {
        plugin: plugin.into(),
        command: "VERSION",
        message: format!("its answer does not parse: {e}"),
    })?;
    Ok(v["supportedVersions"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect())
}

/// The version to speak to a list's plugins (pure): the highest every one
/// supports, no higher than the list's own; None if there is none.
pub fn negotiate(list_version: &str, supported: &[Vec<String>]) -> Option<String> {
    let key = |v: &str| -> Option<(u32, u32, u32)> {
        let mut p = v.split('.').map(|x| x.parse::<u32>().ok());
        Some((p.next()??, p.next()??, p.next().flatten().unwrap_or(0)))
    };
    let cap = key(list_version)?;
    let mut common: Vec<&String> = supported.first()?.iter().filter(|v| supported.iter().all(|s| s.contains(v))).collect();
    common.retain(|v| key(v).is_some_and(|k| k <= cap));
    common.into_iter().max_by_key(|v| key(v)).cloned()
}

/// The address, prefix, gateway and MAC of `ifname` in an ADD result (pure).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Address {
    pub ip: String,
    pub prefix_len: u8,
    pub gateway: String,
    pub mac: String,
}

pub fn address_of(result: &Value, ifname: &str) -> Option<Address> {
    let ifaces = result["interfaces"].as_array().cloned().unwrap_or_default();
    let idx = ifaces.iter().position(|i| i["name"] == ifname && i.get("sandbox").is_some_and(|s| !s.as_str().unwrap_or("").is_empty()));
    let ips = result["ips"].as_array()?;
    let ip = ips
        .iter()
        .find(|ip| match (idx, ip["interface"].as_u64()) {
            (Some(i), Some(j)) => i as u64 == j,
            _ => true,
        })
        .filter(|ip| ip["address"].as_str().is_some_and(|a| !a.contains(':')))?;
    let (addr, prefix) = ip["address"].as_str()?.split_once('/')?;
    Some(Address {
        ip: addr.to_string(),
        prefix_len: prefix.parse().ok()?,
        gateway: ip["gateway"].as_str().unwrap_or("").to_string(),
        mac: idx.and_then(|i| ifaces[i]["mac"].as_str()).unwrap_or("").to_string(),
    })
}

/// A bridge network's conflist (pure): `bridge` on `bridge_name` as the
/// subnet's gateway, host-local addresses kept in `ipam_dir`, outbound NAT
/// unless internal, then portmap for published ports.
pub fn bridge_conflist(info: &super::NetworkInfo, ipam_dir: &Path) -> Value {
    let internal = info.internal;
    let mut range = json!({"subnet": info.subnet, "gateway": info.gateway});
    if let Some(r) = info.ip_range.as_deref().and_then(|r| super::subnet::Cidr::parse(r, "ip-range").ok()) {
        let (start, end) = r.hosts();
        (range["rangeStart"], range["rangeEnd"]) = (json!(start.to_string()), json!(end.to_string()));
    }
    let mut ipam = json!({
        "type": "host-local",
        "ranges": [[range]],
        "dataDir": ipam_dir,
    });
    if !internal {
        ipam["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    }
    json!({
        "cniVersion": VERSION,
        "name": info.name,
        "rind": info,
        "plugins": [
            {
                "type": "bridge",
                "bridge": info.bridge,
                // --ip: host-local takes runtimeConfig.ips.
                "capabilities": {"ips": true},
                "isGateway": !internal,
                // NAT is one rule per network, rindd's (network::nat), not
                // a chain per container made and removed on every run.
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": ipam,
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true, ONLY_WITH: "portMappings"},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_gets_the_lists_name_version_prev_result_and_only_the_runtime_config_it_asks_for() {
        let info = crate::network::NetworkInfo {
            name: "bridge".into(),
            bridge: "rind0".into(),
            subnet: "172.30.0.0/16".into(),
            gateway: "172.30.0.1".into(),
            ..Default::default()
        };
        let list = bridge_conflist(&info, Path::new("/run/rind/cni"));
        let ps = plugins(&list).unwrap();
        assert_eq!(ps.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["bridge", "portmap"]);
        let rc = json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "bandwidth": {}});
        let first = plugin_input(&list, &ps[0].1, None, &rc);
        assert_eq!((first["name"].as_str(), first["cniVersion"].as_str()), (Some("bridge"), Some(VERSION)));
        assert!(first.get("runtimeConfig").is_none() && first.get("prevResult").is_none(), "{first}");
        let prev = json!({"cniVersion": VERSION, "ips": []});
        let second = plugin_input(&list, &ps[1].1, Some(&prev), &rc);
        assert_eq!(second["prevResult"], prev);
        assert_eq!(second["runtimeConfig"], json!({"portMappings": rc["portMappings"]}), "only what its capabilities name");
        assert!(second.get("capabilities").is_none());
    }

    #[test]
    fn internal_networks_have_no_gateway_route_or_nat() {
        let info = crate::network::NetworkInfo {
            name: "n".into(),
            bridge: "br-1".into(),
            subnet: "10.9.0.0/24".into(),
            gateway: "10.9.0.1".into(),
            ip_range: Some("10.9.0.128/25".into()),
            internal: true,
            ..Default::default()
        };
        let l = bridge_conflist(&info, Path::new("/x"));
        let b = &l["plugins"][0];
        assert_eq!(b["isGateway"].as_bool(), Some(false));
        assert!(b["ipam"].get("routes").is_none());
        assert_eq!(
            (&b["ipam"]["ranges"][0][0]["rangeStart"], &b["ipam"]["ranges"][0][0]["rangeEnd"]),
            (&json!("10.9.0.129"), &json!("10.9.0.254"))
        );
        assert_eq!(l["rind"]["name"], "n");
    }

    #[test]
    fn portmap_is_left_out_without_ports_unmarked_plugins_always_run() {
        let info = crate::network::NetworkInfo { name: "n".into(), subnet: "10.9.0.0/24".into(), ..Default::default() };
        let list = bridge_conflist(&info, Path::new("/x"));
        let ps = plugins(&list).unwrap();
        let (bridge, portmap) = (&ps[0].1, &ps[1].1);
        let none = json!({"portMappings": []});
        let some = json!({"portMappings": [{"hostPort": 1, "containerPort": 2, "protocol": "tcp"}]});
        assert!(needed(bridge, &none) && !needed(portmap, &none) && needed(portmap, &some));
        assert!(plugin_input(&list, portmap, None, &some).get(ONLY_WITH).is_none(), "the plugin never sees the mark");
        let kubelets = json!({"type": "portmap", "capabilities": {"portMappings": true}});
        assert!(needed(&kubelets, &none), "unmarked plugins always run");
    }

    #[test]
    fn the_highest_version_every_plugin_speaks_up_to_the_lists() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let all = s(&["0.3.1", "0.4.0", "1.0.0"]);
        assert_eq!(negotiate("1.0.0", &[all.clone(), all.clone()]).as_deref(), Some("1.0.0"));
        assert_eq!(negotiate("1.0.0", &[all.clone(), s(&["0.3.1", "0.4.0"])]).as_deref(), Some("0.4.0"));
        assert_eq!(negotiate("0.4.0", std::slice::from_ref(&all)).as_deref(), Some("0.4.0"));
        assert_eq!(negotiate("1.0.0", &[all, s(&["2.0.0"])]), None);
        assert_eq!(negotiate("x", &[s(&["1.0.0"])]), None);
    }

    #[test]
    fn bad_conflists_are_named() {
        for (list, want) in [
            (json!({"plugins": [{"type": "bridge"}]}), "has no name"),
            (json!({"name": "n"}), "no plugins list"),
            (json!({"name": "n", "plugins": []}), "empty plugins"),
            (json!({"name": "n", "plugins": [{"type": "../bin/sh"}]}), "without a valid type"),
        ] {
            let e = plugins(&list).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn errors_read_from_the_plugins_json_or_its_output() {
        assert_eq!(
            error_message(br#"{"code": 7, "msg": "failed to allocate", "details": "range full"}"#, b""),
            "failed to allocate: range full"
        );
        assert_eq!(error_message(b"", b"panic: boom\n"), "panic: boom");
    }

    #[test]
    fn the_address_of_the_container_interface() {
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "rind0", "mac": "aa"}, {"name": "veth1", "mac": "bb"}, {"name": "eth0", "mac": "02:42:ac:1e:00:02", "sandbox": "/run/x"}],
            "ips": [{"interface": 2, "address": "172.30.0.2/16", "gateway": "172.30.0.1"}],
        });
        assert_eq!(
            address_of(&r, "eth0"),
            Some(Address { ip: "172.30.0.2".into(), prefix_len: 16, gateway: "172.30.0.1".into(), mac: "02:42:ac:1e:00:02".into() })
        );
        assert_eq!(address_of(&json!({}), "eth0"), None);
    }

    #[test]
    fn a_missing_plugin_names_the_dirs_searched() {
        let e = find("nope", &[PathBuf::from("/a"), PathBuf::from("/b")]).unwrap_err().to_string();
        assert!(e.contains("\"nope\"") && e.contains("/a:/b"), "{e}");
    }
}
