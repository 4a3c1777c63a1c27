//! `network create|ls|inspect|rm|prune`.

use clap::Subcommand;
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{ConnectNetworkRequest, CreateNetworkRequest, DisconnectNetworkRequest, Empty, NetworkRef};
use tonic::transport::Channel;

use super::inspect::print_inspect;
use crate::{errors, format, status};

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a bridge network
    Create {
        /// CIDR, e.g. 172.20.0.0/16 (default: a free /24 of 172.31.0.0/16)
        #[arg(long)]
        subnet: Option<String>,
        #[arg(long)]
        gateway: Option<String>,
        /// Allocate container addresses from this CIDR, inside the subnet
        #[arg(long = "ip-range")]
        ip_range: Option<String>,
        /// No outbound traffic: no gateway route, no NAT
        #[arg(long)]
        internal: bool,
        #[arg(long = "label")]
        label: Vec<String>,
        /// bridge only
        #[arg(short, long, default_value = "bridge", value_parser = ["bridge"])]
        driver: String,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long = "no-trunc")]
        no_trunc: bool,
    },
    /// Networks as JSON
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network
    Connect {
        #[arg(long = "alias")]
        alias: Vec<String>,
        /// IPv4 address on the network
        #[arg(long)]
        ip: Option<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Accepted for docker's sake
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Remove every network no container uses
    Prune {
        #[arg(short, long)]
        force: bool,
    },
}

pub async fn network(c: &mut RindClient<Channel>, cmd: NetworkCmd) -> anyhow::Result<i32> {
    match cmd {
        NetworkCmd::Create { subnet, gateway, ip_range, internal, label, driver: _, name } => {
            let req = CreateNetworkRequest {
                name,
                subnet: subnet.unwrap_or_default(),
                gateway: gateway.unwrap_or_default(),
                ip_range: ip_range.unwrap_or_default(),
                internal,
                labels: format::labels(&label),
            };
            println!("{}", c.create_network(req).await.map_err(status)?.into_inner().id);
            Ok(0)
        }
        NetworkCmd::Ls { quiet, no_trunc } => {
            let nets = c.list_networks(Empty {}).await.map_err(status)?.into_inner().networks;
            let id = |i: &str| if no_trunc { i.to_string() } else { i.chars().take(12).collect() };
            if quiet {
                for n in &nets {
                    println!("{}", id(&n.id));
                }
                return Ok(0);
            }
            let mut rows = vec![vec!["NETWORK ID".to_string(), "NAME".into(), "DRIVER".into(), "SCOPE".into()]];
            rows.extend(nets.iter().map(|n| vec![id(&n.id), n.name.clone(), n.driver.clone(), "local".into()]));
            print!("{}", format::table(&rows));
            Ok(0)
        }
        NetworkCmd::Inspect { format, networks } => {
            let mut code = 0;
            for name in networks {
                match c.inspect_network(NetworkRef { name }).await {
                    Ok(r) => print_inspect(&r.into_inner().json, format.as_deref())?,
                    Err(e) => {
                        eprintln!("rind: {}", errors::message(&e));
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        NetworkCmd::Rm { networks } => {
            let mut code = 0;
            for name in networks {
                match c.remove_network(NetworkRef { name }).await {
                    Ok(r) => println!("{}", r.into_inner().name),
                    Err(e) => {
                        eprintln!("rind: {}", errors::message(&e));
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        NetworkCmd::Connect { alias, ip, network, container } => {
            let req = ConnectNetworkRequest { network, container, aliases: alias, ip: ip.unwrap_or_default() };
            c.connect_network(req).await.map_err(status)?;
            Ok(0)
        }
        NetworkCmd::Disconnect { force: _, network, container } => {
            c.disconnect_network(DisconnectNetworkRequest { network, container }).await.map_err(status)?;
            Ok(0)
        }
        NetworkCmd::Prune { force } => {
            if !force && !super::confirm("WARNING! This will remove all custom networks not used by at least one container.") {
                return Ok(0);
            }
            let removed = c.prune_networks(Empty {}).await.map_err(status)?.into_inner().removed;
            if !removed.is_empty() {
                println!("Deleted Networks:");
                for n in removed {
                    println!("{n}");
                }
            }
            Ok(0)
        }
    }
}
