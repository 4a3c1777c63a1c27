//! Output helpers: Go-template-like `--format` fields, `--filter`, sizes,
//! states; and the flags' values that need parsing (sizes, `--restart`).

use rind_api::v1::{ContainerState, RestartPolicy};
use serde_json::Value;

/// Renders `{{.A.B}}` placeholders from `v` (and `{{json .}}` as the whole
/// value); other text is kept. Enough of Go templates for scripts.
pub fn render(template: &str, v: &Value) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        let expr = rest[i + 2..i + j].trim();
        let (json, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        let mut cur = v;
        for key in path.trim_start_matches('.').split('.').filter(|k| !k.is_empty()) {
            cur = cur.get(key).unwrap_or(&Value::Null);
        }
        match (json, cur) {
            (true, c) => out.push_str(&c.to_string()),
            (false, Value::String(s)) => out.push_str(s),
            (false, Value::Null) => out.push_str("<no value>"),
            (false, c) => out.push_str(&c.to_string()),
        }
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    out.replace("\\t", "\t").replace("\\n", "\n")
}

/// `--filter key=value` against a container as `ps` shows it.
pub fn matches(filter: &str, c: &rind_api::v1::Container) -> Result<bool, String> {
    let (k, v) = filter.split_once('=').ok_or_else(|| format!("bad filter {filter:?}: use key=value"))?;
    Ok(match k {
        "name" => c.name.contains(v),
        "id" => c.id.starts_with(v),
        "status" => state_name(c.state()) == v,
        "ancestor" => c.image == v || c.image.starts_with(&format!("{v}:")),
        "exited" => c.state() == ContainerState::Exited && c.exit_code.to_string() == v,
        "label" => match v.split_once('=') {
            Some((lk, lv)) => c.labels.get(lk).map(|x| x == lv).unwrap_or(false),
            None => c.labels.contains_key(v),
        },
        other => return Err(format!("unknown filter {other:?}: use name, id, status, ancestor, exited or label")),
    })
}

/// A state as docker shows it (`ps`'s State, `--filter status=`).
pub fn state_name(s: ContainerState) -> &'static str {
    match s {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Paused => "paused",
        ContainerState::Restarting => "restarting",
        ContainerState::Exited => "exited",
        ContainerState::Dead => "dead",
        // A state this rind does not know (a newer rindd).
        ContainerState::Unspecified => "unknown",
    }
}

/// `--restart`, docker's: no, always, unless-stopped, on-failure[:max-retries].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub policy: RestartPolicy,
    /// With on-failure: at most this many restarts; 0: no limit.
    pub max_retries: u32,
}

impl Default for Restart {
    fn default() -> Restart {
        Restart { policy: RestartPolicy::No, max_retries: 0 }
    }
}

pub fn parse_restart(s: &str) -> Result<Restart, String> {
    let bad = || format!("invalid restart policy {s:?}: use no, always, unless-stopped or on-failure[:max-retries]");
    let (name, retries) = match s.split_once(':') {
        Some((n, r)) => (n, Some(r)),
        None => (s, None),
    };
    let policy = match name {
        "" | "no" => RestartPolicy::No,
        "always" => RestartPolicy::Always,
        "unless-stopped" => RestartPolicy::UnlessStopped,
        "on-failure" => RestartPolicy::OnFailure,
        _ => return Err(bad()),
    };
    let max_retries = match retries {
        None => 0,
        Some(n) if policy == RestartPolicy::OnFailure => n.parse().map_err(|_| bad())?,
        Some(_) => return Err(bad()),
    };
    Ok(Restart { policy, max_retries })
}

pub fn size(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.2}{}", UNITS[u])
    }
}

/// "512m", "1g", "1048576" → bytes.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.trim_end_matches('b').chars().last() {
        Some('k') => (&s[..s.trim_end_matches('b').len() - 1], 1i64 << 10),
        Some('m') => (&s[..s.trim_end_matches('b').len() - 1], 1 << 20),
        Some('g') => (&s[..s.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (s.trim_end_matches('b'), 1),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size {s:?}: use a number with an optional k, m or g"))?;
    if n <= 0.0 {
        return Err(format!("invalid size {s:?}: must be positive"));
    }
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let v = serde_json::json!({"State": {"Status": "exited", "ExitCode": 3}, "Name": "/web"});
        assert_eq!(render("{{.State.Status}} {{.State.ExitCode}}", &v), "exited 3");
        assert_eq!(render("{{json .State}}", &v), r#"{"ExitCode":3,"Status":"exited"}"#);
        assert_eq!(render("{{.Nope}}", &v), "<no value>");
        assert_eq!(render("a\\tb", &v), "a\tb");
    }

    #[test]
    fn filters() {
        let mut c =
            rind_api::v1::Container { name: "web-1".into(), id: "abc".into(), state: ContainerState::Running.into(), ..Default::default() };
        c.labels.insert("tier".into(), "db".into());
        assert!(matches("name=web", &c).unwrap());
        assert!(matches("status=running", &c).unwrap());
        assert!(!matches("status=exited", &c).unwrap());
        c.state = ContainerState::Exited.into();
        c.exit_code = 3;
        assert!(matches("status=exited", &c).unwrap() && matches("exited=3", &c).unwrap());
        assert!(matches("label=tier=db", &c).unwrap());
        assert!(matches("label=tier", &c).unwrap());
        assert!(matches("bogus=1", &c).is_err());
        assert!(matches("nokey", &c).is_err());
    }

    #[test]
    fn states_are_dockers_words() {
        let all = [
            (ContainerState::Created, "created"),
            (ContainerState::Running, "running"),
            (ContainerState::Paused, "paused"),
            (ContainerState::Restarting, "restarting"),
            (ContainerState::Exited, "exited"),
            (ContainerState::Dead, "dead"),
        ];
        for (s, name) in all {
            assert_eq!(state_name(s), name);
        }
        // A value this client does not know reads as unspecified.
        let c = rind_api::v1::Container { state: 99, ..Default::default() };
        assert_eq!(state_name(c.state()), "unknown");
    }

    #[test]
    fn restart_policies() {
        let r = |policy, max_retries| Ok(Restart { policy, max_retries });
        assert_eq!(parse_restart("no"), r(RestartPolicy::No, 0));
        assert_eq!(parse_restart(""), r(RestartPolicy::No, 0));
        assert_eq!(parse_restart("always"), r(RestartPolicy::Always, 0));
        assert_eq!(parse_restart("unless-stopped"), r(RestartPolicy::UnlessStopped, 0));
        assert_eq!(parse_restart("on-failure"), r(RestartPolicy::OnFailure, 0));
        assert_eq!(parse_restart("on-failure:3"), r(RestartPolicy::OnFailure, 3));
        for bad in ["sometimes", "always:3", "on-failure:x", "on-failure:-1", "Always"] {
            let e = parse_restart(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")) && e.contains("on-failure[:max-retries]"), "{e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("64k").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("10mb").unwrap(), 10 << 20);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(size(1536), "1.50KiB");
        assert_eq!(size(12), "12B");
    }
}
