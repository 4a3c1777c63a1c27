//! `create`: the flags `run` and `create` share, turned into rindd's
//! request (env files read, `-e KEY` expanded, bind sources resolved).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{Bind, CreateContainerRequest, CreateContainerResponse};
use tonic::transport::Channel;

use crate::{errors, format, Exit};

#[derive(Args, Debug, Clone, Default)]
pub struct CreateFlags {
    /// Keep stdin open
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to take ours)
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Bind mount HOST:CONTAINER[:ro]
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Mount a tmpfs
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Memory limit (e.g. 64m)
    #[arg(short, long)]
    pub memory: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pub cpus: Option<f64>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    #[arg(long)]
    pub privileged: bool,
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// bridge (the default), none, host, or a network's name
    #[arg(long, alias = "net", default_value = "")]
    pub network: String,
    /// Publish a container's port: [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every port the image EXPOSEs, on free host ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// The container's IPv4 address on a user-defined network
    #[arg(long)]
    pub ip: Option<String>,
    /// Another name for the container on its user-defined network
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// A DNS server for the container's resolv.conf
    #[arg(long)]
    pub dns: Vec<String>,
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// HOST:IP in /etc/hosts (IP may be host-gateway)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// no, always, unless-stopped, on-failure[:N]
    #[arg(long, default_value = "no", value_parser = format::parse_restart)]
    pub restart: format::Restart,
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Pull the image first: missing (when absent), always, never
    #[arg(long, default_value = "missing", value_parser = ["missing", "always", "never"])]
    pub pull: String,
    /// os/arch[/variant] of the image to pull
    #[arg(long, default_value = "")]
    pub platform: String,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub async fn create(c: &mut RindClient<Channel>, flags: &CreateFlags) -> anyhow::Result<i32> {
    let r = create_pulling(c, flags).await?;
    println!("{}", r.id);
    Ok(0)
}

/// Creates the container, pulling its image first as `--pull` says; pull
/// progress goes to stderr, as docker's does, so stdout stays the container's.
pub async fn create_pulling(c: &mut RindClient<Channel>, flags: &CreateFlags) -> anyhow::Result<CreateContainerResponse> {
    let req = create_request(flags).map_err(|e| Exit(125, format!("{e:#}")))?;
    let show = super::pull::Show::for_stderr();
    if flags.pull == "always" {
        super::pull::pull(c, &flags.image, &flags.platform, show).await.map_err(|e| Exit(125, format!("{e:#}")))?;
    }
    match c.create_container(req.clone()).await {
        Ok(r) => Ok(r.into_inner()),
        Err(e) if e.code() == tonic::Code::NotFound && e.message().starts_with("no such image") && flags.pull == "missing" => {
            eprintln!("Unable to find image '{}' locally", flags.image);
            super::pull::pull(c, &flags.image, &flags.platform, show).await.map_err(|e| Exit(125, format!("{e:#}")))?;
            Ok(c.create_container(req).await.map_err(|e| Exit(125, errors::message(&e)))?.into_inner())
        }
        Err(e) => Err(Exit(125, errors::message(&e)).into()),
    }
}

fn read_env_file(p: &PathBuf) -> anyhow::Result<Vec<String>> {
    let s = std::fs::read_to_string(p).with_context(|| format!("read env file {}", p.display()))?;
    Ok(s.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(expand_env).collect())
}

/// `-e KEY` takes KEY from our environment, as docker does.
pub fn expand_env(kv: &str) -> String {
    if kv.contains('=') {
        kv.to_string()
    } else {
        format!("{kv}={}", std::env::var(kv).unwrap_or_default())
    }
}

pub fn create_request(f: &CreateFlags) -> anyhow::Result<CreateContainerRequest> {
    let mut env = Vec::new();
    for p in &f.env_file {
        env.extend(read_env_file(p)?);
    }
    env.extend(f.env.iter().map(|e| expand_env(e)));
    let mut binds = Vec::new();
    for v in &f.volume {
        let parts: Vec<&str> = v.split(':').collect();
        let (host, ctr, ro) = match parts.as_slice() {
            [h, c] => (*h, *c, false),
            [h, c, "ro"] => (*h, *c, true),
            [h, c, "rw"] => (*h, *c, false),
            _ => bail!("invalid volume {v:?}: use HOST:CONTAINER[:ro]"),
        };
        let host = std::fs::canonicalize(host).with_context(|| format!("volume {v:?}: host path {host}"))?;
        binds.push(Bind { host: host.display().to_string(), container: ctr.into(), read_only: ro });
    }
    let labels = format::labels(&f.label);
    let memory = f.memory.as_deref().map(format::parse_bytes).transpose().map_err(|e| anyhow::anyhow!("--memory: {e}"))?.unwrap_or(0);
    let entrypoint: Vec<String> = f.entrypoint.as_deref().map(|e| e.split_whitespace().map(String::from).collect()).unwrap_or_default();
    Ok(CreateContainerRequest {
        image: f.image.clone(),
        name: f.name.clone().unwrap_or_default(),
        entrypoint_set: f.entrypoint.is_some(),
        entrypoint,
        cmd: f.command.clone(),
        env,
        workdir: f.workdir.clone().unwrap_or_default(),
        user: f.user.clone().unwrap_or_default(),
        hostname: f.hostname.clone().unwrap_or_default(),
        tty: f.tty,
        open_stdin: f.interactive,
        read_only: f.read_only,
        privileged: f.privileged,
        cap_add: f.cap_add.clone(),
        cap_drop: f.cap_drop.clone(),
        memory,
        cpus: f.cpus.unwrap_or(0.0),
        pids_limit: f.pids_limit.unwrap_or(0),
        labels,
        binds,
        tmpfs: f.tmpfs.clone(),
        network: f.network.clone(),
        security_opt: f.security_opt.clone(),
        restart: f.restart.policy.into(),
        restart_max_retries: f.restart.max_retries,
        auto_remove: f.rm,
        stop_signal: f.stop_signal.clone().unwrap_or_default(),
        stop_timeout: f.stop_timeout.unwrap_or(-1),
        publish: f.publish.clone(),
        publish_all: f.publish_all,
        ip: f.ip.clone().unwrap_or_default(),
        network_aliases: f.network_alias.clone(),
        dns: f.dns.clone(),
        dns_search: f.dns_search.clone(),
        dns_options: f.dns_option.clone(),
        add_hosts: f.add_host.clone(),
    })
}
