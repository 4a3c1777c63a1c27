//! `port`: a container's published ports, as docker prints them.

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::ContainerRef;
use serde_json::Value;
use tonic::transport::Channel;

use crate::status;

pub async fn port(c: &mut RindClient<Channel>, container: String, private: Option<String>) -> anyhow::Result<i32> {
    let json = c.inspect_container(ContainerRef { id: container.clone() }).await.map_err(status)?.into_inner().json;
    let v: Value = serde_json::from_str(&json)?;
    let lines = lines(&v[0]["NetworkSettings"]["Ports"], private.as_deref());
    if lines.is_empty() {
        if let Some(p) = private {
            anyhow::bail!("no public port '{p}' published for {container}");
        }
    }
    for l in lines {
        println!("{l}");
    }
    Ok(0)
}

/// "80/tcp -> 0.0.0.0:8080", sorted, or only the host side for one asked
/// port (`80` means `80/tcp`), as docker prints (pure).
fn lines(ports: &Value, private: Option<&str>) -> Vec<String> {
    let want = private.map(|p| if p.contains('/') { p.to_string() } else { format!("{p}/tcp") });
    let mut out = Vec::new();
    let mut keys: Vec<(&String, &Value)> = ports.as_object().map(|m| m.iter().collect()).unwrap_or_default();
    keys.sort_by_key(|(k, _)| (k.split('/').next().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0), k.to_string()));
    for (key, binds) in keys {
        if want.as_deref().is_some_and(|w| w != key) {
            continue;
        }
        for b in binds.as_array().into_iter().flatten() {
            let host = format!("{}:{}", b["HostIp"].as_str().unwrap_or(""), b["HostPort"].as_str().unwrap_or(""));
            out.push(if want.is_some() { host } else { format!("{key} -> {host}") });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_lines() {
        let ports = serde_json::json!({
            "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8443"}],
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "9090"}],
            "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}],
        });
        assert_eq!(
            lines(&ports, None),
            ["53/udp -> 0.0.0.0:5353", "80/tcp -> 0.0.0.0:8080", "80/tcp -> 127.0.0.1:9090", "443/tcp -> 0.0.0.0:8443"]
        );
        assert_eq!(lines(&ports, Some("80")), ["0.0.0.0:8080", "127.0.0.1:9090"]);
        assert_eq!(lines(&ports, Some("53/udp")), ["0.0.0.0:5353"]);
        assert!(lines(&ports, Some("53")).is_empty());
    }
}
