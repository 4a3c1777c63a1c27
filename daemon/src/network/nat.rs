//! Outbound NAT: one MASQUERADE rule per network that is not internal
//! (`-s SUBNET ! -o BRIDGE`), as docker has, put in when a container first
//! attaches (checked with -C first, so a restarted rindd or a reboot only
//! adds what is missing) and taken out when the network is removed.

use super::{NetworkError, NetworkInfo};

/// The rule's arguments after `iptables -t nat -X POSTROUTING` (pure).
pub fn rule(n: &NetworkInfo) -> Vec<String> {
    ["-s", &n.subnet, "!", "-o", &n.bridge, "-j", "MASQUERADE", "-m", "comment", "--comment", &format!("rind network {}", n.name)]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn iptables(op: &str, n: &NetworkInfo) -> Result<std::process::Output, NetworkError> {
    std::process::Command::new("iptables")
        .args(["-w", "-t", "nat", op, "POSTROUTING"])
        .args(rule(n))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| NetworkError::Io { op: "run", path: "iptables".into(), source })
}

/// Adds the network's rule unless it is there (blocking: a few ms, once
/// per network and rindd).
pub fn ensure(n: &NetworkInfo) -> Result<(), NetworkError> {
    if iptables("-C", n)?.status.success() {
        return Ok(());
    }
    let out = iptables("-A", n)?;
    if !out.status.success() {
        return Err(NetworkError::Invalid(format!(
            "network {}: iptables could not add its NAT rule: {}",
            n.name,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Removes the network's rule, every copy of it.
pub fn remove(n: &NetworkInfo) {
    while iptables("-D", n).is_ok_and(|o| o.status.success()) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_masquerade_rule_for_what_leaves_the_bridge() {
        let n = NetworkInfo { name: "bridge".into(), subnet: "172.30.0.0/16".into(), bridge: "rind0".into(), ..Default::default() };
        assert_eq!(rule(&n).join(" "), "-s 172.30.0.0/16 ! -o rind0 -j MASQUERADE -m comment --comment rind network bridge");
    }
}
