//! Container names: Docker's rule, `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at
//! least two characters, and never `.` or `..`), with an optional leading `/`.

use super::{ContainerError, Result};

/// The name as stored (without a leading `/`), or why it is refused.
pub fn valid_name(name: &str) -> Result<&str> {
    let n = name.strip_prefix('/').unwrap_or(name);
    if crate::names::follows_rule(n) {
        return Ok(n);
    }
    Err(ContainerError::Invalid(format!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]+ is allowed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_name_follows_dockers_rule() {
        for ok in ["web", "a1", "db_1.x-y", "/web", "0a"] {
            assert_eq!(valid_name(ok).unwrap(), ok.trim_start_matches('/'), "{ok}");
        }
        for bad in [".", "..", "", "/", "a", "-web", "_web", ".web", "we b", "web/x", "wéb", "//web"] {
            let e = valid_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid container name") && e.contains("[a-zA-Z0-9]"), "{bad}: {e}");
        }
    }
}
