//! Issue 12: container networks through CNI. Each test runs rindd in a
//! network namespace of its own (`Daemon::start_networked`), so the bridge,
//! veths and iptables rules it makes die with the namespace, and traffic
//! never leaves it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rind_tests::daemon::{Daemon, TestNetns};
use rind_tests::*;

fn networked() -> Daemon {
    let d = Daemon::start_networked("debug = false\n");
    d.load_busybox();
    d
}

fn inspect(d: &Daemon, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", name])).unwrap();
    v[0].clone()
}

fn ns(d: &Daemon) -> &TestNetns {
    d.netns.as_ref().expect("a networked daemon")
}

/// GET `path` from `addr` inside the namespace; the body.
fn http_get(d: &Daemon, addr: &str, path: &str) -> Result<String, String> {
    let (addr, path) = (addr.to_string(), path.to_string());
    ns(d).run_in(move || {
        let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5)).map_err(|e| format!("{addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or(out))
    })
}

/// A container serving its /etc over HTTP on port 80.
fn web(d: &Daemon, name: &str, publish: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    for p in publish {
        args.extend(["-p", p]);
    }
    args.extend(["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    d.ok(&args);
    let ip = inspect(d, name)["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
    d.wait_for("httpd answers", Duration::from_secs(20), || http_get(d, &format!("{ip}:80"), "/hostname").is_ok());
    ip
}

#[test]
fn containers_get_an_address_on_the_default_bridge_and_reach_each_other() {
    let d = networked();
    let ip = web(&d, "web", &[]);
    let v = inspect(&d, "web");
    let net = &v["NetworkSettings"];
    assert!(ip.starts_with("172.30."), "{net}");
    assert_eq!((net["Gateway"].as_str(), net["IPPrefixLen"].as_u64()), (Some("172.30.0.1"), Some(16)), "{net}");
    assert_eq!(net["Networks"]["bridge"]["IPAddress"], ip.as_str());
    assert!(net["MacAddress"].as_str().is_some_and(|m| m.len() == 17), "{net}");
    assert_eq!(v["HostConfig"]["NetworkMode"], "bridge");
    assert!(ns(&d).ip(&["link", "show", "rind0"]).contains("rind0"));
    // From the host side, by address.
    let hostname = v["Config"]["Hostname"].as_str().unwrap().to_string();
    assert_eq!(http_get(&d, &format!("{ip}:80"), "/hostname").unwrap().trim(), hostname);
    // From another container.
    let got = d.ok(&["run", "--rm", "busybox", "wget", "-qO-", &format!("http://{ip}/hostname")]);
    assert_eq!(got.trim(), hostname);
    // Loopback is up in a container's namespace, and eth0 has the address.
    let links = d.ok(&["run", "--rm", "busybox", "ip", "addr"]);
    assert!(links.contains("lo:") && links.contains("UP") && links.contains("eth0"), "{links}");
    // A restarted container keeps its namespace and address.
    d.ok(&["stop", "-t", "0", "web"]);
    d.ok(&["start", "web"]);
    assert_eq!(inspect(&d, "web")["NetworkSettings"]["IPAddress"], ip.as_str());
    d.wait_for("httpd answers again", Duration::from_secs(20), || http_get(&d, &format!("{ip}:80"), "/hostname").is_ok());
    // --network none: no eth0.
    let none = d.ok(&["run", "--rm", "--network", "none", "busybox", "ip", "addr"]);
    assert!(!none.contains("eth0"), "{none}");
}

#[test]
fn a_published_port_answers_on_the_hosts_addresses_and_from_containers() {
    let d = networked();
    web(&d, "pub", &["8080:80"]);
    let hostname = inspect(&d, "pub")["Config"]["Hostname"].as_str().unwrap().to_string();
    let ports = &inspect(&d, "pub")["NetworkSettings"]["Ports"];
    assert_eq!(ports["80/tcp"], serde_json::json!([{"HostIp": "0.0.0.0", "HostPort": "8080"}]), "{ports}");
    assert_eq!(d.ok(&["port", "pub"]), "80/tcp -> 0.0.0.0:8080\n");
    assert_eq!(d.ok(&["port", "pub", "80"]), "0.0.0.0:8080\n");
    assert!(stderr(&d.rind(&["port", "pub", "81"])).contains("no public port '81' published for pub"));
    for addr in ["127.0.0.1:8080", "172.30.0.1:8080"] {
        let got = http_get(&d, addr, "/hostname");
        assert_eq!(got.as_deref().map(str::trim), Ok(hostname.as_str()), "{addr}");
    }
    let from_container = d.ok(&["run", "--rm", "busybox", "wget", "-qO-", "http://172.30.0.1:8080/hostname"]);
    assert_eq!(from_container.trim(), hostname);
    // -p CONTAINERPORT: a free host port, shown by inspect.
    web(&d, "any", &["80"]);
    let port = inspect(&d, "any")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"].as_str().unwrap().to_string();
    assert_ne!(port, "0");
    let any_host = inspect(&d, "any")["Config"]["Hostname"].as_str().unwrap().to_string();
    assert_eq!(http_get(&d, &format!("127.0.0.1:{port}"), "/hostname").unwrap().trim(), any_host);
}

#[test]
fn outbound_traffic_leaves_through_nat() {
    let d = networked();
    // A second namespace, "outside", joined to rindd's by a veth: it has no
    // route to the containers' subnet, so only NAT brings answers back.
    let outside = TestNetns::new();
    let (a, b) = (unique_id("va"), unique_id("vb"));
    let (a, b) = (&a[a.len() - 12..], &b[b.len() - 12..]);
    let o = std::process::Command::new("ip")
        .args(["link", "add", a, "netns", &ns(&d).name, "type", "veth", "peer", "name", b, "netns", &outside.name])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    ns(&d).ip(&["addr", "add", "10.250.0.1/24", "dev", a]);
    ns(&d).ip(&["link", "set", a, "up"]);
    outside.ip(&["addr", "add", "10.250.0.2/24", "dev", b]);
    outside.ip(&["link", "set", b, "up"]);
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("hello"), "from outside\n").unwrap();
    let _server = KillOnDrop(outside.cmd("busybox").args(["httpd", "-f", "-p", "8000", "-h"]).arg(www.path()).spawn().unwrap());
    d.wait_for("the outside server answers", Duration::from_secs(20), || http_get(&d, "10.250.0.2:8000", "/hello").is_ok());
    let got = d.ok(&["run", "--rm", "busybox", "wget", "-qO-", "http://10.250.0.2:8000/hello"]);
    assert_eq!(got, "from outside\n");
}

#[test]
fn a_tcp_connection_through_a_published_port_survives_kill_9_of_rindd() {
    let mut d = networked();
    d.ok(&["run", "-d", "--name", "echo", "-p", "9000:80", "busybox", "nc", "-ll", "-p", "80", "-e", "cat"]);
    let ip = inspect(&d, "echo")["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
    // The connection is made on a thread in the namespace; the socket is ours after.
    let stream = ns(&d).run_in(|| {
        let t0 = std::time::Instant::now();
        loop {
            match TcpStream::connect("127.0.0.1:9000") {
                Ok(s) => break s,
                Err(_) if t0.elapsed() < patience(Duration::from_secs(20)) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("connect through 9000: {e}"),
            }
        }
    });
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut line = String::new();
    writeln!(w, "one").unwrap();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "one\n");
    d.kill9();
    line.clear();
    writeln!(w, "two").unwrap();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "two\n", "the connection outlives rindd");
    d.spawn();
    assert_eq!(inspect(&d, "echo")["NetworkSettings"]["IPAddress"], ip.as_str(), "a new rindd knows the address");
    line.clear();
    writeln!(w, "three").unwrap();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "three\n");
}

