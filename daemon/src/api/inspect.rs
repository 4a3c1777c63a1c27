//! `rind inspect`: a container as Docker's JSON shows it.

use serde_json::{json, Value};

use crate::network::Attachment;
use crate::services::containers::{Config, ContainerError, Paths};
use crate::store::{format_time, ContainerRow, Status};

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Docker's NetworkSettings from the network's kept attachment (pure).
fn network_settings(c: &Config, attached: &[Attachment]) -> Value {
    // The top-level fields are the first network's, as docker's.
    let addr = attached.first().and_then(Attachment::address).unwrap_or_default();
    let mut ports = serde_json::Map::new();
    for p in &c.run.ports {
        let ip = if p.host_ip.is_empty() { "0.0.0.0" } else { p.host_ip.as_str() };
        let entry = ports.entry(p.key()).or_insert_with(|| json!([]));
        entry.as_array_mut().expect("array").push(json!({"HostIp": ip, "HostPort": p.host_port.to_string()}));
    }
    let mut networks = serde_json::Map::new();
    for a in attached {
        let addr = a.address().unwrap_or_default();
        networks.insert(
            a.network.clone(),
            json!({
                "NetworkID": a.network,
                "IPAddress": addr.ip,
                "IPPrefixLen": addr.prefix_len,
                "Gateway": addr.gateway,
                "MacAddress": addr.mac,
            }),
        );
    }
    json!({
        "IPAddress": addr.ip,
        "IPPrefixLen": addr.prefix_len,
        "Gateway": addr.gateway,
        "MacAddress": addr.mac,
        "Ports": ports,
        "Networks": networks,
    })
}

/// `network inspect`: a network as docker's JSON shows it, with the
/// containers attached (pure).
pub fn network_json(n: &crate::network::NetworkInfo, attached: &[(String, String, Attachment)]) -> Value {
    let mut ipam = json!({"Subnet": n.subnet, "Gateway": n.gateway});
    if let Some(r) = &n.ip_range {
        ipam["IPRange"] = json!(r);
    }
    let containers: serde_json::Map<String, Value> = attached
        .iter()
        .map(|(id, name, a)| {
            let addr = a.address().unwrap_or_default();
            (id.clone(), json!({"Name": name, "IPv4Address": format!("{}/{}", addr.ip, addr.prefix_len), "MacAddress": addr.mac}))
        })
        .collect();
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": "bridge",
        "IPAM": {"Driver": "default", "Config": [ipam]},
        "Internal": n.internal,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": n.bridge},
        "Labels": n.labels,
    })
}

