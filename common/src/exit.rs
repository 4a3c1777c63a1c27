//! Docker's exit codes for a command that could not be started.

/// 127 when the command is not there, 126 when it cannot be run; None for
/// any other failure (docker run says 125 then).
pub fn start_failure_code(message: &str) -> Option<i32> {
    let m = message.to_ascii_lowercase();
    if m.contains("no such file") || m.contains("not found") {
        Some(127)
    } else if m.contains("permission denied") || m.contains("is a directory") || m.contains("exec format") {
        Some(126)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(start_failure_code("exec: \"nope\": executable file not found in $PATH"), Some(127));
        assert_eq!(start_failure_code("exec /etc/passwd: permission denied"), Some(126));
        assert_eq!(start_failure_code("mount failed"), None);
    }
}
