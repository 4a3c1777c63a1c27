//! Registry credentials where docker keeps them: `$DOCKER_CONFIG/config.json`
//! (else `~/.docker/config.json`): `auths` (base64 `user:password`, or an
//! `identitytoken`), `credHelpers` per registry and `credsStore` for all,
//! which name `docker-credential-<x>` programs. Logins users already have
//! work as they are.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use base64::Engine;
use rind_api::v1::RegistryAuth;
use serde_json::Value;

/// docker's key for Docker Hub in `auths`.
pub const HUB_KEY: &str = "https://index.docker.io/v1/";

pub fn config_path() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker").join("config.json")
}

/// The registry host of an image name, as docker splits it.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first.to_string(),
        _ => "docker.io".to_string(),
    }
}

/// The `auths` key docker uses for a registry host.
pub fn key_of(registry: &str) -> String {
    if matches!(registry, "docker.io" | "index.docker.io" | "registry-1.docker.io") {
        HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// `https://host/v1/` and `host` name the same registry in `auths`.
fn same_registry(key: &str, registry: &str) -> bool {
    let k = key.trim_start_matches("https://").trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    k == registry || (key == HUB_KEY && key_of(registry) == HUB_KEY)
}

fn read_config() -> anyhow::Result<Value> {
    let p = config_path();
    match std::fs::read(&p) {
        Ok(data) => serde_json::from_slice(&data).with_context(|| format!("{} is not valid JSON", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Object(Default::default())),
        Err(e) => Err(e).with_context(|| format!("read {}", p.display())),
    }
}

/// The helper for `registry`, if the config names one.
fn helper_for(cfg: &Value, registry: &str) -> Option<String> {
    let key = key_of(registry);
    cfg.get("credHelpers")
        .and_then(|h| h.get(registry).or_else(|| h.get(&key)))
        .or_else(|| cfg.get("credsStore"))
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn run_helper(helper: &str, verb: &str, input: &str) -> anyhow::Result<String> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run the credential helper {program}"))?;
    child.stdin.take().expect("piped").write_all(input.as_bytes()).with_context(|| format!("write to {program}"))?;
    let out = child.wait_with_output().with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string() + String::from_utf8_lossy(&out.stderr).trim();
        bail!("{program} {verb}: {msg}");
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The credentials for `registry`; anonymous when none are stored.
pub fn lookup(registry: &str) -> anyhow::Result<Option<RegistryAuth>> {
    let cfg = read_config()?;
    if let Some(helper) = helper_for(&cfg, registry) {
        let out = match run_helper(&helper, "get", &key_of(registry)) {
            Ok(o) => o,
            // Helpers say "credentials not found" when there are none.
            Err(e) if e.to_string().contains("not found") => return Ok(None),
            Err(e) => return Err(e),
        };
        let v: Value = serde_json::from_str(&out).context("the credential helper's answer is not JSON")?;
        let user = v.get("Username").and_then(|s| s.as_str()).unwrap_or("").to_string();
        let secret = v.get("Secret").and_then(|s| s.as_str()).unwrap_or("").to_string();
        return Ok(Some(if user == "<token>" {
            RegistryAuth { identity_token: secret, ..Default::default() }
        } else {
            RegistryAuth { username: user, password: secret, ..Default::default() }
        }));
    }
    let Some(auths) = cfg.get("auths").and_then(|a| a.as_object()) else { return Ok(None) };
    for (key, entry) in auths {
        if !same_registry(key, registry) {
            continue;
        }
        if let Some(t) = entry.get("identitytoken").and_then(|t| t.as_str()).filter(|t| !t.is_empty()) {
            return Ok(Some(RegistryAuth { identity_token: t.to_string(), ..Default::default() }));
        }
        let Some(enc) = entry.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) else { continue };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(enc)
            .with_context(|| format!("{}: auths.{key}.auth is not base64", config_path().display()))?;
        let raw = String::from_utf8(raw).with_context(|| format!("{}: auths.{key}.auth is not UTF-8", config_path().display()))?;
        let (user, pass) =
            raw.split_once(':').with_context(|| format!("{}: auths.{key}.auth is not user:password", config_path().display()))?;
        return Ok(Some(RegistryAuth { username: user.into(), password: pass.into(), ..Default::default() }));
    }
    Ok(None)
}

/// Stores a login: in the helper if one is configured, else in `auths`
/// (the file made 0600, as docker does).
pub fn store(registry: &str, user: &str, password: &str) -> anyhow::Result<()> {
    let mut cfg = read_config()?;
    let key = key_of(registry);
    if let Some(helper) = helper_for(&cfg, registry) {
        let input = serde_json::json!({"ServerURL": key, "Username": user, "Secret": password}).to_string();
        run_helper(&helper, "store", &input)?;
        return Ok(());
    }
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let obj = cfg.as_object_mut().context("config.json is not a JSON object")?;
    let auths = obj.entry("auths").or_insert_with(|| Value::Object(Default::default()));
    let auths = auths.as_object_mut().context("config.json: auths is not an object")?;
    auths.insert(key, serde_json::json!({ "auth": enc }));
    write_config(&cfg)
}

/// Removes a login; false if there was none.
pub fn erase(registry: &str) -> anyhow::Result<bool> {
    let mut cfg = read_config()?;
    let key = key_of(registry);
    if let Some(helper) = helper_for(&cfg, registry) {
        return match run_helper(&helper, "erase", &key) {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("not found") => Ok(false),
            Err(e) => Err(e),
        };
    }
    let Some(auths) = cfg.get_mut("auths").and_then(|a| a.as_object_mut()) else { return Ok(false) };
    let keys: Vec<String> = auths.keys().filter(|k| same_registry(k, registry)).cloned().collect();
    for k in &keys {
        auths.remove(k);
    }
    if keys.is_empty() {
        return Ok(false);
    }
    write_config(&cfg)?;
    Ok(true)
}

fn write_config(cfg: &Value) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = config_path();
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let tmp = p.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("write {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(cfg).expect("json").as_bytes()).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &p).with_context(|| format!("write {}", p.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_of_image_names() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("someone/app:v1"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/app"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("quay.io/a/b"), "quay.io");
        assert_eq!(key_of("docker.io"), HUB_KEY);
        assert!(same_registry("https://index.docker.io/v1/", "docker.io"));
        assert!(same_registry("https://127.0.0.1:5000/v2/", "127.0.0.1:5000"));
        assert!(!same_registry("127.0.0.1:5001", "127.0.0.1:5000"));
    }

    #[test]
    fn helpers_per_registry_win_over_the_store() {
        let cfg = serde_json::json!({"credsStore": "pass", "credHelpers": {"quay.io": "ecr"}});
        assert_eq!(helper_for(&cfg, "quay.io").as_deref(), Some("ecr"));
        assert_eq!(helper_for(&cfg, "docker.io").as_deref(), Some("pass"));
        assert_eq!(helper_for(&serde_json::json!({}), "docker.io"), None);
    }
}