pub fn container_json(row: &ContainerRow, paths: &Paths, attached: &[Attachment]) -> Result<Value, ContainerError> {
    let c = Config::of(row)?;
    let spec: oci_spec::runtime::Spec = serde_json::from_str(&row.spec).unwrap_or_default();
    let process = spec.process().clone().unwrap_or_default();
    let args = process.args().clone().unwrap_or_default();
    let policy = row.restart_policy;
    let status = row.status;
    let time = |t: Option<std::time::SystemTime>| t.map(format_time).unwrap_or_else(|| ZERO_TIME.into());
    Ok(json!([{
        "Id": row.id,
        "Name": format!("/{}", row.name),
        "Created": format_time(row.created),
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": status.as_str(),
            "Running": status.is_live(),
            "Paused": status == Status::Paused,
            "Restarting": status == Status::Restarting,
            // Since the last start: the shim's TaskOOM, recorded on the row.
            "OOMKilled": row.oom_killed,
            "Dead": status == Status::Dead,
            "Pid": row.pid,
            // Unknown (a lost shim) is -1, never a made-up code; Error says why.
            "ExitCode": row.exit_code.unwrap_or(if status == Status::Dead { -1 } else { 0 }),
            "Error": row.exit_reason.clone().unwrap_or_default(),
            "StartedAt": time(row.started_at),
            "FinishedAt": time(row.finished_at),
        },
        "Image": c.image_id,
        "LogPath": paths.log(&row.id),
        "RestartCount": row.restart_count,
        "Config": {
            "Hostname": c.run.hostname,
            "User": c.run.user.clone().unwrap_or_default(),
            "Tty": c.run.tty,
            "OpenStdin": c.open_stdin,
            "Env": process.env().clone().unwrap_or_default(),
            "Cmd": c.run.cmd,
            "Entrypoint": c.run.entrypoint,
            "Image": row.image,
            "WorkingDir": process.cwd(),
            "Labels": c.run.labels,
            "StopSignal": c.stop_signal,
            "StopTimeout": c.stop_timeout,
        },
        "HostConfig": {
            "Binds": c.run.binds.iter().map(|(h, t, ro)| format!("{h}:{t}{}", if *ro { ":ro" } else { "" })).collect::<Vec<_>>(),
            "NetworkMode": c.run.network,
            "RestartPolicy": { "Name": policy.name(), "MaximumRetryCount": policy.max_retries() },
            "AutoRemove": c.auto_remove,
            "CapAdd": c.run.cap_add,
            "CapDrop": c.run.cap_drop,
            "Privileged": c.run.privileged,
            "ReadonlyRootfs": c.run.read_only,
            "SecurityOpt": c.security_opt,
            "Tmpfs": c.run.tmpfs,
            "Memory": c.run.memory.unwrap_or(0),
            "NanoCpus": c.run.cpus.map(|x| (x * 1e9) as i64).unwrap_or(0),
            "PidsLimit": c.run.pids_limit,
        },
        "NetworkSettings": network_settings(&c, attached),
        "Mounts": c.run.binds.iter().map(|(h, t, ro)| json!({"Type": "bind", "Source": h, "Destination": t, "RW": !ro})).collect::<Vec<_>>(),
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::restart::Policy;
    use crate::store::{parse_time, Desired};

    #[test]
    fn docker_shaped_state() {
        let row = ContainerRow {
            id: "abc".into(),
            name: "web".into(),
            image: "busybox".into(),
            spec: r#"{"ociVersion":"1.2.0","process":{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh","-c","exit 3"]}}"#.into(),
            desired: Desired::Running,
            restart_policy: Policy::OnFailure(2),
            bundle: "b".into(),
            shim_address: None,
            created: parse_time("2026-01-01T00:00:00Z").unwrap(),
            exit_code: Some(3),
            finished_at: Some(parse_time("2026-01-01T00:00:01.5Z").unwrap()),
            exit_reason: None,
            config: r#"{"restart":"on-failure:2","hostname":"h"}"#.into(),
            status: Status::Exited,
            pid: 0,
            started_at: None,
            restart_count: 1,
            oom_killed: true,
        };
        let paths = Paths { root: "/var/lib/rind".into(), state: "/run/rind".into() };
        let v = &container_json(&row, &paths, &[]).unwrap()[0];
        assert_eq!(v["Name"], "/web");
        assert_eq!(v["State"]["Status"], "exited");
        assert_eq!(v["State"]["ExitCode"], 3);
        assert_eq!(v["State"]["OOMKilled"], true, "the row's, not a constant");
        assert_eq!(v["State"]["FinishedAt"], "2026-01-01T00:00:01.500000000Z");
        assert_eq!(v["Created"], "2026-01-01T00:00:00.000000000Z");
        assert_eq!((&v["State"]["Running"], &v["State"]["Dead"]), (&Value::Bool(false), &Value::Bool(false)));
        assert_eq!(v["State"]["StartedAt"], ZERO_TIME);
        assert_eq!(v["Path"], "sh");
        assert_eq!(v["Args"][1], "exit 3");
        assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
        assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
        assert_eq!(v["LogPath"], "/var/lib/rind/containers/abc/abc.log");
    }
}
