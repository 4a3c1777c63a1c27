//! Restart policies, as Docker defines them, and the back-off between
//! restarts. Pure: the reconcile loop asks, then acts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestartError {
    #[error("invalid restart policy {0:?}: use no, always, unless-stopped or on-failure[:max-retries]")]
    Invalid(String),
}

/// Docker's `--restart`; its text ("on-failure:3") is what the store and a
/// container's config keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Docker's default.
    #[default]
    No,
    Always,
    UnlessStopped,
    /// At most this many restarts (0: no limit).
    OnFailure(u32),
}

impl Policy {
    pub fn parse(s: &str) -> Result<Policy, RestartError> {
        let bad = || RestartError::Invalid(s.to_string());
        match s.split_once(':') {
            None => match s {
                "" | "no" => Ok(Policy::No),
                "always" => Ok(Policy::Always),
                "unless-stopped" => Ok(Policy::UnlessStopped),
                "on-failure" => Ok(Policy::OnFailure(0)),
                _ => Err(bad()),
            },
            Some(("on-failure", n)) => n.parse().map(Policy::OnFailure).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Policy::No => "no",
            Policy::Always => "always",
            Policy::UnlessStopped => "unless-stopped",
            Policy::OnFailure(_) => "on-failure",
        }
    }

    pub fn max_retries(&self) -> u32 {
        match self {
            Policy::OnFailure(n) => *n,
            _ => 0,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::OnFailure(n) if *n > 0 => write!(f, "on-failure:{n}"),
            p => f.write_str(p.name()),
        }
    }
}

impl FromStr for Policy {
    type Err = RestartError;

    fn from_str(s: &str) -> Result<Policy, RestartError> {
        Policy::parse(s)
    }
}

/// As its text, so a config written before the policy was typed reads the same.
impl serde::Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
        let s = String::deserialize(d)?;
        Policy::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What the loop knows of a container that is not running.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// The user stopped it (`stop`, `kill`): desired state "stopped".
    pub by_user: bool,
    /// None: the exit status is unknown (its shim was lost).
    pub exit_code: Option<i64>,
    pub restart_count: u32,
    /// The daemon is starting: Docker starts `always` containers again even
    /// if the user had stopped them.
    pub daemon_start: bool,
}

/// Whether the policy starts the container again.
pub fn should_restart(policy: Policy, s: Stopped) -> bool {
    match policy {
        Policy::No => false,
        Policy::Always => !s.by_user || s.daemon_start,
        Policy::UnlessStopped => !s.by_user,
        Policy::OnFailure(max) => !s.by_user && s.exit_code != Some(0) && (max == 0 || s.restart_count < max),
    }
}

/// Docker's back-off: 100 ms doubling per restart, at most a minute.
pub fn backoff(restart_count: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << restart_count.min(10));
    Duration::from_millis(ms.min(60_000))
}

/// A container that ran this long before it exited is considered healthy:
/// its back-off starts again from the beginning.
pub const RESET_AFTER: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped(by_user: bool, exit_code: Option<i64>, restart_count: u32) -> Stopped {
        Stopped { by_user, exit_code, restart_count, daemon_start: false }
    }

    #[test]
    fn parse_policies() {
        assert_eq!(Policy::parse("no"), Ok(Policy::No));
        assert_eq!(Policy::parse(""), Ok(Policy::No));
        assert_eq!(Policy::parse("always"), Ok(Policy::Always));
        assert_eq!(Policy::parse("unless-stopped"), Ok(Policy::UnlessStopped));
        assert_eq!(Policy::parse("on-failure"), Ok(Policy::OnFailure(0)));
        assert_eq!(Policy::parse("on-failure:3"), Ok(Policy::OnFailure(3)));
        assert!(Policy::parse("on-failure:x").is_err());
        assert!(Policy::parse("always:3").is_err());
        assert!(Policy::parse("sometimes").unwrap_err().to_string().contains("sometimes"));
    }

    #[test]
    fn policies_round_trip_through_their_text() {
        for p in [Policy::No, Policy::Always, Policy::UnlessStopped, Policy::OnFailure(0), Policy::OnFailure(3)] {
            assert_eq!(p.to_string().parse::<Policy>(), Ok(p));
            assert_eq!(serde_json::from_str::<Policy>(&serde_json::to_string(&p).unwrap()).unwrap(), p);
        }
        assert_eq!(Policy::OnFailure(3).to_string(), "on-failure:3");
        assert_eq!(serde_json::to_string(&Policy::UnlessStopped).unwrap(), r#""unless-stopped""#);
        assert!(serde_json::from_str::<Policy>(r#""sometimes""#).unwrap_err().to_string().contains("sometimes"));
    }

    #[test]
    fn decisions() {
        assert!(!should_restart(Policy::No, stopped(false, Some(1), 0)));
        assert!(should_restart(Policy::Always, stopped(false, Some(0), 5)));
        assert!(!should_restart(Policy::Always, stopped(true, Some(0), 0)), "stopped by the user");
        assert!(should_restart(Policy::Always, Stopped { daemon_start: true, ..stopped(true, Some(0), 0) }));
        assert!(!should_restart(Policy::UnlessStopped, Stopped { daemon_start: true, ..stopped(true, Some(0), 0) }));
        assert!(should_restart(Policy::UnlessStopped, stopped(false, Some(0), 0)));
        assert!(should_restart(Policy::OnFailure(2), stopped(false, Some(1), 1)));
        assert!(!should_restart(Policy::OnFailure(2), stopped(false, Some(1), 2)), "retries used up");
        assert!(!should_restart(Policy::OnFailure(0), stopped(false, Some(0), 0)), "success");
        assert!(should_restart(Policy::OnFailure(0), stopped(false, None, 0)), "unknown exit counts as failure");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(40), Duration::from_secs(60));
    }
}
