//! Docker's rule for the names of containers and networks.

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn follows_rule(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest: Vec<char> = chars.collect();
    first_ok && !rest.is_empty() && rest.iter().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
}
