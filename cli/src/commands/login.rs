//! `login` and `logout`: rindd checks the credentials with the registry,
//! the CLI keeps them where docker does (`credentials.rs`).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{LoginRequest, RegistryAuth};
use tonic::transport::Channel;

use crate::credentials;
use crate::status;

/// docker's default: Docker Hub.
fn registry_or_hub(server: Option<&str>) -> String {
    let s = server.unwrap_or("docker.io");
    let s = s.trim_start_matches("https://").trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    if matches!(host, "index.docker.io" | "registry-1.docker.io" | "") {
        "docker.io".into()
    } else {
        host.into()
    }
}

fn prompt(what: &str, echo: bool) -> anyhow::Result<String> {
    eprint!("{what}: ");
    std::io::stderr().flush().ok();
    let stdin = std::io::stdin();
    let saved = if echo { None } else { nix::sys::termios::tcgetattr(&stdin).ok() };
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(nix::sys::termios::LocalFlags::ECHO);
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = &saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, t);
        eprintln!();
    }
    read.context("read from the terminal")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn login(
    c: &mut RindClient<Channel>,
    server: Option<&str>,
    user: Option<&str>,
    password: Option<&str>,
    password_stdin: bool,
) -> anyhow::Result<i32> {
    let registry = registry_or_hub(server);
    let terminal = std::io::stdin().is_terminal();
    let username = match user {
        Some(u) => u.to_string(),
        None if terminal && !password_stdin => prompt("Username", true)?,
        None => bail!("no username: give one with -u (stdin is not a terminal to ask on)"),
    };
    let password = if password_stdin {
        if password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        let mut p = String::new();
        std::io::stdin().lock().read_line(&mut p).context("read the password from stdin")?;
        p.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.to_string()
    } else if terminal {
        prompt("Password", false)?
    } else {
        bail!("no password: give it on stdin with --password-stdin");
    };
    if username.is_empty() || password.is_empty() {
        bail!("a username and a password are required");
    }
    let auth = RegistryAuth { username: username.clone(), password: password.clone(), ..Default::default() };
    let r = c.login(LoginRequest { registry: registry.clone(), auth: Some(auth) }).await.map_err(status)?.into_inner();
    credentials::store(&registry, &username, &password).context("store the credentials")?;
    println!("{}", r.status);
    Ok(0)
}

pub fn logout(server: Option<&str>) -> anyhow::Result<i32> {
    let registry = registry_or_hub(server);
    let shown = credentials::key_of(&registry);
    if credentials::erase(&registry)? {
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_registry_hosts() {
        assert_eq!(registry_or_hub(None), "docker.io");
        assert_eq!(registry_or_hub(Some("https://index.docker.io/v1/")), "docker.io");
        assert_eq!(registry_or_hub(Some("127.0.0.1:5000")), "127.0.0.1:5000");
        assert_eq!(registry_or_hub(Some("http://localhost:5000/v2/")), "localhost:5000");
    }
}
