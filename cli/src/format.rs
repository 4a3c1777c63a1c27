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

/// docker's image sizes (go-units' `HumanSizeWithPrecision`): decimal
/// units, `precision` significant digits as Go's `%g` prints them ("4.26MB",
/// "0B"). `images` and `history` use 3, prune's total 4.
pub fn human_size(bytes: u64, precision: usize) -> String {
    const UNITS: &[&str] = &["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    format!("{}{}", go_g(v, precision.max(1)), UNITS[u])
}

/// Go's `%.{p}g`: `p` significant digits, no trailing zeros, an exponent
/// (`1e+03`) when the number has more integer digits than that.
fn go_g(v: f64, p: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    // The exponent after rounding to p digits.
    let sci = format!("{:.*e}", p - 1, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() };
    if exp < -4 || exp >= p as i32 {
        return format!("{}e{}{:02}", trim(mantissa), if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    trim(&format!("{:.*}", (p as i32 - 1 - exp).max(0) as usize, v))
}

/// docker's `units.HumanDuration`: "Less than a second", "3 minutes",
/// "About an hour", "2 weeks", "3 years".
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let minutes = secs / 60;
    // Go rounds the hours (`d.Round(time.Hour)`), the rest truncate.
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    match () {
        _ if secs < 1 => "Less than a second".into(),
        _ if secs == 1 => "1 second".into(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", secs / 3600 / 24 / 365),
    }
}

/// docker's CREATED: "3 days ago" from an RFC 3339 time; "N/A" without one.
pub fn since(rfc3339: &str, now: std::time::SystemTime) -> String {
    match humantime::parse_rfc3339_weak(rfc3339) {
        Ok(t) => format!("{} ago", human_duration(now.duration_since(t).unwrap_or_default())),
        Err(_) => "N/A".into(),
    }
}

/// docker's `Ellipsis`: at most `max` characters, the last one "…" when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `KEY=VALUE` (or `KEY`, an empty value) flags as a map.
pub fn labels(flags: &[String]) -> std::collections::HashMap<String, String> {
    flags
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Rows as docker's tables print them (Go's tabwriter with docker's
/// settings: cells padded by 3 spaces to the widest of their column, at
/// least 10 wide; the last column unpadded).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count() + 3).max().unwrap_or(0).max(10)).collect();
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(width[c] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
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
    fn docker_sizes_are_decimal_with_significant_digits() {
        assert_eq!(human_size(0, 3), "0B");
        assert_eq!(human_size(976, 3), "976B");
        assert_eq!(human_size(1_240, 3), "1.24kB");
        assert_eq!(human_size(4_261_114, 3), "4.26MB");
        assert_eq!(human_size(4_261_114, 4), "4.261MB");
        assert_eq!(human_size(4_000_000, 3), "4MB");
        assert_eq!(human_size(123_456_789, 3), "123MB");
        assert_eq!(human_size(999_999, 3), "1e+03kB", "Go's %g, as docker prints it");
    }

    #[test]
    fn docker_durations() {
        let d = std::time::Duration::from_secs;
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (3000, "50 minutes"),
            (3600, "About an hour"),
            (5 * 3600, "5 hours"),
            (3 * 86400, "3 days"),
            (20 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (1000 * 86400, "2 years"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(d(secs)), want, "{secs}s");
        }
        let now = humantime::parse_rfc3339("2024-01-04T00:00:00Z").unwrap();
        assert_eq!(since("2024-01-01T12:00:00.5Z", now), "2 days ago");
        assert_eq!(since("", now), "N/A");
    }

    #[test]
    fn tables_pad_as_dockers_tabwriter() {
        let rows = vec![
            vec!["REPOSITORY".to_string(), "TAG".into(), "SIZE".into()],
            vec!["busybox".to_string(), "latest".into(), "4.26MB".into()],
        ];
        assert_eq!(table(&rows), "REPOSITORY   TAG       SIZE\nbusybox      latest    4.26MB\n");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
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
