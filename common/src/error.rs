//! An error with its causes on one line: its message, then each `source()`'s
//! after ": ", as anyhow's `{:#}` prints them. Error messages leave their
//! source's text out (the chain prints it once), so every place that turns
//! an error into text for a person — a wire status, a log field, the
//! runtime's child-to-parent channel — prints the chain.

use std::error::Error;
use std::fmt;

/// Displays `0` and its chain of sources: `format!("{}", Chain(&e))`, or
/// `error = %Chain(&e)` in a tracing event.
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// The chain as a string.
pub fn chain(e: &dyn Error) -> String {
    Chain(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("open {0}")]
        Open(String, #[source] std::io::Error),
        #[error(transparent)]
        Inner(#[from] Inner),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("read config")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn chain_prints_each_cause_once() {
        let e = Outer::Open("/x".into(), std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(chain(&e), "open /x: No such file or directory (os error 2)");
        let e = Outer::from(Inner(std::io::Error::from_raw_os_error(libc::EACCES)));
        assert_eq!(chain(&e), "read config: Permission denied (os error 13)");
        assert_eq!(format!("{}", Chain(&std::io::Error::other("plain"))), "plain");
    }
}
