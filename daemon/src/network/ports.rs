//! Published ports: docker's `-p` forms, read into mappings (pure), and
//! free host ports for `-p CONTAINERPORT`.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid published port {spec:?}: {reason}")]
pub struct PortError {
    pub spec: String,
    pub reason: String,
}

/// One published port. `host_port` 0 until a free one is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Empty: every address of the host.
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
}

impl PortMapping {
    /// docker's key for it: "80/tcp".
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol)
    }
}

/// `[IP:][HOSTPORT:]CONTAINERPORT[/PROTO]` (pure). IPv6 host addresses go
/// in brackets, as docker's: `[::1]:8080:80`.
pub fn parse(spec: &str) -> Result<PortMapping, PortError> {
    let bad = |reason: &str| PortError { spec: spec.to_string(), reason: reason.to_string() };
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if protocol != "tcp" && protocol != "udp" {
        return Err(bad("the protocol must be tcp or udp"));
    }
    let (host_ip, ports) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r.split_once(']').ok_or_else(|| bad("an unclosed [ in the host address"))?;
        (ip.to_string(), after.strip_prefix(':').ok_or_else(|| bad("a host address needs a port after it"))?.to_string())
    } else {
        match rest.matches(':').count() {
            0 | 1 => (String::new(), rest.to_string()),
            2 => {
                let (ip, p) = rest.split_once(':').expect("two colons");
                (ip.to_string(), p.to_string())
            }
            _ => return Err(bad("too many colons (an IPv6 host address goes in brackets)")),
        }
    };
    if !host_ip.is_empty() && host_ip.parse::<std::net::IpAddr>().is_err() {
        return Err(bad("the host address is not an IP address"));
    }
    let (host, container) = match ports.split_once(':') {
        Some((h, c)) => (h, c),
        None => ("", ports.as_str()),
    };
    if host.contains('-') || container.contains('-') {
        return Err(bad("port ranges are not supported"));
    }
    let port = |s: &str, what: &str| -> Result<u16, PortError> {
        match s.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(bad(&format!("the {what} port must be a number from 1 to 65535"))),
        }
    };
    let container_port = port(container, "container")?;
    let host_port = if host.is_empty() { 0 } else { port(host, "host")? };
    Ok(PortMapping { host_ip, host_port, container_port, protocol })
}

/// A host port free now for `protocol` on `ip` (the kernel's choice).
pub fn free_port(ip: &str, protocol: &str) -> std::io::Result<u16> {
    let ip = if ip.is_empty() { "0.0.0.0" } else { ip };
    let addr = std::net::SocketAddr::new(ip.parse().map_err(std::io::Error::other)?, 0);
    if protocol == "udp" {
        Ok(std::net::UdpSocket::bind(addr)?.local_addr()?.port())
    } else {
        Ok(std::net::TcpListener::bind(addr)?.local_addr()?.port())
    }
}

/// Whether two mappings claim the same host port (same protocol, and the
/// same address or either on every address).
pub fn clash(a: &PortMapping, b: &PortMapping) -> bool {
    a.host_port != 0
        && a.host_port == b.host_port
        && a.protocol == b.protocol
        && (a.host_ip == b.host_ip || a.host_ip.is_empty() || b.host_ip.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ip: &str, h: u16, c: u16, p: &str) -> PortMapping {
        PortMapping { host_ip: ip.into(), host_port: h, container_port: c, protocol: p.into() }
    }

    #[test]
    fn dockers_forms() {
        assert_eq!(parse("80").unwrap(), m("", 0, 80, "tcp"));
        assert_eq!(parse("8080:80").unwrap(), m("", 8080, 80, "tcp"));
        assert_eq!(parse("8080:80/udp").unwrap(), m("", 8080, 80, "udp"));
        assert_eq!(parse("127.0.0.1:8080:80").unwrap(), m("127.0.0.1", 8080, 80, "tcp"));
        assert_eq!(parse("127.0.0.1::80/UDP").unwrap(), m("127.0.0.1", 0, 80, "udp"));
        assert_eq!(parse("[::1]:8080:80").unwrap(), m("::1", 8080, 80, "tcp"));
        assert_eq!(m("", 1, 80, "udp").key(), "80/udp");
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        for (s, want) in [
            ("0", "container port"),
            ("x:80", "host port"),
            ("80/sctp", "tcp or udp"),
            ("1.2.3:80:80", "not an IP"),
            ("8080-8081:80-81", "ranges"),
            ("::1:80:80", "too many colons"),
            ("70000:80", "host port"),
            ("", "container port"),
        ] {
            let e = parse(s).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(&format!("{s:?}")), "{s}: {e}");
        }
    }

    #[test]
    fn clashes_need_the_same_port_protocol_and_overlapping_addresses() {
        assert!(clash(&m("", 80, 1, "tcp"), &m("127.0.0.1", 80, 2, "tcp")));
        assert!(!clash(&m("", 80, 1, "tcp"), &m("", 80, 1, "udp")));
        assert!(!clash(&m("127.0.0.1", 80, 1, "tcp"), &m("127.0.0.2", 80, 1, "tcp")));
        assert!(!clash(&m("", 0, 1, "tcp"), &m("", 0, 1, "tcp")));
    }
}