fn leftovers(d: &Daemon) -> Vec<String> {
    d.network_leftovers()
}

#[test]
fn rm_frees_the_address_and_port_and_leaves_nothing_also_for_a_lost_shim() {
    let d = networked();
    web(&d, "aa", &["8081:80"]);
    d.ok(&["rm", "-f", "aa"]);
    assert_eq!(leftovers(&d), Vec::<String>::new());
    // The port is free again.
    web(&d, "bb", &["8081:80"]);
    // A shim killed: rm still runs CNI DEL.
    let shim = d.shim_pids();
    assert_eq!(shim.len(), 1);
    // SAFETY: kill(2) on the shim's pid.
    unsafe { libc::kill(shim[0], libc::SIGKILL) };
    d.wait_for("the lost shim is noticed", Duration::from_secs(20), || {
        !d.ok(&["ps", "-q"]).contains(&inspect(&d, "bb")["Id"].as_str().unwrap()[..12])
    });
    d.ok(&["rm", "-f", "bb"]);
    assert_eq!(leftovers(&d), Vec::<String>::new());
    for _ in 0..5 {
        d.ok(&["run", "--rm", "-p", "8082:80", "busybox", "true"]);
    }
    assert_eq!(leftovers(&d), Vec::<String>::new());
}

#[test]
fn bad_input_is_named_and_leaves_nothing() {
    let d = networked();
    let err = |args: &[&str]| {
        let o = d.rind(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        stderr(&o)
    };
    let e = err(&["run", "--rm", "--network", "nope", "busybox", "true"]);
    assert!(e.contains("network nope not found"), "{e}");
    web(&d, "first", &["8090:80"]);
    let e = err(&["run", "-d", "-p", "8090:80", "busybox", "true"]);
    assert!(e.contains("8090/tcp is already published"), "{e}");
    for (p, want) in [("80/sctp", "tcp or udp"), ("x:80", "host port"), ("1.2.3:80:80", "not an IP")] {
        let e = err(&["run", "--rm", "-p", p, "busybox", "true"]);
        assert!(e.contains(want), "{p}: {e}");
    }
    let e = err(&["run", "--rm", "--network", "host", "-p", "80", "busybox", "true"]);
    assert!(e.contains("cannot be published"), "{e}");
    let held = leftovers(&d);
    assert!(held.iter().any(|l| l.starts_with("net/ns")) && held.iter().any(|l| l.starts_with("ipam")), "{held:?}");
    d.ok(&["rm", "-f", "first"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert_eq!(leftovers(&d), Vec::<String>::new());
}

#[test]
fn a_missing_plugin_is_named_and_leaves_nothing() {
    let empty = tempfile::tempdir().unwrap();
    let d = Daemon::start_networked(&format!("debug = false\ncni_plugin_dirs = [\"{}\"]\n", empty.path().display()));
    d.load_busybox();
    let o = d.rind(&["run", "--name", "xx", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("CNI plugin \"bridge\" not found"), "{}", stderr(&o));
    d.ok(&["rm", "-f", "xx"]);
    assert_eq!(leftovers(&d), Vec::<String>::new());
}

#[test]
fn user_defined_networks_find_containers_by_name_and_short_id_as_they_come_and_go() {
    let d = networked();
    let id = d.ok(&["network", "create", "--label", "team=web", "appnet"]).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ls = d.ok(&["network", "ls"]);
    assert!(ls.starts_with("NETWORK ID") && ls.contains("appnet") && ls.contains("bridge"), "{ls}");
    // Already there when the server comes: it learns the name then.
    d.ok(&["run", "-d", "--name", "client", "--network", &id[..12], "busybox", "sleep", "600"]);
    d.ok(&["run", "-d", "--name", "server", "--network", "appnet", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let server = inspect(&d, "server");
    let (ip, short) = (
        server["NetworkSettings"]["Networks"]["appnet"]["IPAddress"].as_str().unwrap().to_string(),
        server["Id"].as_str().unwrap()[..12].to_string(),
    );
    assert!(ip.starts_with("172.31."), "a /24 of 172.31.0.0/16: {ip}");
    let hostname = server["Config"]["Hostname"].as_str().unwrap().to_string();
    d.wait_for("httpd answers", Duration::from_secs(20), || http_get(&d, &format!("{ip}:80"), "/hostname").is_ok());
    for name in ["server", short.as_str()] {
        let got = d.ok(&["exec", "client", "wget", "-qO-", &format!("http://{name}/hostname")]);
        assert_eq!(got.trim(), hostname, "by {name}");
    }
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["network", "inspect", "appnet"])).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["Labels"]["team"], "web");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "172.31.0.0/24");
    assert_eq!(v[0]["Containers"][server["Id"].as_str().unwrap()]["Name"], "server");
    // In use: refused, naming the users.
    let o = d.rind(&["network", "rm", "appnet"]);
    assert!(!o.status.success() && stderr(&o).contains("in use by container(s)"), "{}", stderr(&o));
    // Gone: the name no longer resolves.
    d.ok(&["rm", "-f", "server"]);
    assert!(!d.ok(&["exec", "client", "cat", "/etc/hosts"]).contains("server"));
    // The default bridge has no names (docker's rule).
    d.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"]);
    let o = d.rind(&["run", "--rm", "busybox", "wget", "-qO-", "-T", "2", "http://plain/"]);
    assert!(!o.status.success());
    d.ok(&["rm", "-f", "client", "plain"]);
    assert_eq!(d.ok(&["network", "rm", "appnet"]).trim(), "appnet");
    let nat = stdout(&ns(&d).cmd("iptables-save").args(["-t", "nat"]).output().unwrap());
    assert!(nat.contains("rind network bridge") && !nat.contains("rind network appnet"), "one NAT rule per network, gone with it:\n{nat}");
    assert_eq!(leftovers(&d), Vec::<String>::new());
    assert!(!d.ok(&["network", "ls"]).contains("appnet"));
}

#[test]
fn network_create_checks_what_it_is_given_and_prune_keeps_what_is_used() {
    let d = networked();
    d.ok(&["network", "create", "--subnet", "10.77.0.0/16", "--gateway", "10.77.0.254", "--ip-range", "10.77.5.0/24", "fixed"]);
    for (args, want) in [
        (vec!["network", "create", "fixed"], "network with name fixed already exists"),
        (vec!["network", "create", "--subnet", "10.77.8.0/24", "other"], "overlaps 10.77.0.0/16 of network fixed"),
        (vec!["network", "create", "--subnet", "172.30.9.0/24", "other"], "of network bridge"),
        (vec!["network", "create", "--subnet", "10.9.0.0/24", "--gateway", "10.8.0.1", "other"], "not a host address"),
        (vec!["network", "create", "--subnet", "10.9.0.1/24", "other"], "host bits"),
        (vec!["network", "create", "x!y"], "invalid network name"),
        (vec!["network", "rm", "bridge"], "pre-defined network"),
        (vec!["network", "rm", "nope"], "network nope not found"),
    ] {
        let o = d.rind(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    d.ok(&["run", "-d", "--name", "user", "--network", "fixed", "busybox", "sleep", "600"]);
    let v = inspect(&d, "user");
    let ip: std::net::Ipv4Addr = v["NetworkSettings"]["IPAddress"].as_str().unwrap().parse().unwrap();
    assert_eq!(ip.octets()[..3], [10, 77, 5], "from the ip-range: {ip}");
    assert_eq!(v["NetworkSettings"]["Gateway"], "10.77.0.254");
    // --ip, an alias, --add-host host-gateway, --dns*.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "fixed",
        "--ip",
        "10.77.5.50",
        "--network-alias",
        "database",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    assert_eq!(inspect(&d, "db")["NetworkSettings"]["IPAddress"], "10.77.5.50");
    let o = d.rind(&["run", "--rm", "--network", "fixed", "--ip", "10.77.5.50", "busybox", "true"]);
    assert!(stderr(&o).contains("address 10.77.5.50/16 is already taken by container db"), "{}", stderr(&o));
    let flags = [
        "--network",
        "fixed",
        "--add-host",
        "gw:host-gateway",
        "--add-host",
        "other:10.1.2.3",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "ndots:3",
    ];
    let mut args = vec!["run", "--rm"];
    args.extend(flags);
    args.extend(["busybox", "sh", "-c", "cat /etc/hosts /etc/resolv.conf; until wget -qO- http://database/hostname; do sleep 0.1; done"]);
    let out = d.ok(&args);
    for want in [
        "10.77.0.254\tgw\n",
        "10.1.2.3\tother\n",
        "10.77.5.50\tdb ",
        " database\n",
        "nameserver 10.0.0.53\n",
        "search corp.example\n",
        "options ndots:3\n",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    assert!(out.ends_with(&format!("{}\n", inspect(&d, "db")["Config"]["Hostname"].as_str().unwrap())), "{out}");
    d.ok(&["rm", "-f", "db"]);
    d.ok(&["network", "create", "idle"]);
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert_eq!(pruned, "Deleted Networks:\nidle\n");
    let names = d.ok(&["network", "ls", "-q"]);
    assert_eq!(names.lines().count(), 2, "bridge and fixed: {names}");
}

#[test]
fn an_internal_network_reaches_its_peers_but_not_outside() {
    let d = networked();
    let outside = TestNetns::new();
    let (a, b) = (unique_id("va"), unique_id("vb"));
    let (a, b) = (&a[a.len() - 12..], &b[b.len() - 12..]);
    let o = std::process::Command::new("ip")
        .args(["link", "add", a, "netns", &ns(&d).name, "type", "veth", "peer", "name", b, "netns", &outside.name])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    ns(&d).ip(&["addr", "add", "10.251.0.1/24", "dev", a]);
    ns(&d).ip(&["link", "set", a, "up"]);
    outside.ip(&["addr", "add", "10.251.0.2/24", "dev", b]);
    outside.ip(&["link", "set", b, "up"]);
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("hello"), "from outside\n").unwrap();
    let _server = KillOnDrop(outside.cmd("busybox").args(["httpd", "-f", "-p", "8000", "-h"]).arg(www.path()).spawn().unwrap());
    d.wait_for("the outside server answers", Duration::from_secs(20), || http_get(&d, "10.251.0.2:8000", "/hello").is_ok());
    d.ok(&["network", "create", "--internal", "sealed"]);
    d.ok(&["run", "-d", "--name", "peer", "--network", "sealed", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let o = d.rind(&["run", "--rm", "--network", "sealed", "busybox", "wget", "-qO-", "-T", "3", "http://10.251.0.2:8000/hello"]);
    assert!(!o.status.success(), "an internal network has no way out: {}", stdout(&o));
    let peer_host = inspect(&d, "peer")["Config"]["Hostname"].as_str().unwrap().to_string();
    let got =
        d.ok(&["run", "--rm", "--network", "sealed", "busybox", "sh", "-c", "until wget -qO- http://peer/hostname; do sleep 0.1; done"]);
    assert_eq!(got.trim(), peer_host);
}

#[test]
fn a_published_udp_port_answers_from_the_host_side() {
    let d = networked();
    // The echo server is a host binary: the container gets the host's / read-only to run it.
    let echo = env!("CARGO_BIN_EXE_rind-test-udp-echo");
    let libs = "/host/usr/lib/x86_64-linux-gnu";
    let prog = format!("/host{echo}");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        "5353:53/udp",
        "-v",
        "/:/host:ro",
        "busybox",
        "/host/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "--library-path",
        libs,
        &prog,
        "53",
    ]);
    let ports = &inspect(&d, "udp")["NetworkSettings"]["Ports"];
    assert_eq!(ports["53/udp"], serde_json::json!([{"HostIp": "0.0.0.0", "HostPort": "5353"}]), "{ports}");
    for addr in ["127.0.0.1:5353", "172.30.0.1:5353"] {
        let addr = addr.to_string();
        let got = ns(&d).run_in(move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let t0 = std::time::Instant::now();
            let mut buf = [0u8; 64];
            // Datagrams before the server binds are lost: ask again until it answers.
            loop {
                s.send_to(b"ping", &addr).unwrap();
                if let Ok(n) = s.recv(&mut buf) {
                    break String::from_utf8_lossy(&buf[..n]).to_string();
                }
                assert!(t0.elapsed() < patience(Duration::from_secs(20)), "no answer from {addr}");
            }
        });
        assert_eq!(got, "ping");
    }
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let d = networked();
    d.ok(&["network", "create", "back"]);
    d.ok(&["run", "-d", "--name", "api", "--network", "back", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let api_host = inspect(&d, "api")["Config"]["Hostname"].as_str().unwrap().to_string();
    // On the default bridge, then joined to `back` while it runs: eth1, and the name.
    d.ok(&["run", "-d", "--name", "front", "busybox", "sleep", "600"]);
    d.ok(&["network", "connect", "--alias", "web", "back", "front"]);
    let nets = &inspect(&d, "front")["NetworkSettings"]["Networks"];
    assert!(nets["bridge"]["IPAddress"].as_str().is_some_and(|a| a.starts_with("172.30.")), "{nets}");
    assert!(nets["back"]["IPAddress"].as_str().is_some_and(|a| a.starts_with("172.31.")), "{nets}");
    assert!(d.ok(&["exec", "front", "ip", "addr", "show", "eth1"]).contains(nets["back"]["IPAddress"].as_str().unwrap()));
    let got = d.ok(&["exec", "front", "sh", "-c", "until wget -qO- http://api/hostname; do sleep 0.1; done"]);
    assert_eq!(got.trim(), api_host);
    assert!(d.ok(&["exec", "api", "cat", "/etc/hosts"]).contains(" web\n"), "the alias is known to its peers");
    let o = d.rind(&["network", "connect", "back", "front"]);
    assert!(stderr(&o).contains("already on network back"), "{}", stderr(&o));
    let o = d.rind(&["network", "rm", "back"]);
    assert!(stderr(&o).contains("api, front") || stderr(&o).contains("front, api"), "{}", stderr(&o));
    // Disconnected: eth1 and the names go, both ways.
    d.ok(&["network", "disconnect", "back", "front"]);
    assert!(!d.rind(&["exec", "front", "ip", "addr", "show", "eth1"]).status.success());
    assert!(!d.ok(&["exec", "front", "cat", "/etc/hosts"]).contains("api"));
    assert!(!d.ok(&["exec", "api", "cat", "/etc/hosts"]).contains("front"));
    assert!(inspect(&d, "front")["NetworkSettings"]["Networks"].get("back").is_none());
    let o = d.rind(&["network", "disconnect", "bridge", "front"]);
    assert!(stderr(&o).contains("first network"), "{}", stderr(&o));
    // A stopped container joins at its next start.
    d.ok(&["stop", "-t", "0", "front"]);
    d.ok(&["network", "connect", "back", "front"]);
    d.ok(&["start", "front"]);
    assert!(inspect(&d, "front")["NetworkSettings"]["Networks"]["back"]["IPAddress"].as_str().is_some_and(|a| a.starts_with("172.31.")));
    d.ok(&["rm", "-f", "front", "api"]);
    d.ok(&["network", "rm", "back"]);
    assert_eq!(leftovers(&d), Vec::<String>::new());
}

#[test]
fn a_network_broken_while_stopped_is_made_whole_at_the_next_start() {
    let d = networked();
    web(&d, "fixme", &[]);
    d.ok(&["stop", "-t", "0", "fixme"]);
    // Someone deletes the container's veth: CNI CHECK fails at the next start.
    let links = ns(&d).ip(&["-o", "link", "show", "type", "veth"]);
    let veth = links.split(':').nth(1).map(|s| s.trim().split('@').next().unwrap().to_string()).expect("a veth");
    ns(&d).ip(&["link", "del", &veth]);
    d.ok(&["start", "fixme"]);
    let ip = inspect(&d, "fixme")["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
    d.wait_for("httpd answers again", Duration::from_secs(20), || http_get(&d, &format!("{ip}:80"), "/hostname").is_ok());
    assert!(d.log().contains("fails CNI CHECK"), "{}", d.log());
}

#[test]
fn after_a_reboot_a_container_that_starts_again_gets_its_network_and_port_back() {
    let mut d = networked();
    d.ok(&["run", "-d", "--name", "always", "--restart", "always", "-p", "8086:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    d.reboot(&["always"]);
    d.spawn();
    d.wait_for("it runs again", Duration::from_secs(20), || inspect(&d, "always")["State"]["Status"] == "running");
    let ip = inspect(&d, "always")["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
    assert!(ip.starts_with("172.30."), "{ip}");
    let hostname = inspect(&d, "always")["Config"]["Hostname"].as_str().unwrap().to_string();
    d.wait_for("the published port answers", Duration::from_secs(20), || {
        http_get(&d, "127.0.0.1:8086", "/hostname").is_ok_and(|b| b.trim() == hostname)
    });
}
