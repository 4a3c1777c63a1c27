//! What the user is told when rindd cannot be reached, when it goes away
//! mid-call, and what happens when our stdout is a closed pipe.

use std::io::{self, Write};
use std::path::Path;

/// The connection to rindd broke before it answered (rindd exited or was
/// killed mid-call): not an answer of rindd's.
#[derive(Debug)]
pub struct WentAway;

impl std::fmt::Display for WentAway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rindd went away mid-call (its connection closed): whether the call took effect is unknown")
    }
}

impl std::error::Error for WentAway {}

/// A failed call: rindd's own message, or [`WentAway`] when the connection
/// broke. tonic gives a status it made from a transport error (h2, hyper,
/// io) its cause as source; one decoded from rindd's answer has none.
pub fn from_status(e: tonic::Status) -> anyhow::Error {
    if went_away(&e) {
        WentAway.into()
    } else {
        anyhow::anyhow!("{}", e.message())
    }
}

pub fn went_away(e: &tonic::Status) -> bool {
    std::error::Error::source(e).is_some()
}

/// The text of a failed call, for the places that print it and go on.
pub fn message(e: &tonic::Status) -> String {
    if went_away(e) {
        WentAway.to_string()
    } else {
        e.message().to_string()
    }
}

/// True when `e` is (or was caused by) [`WentAway`].
pub fn is_went_away(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<WentAway>())
}

/// Why connecting to rindd's socket at `path` failed, from the io error
/// under the transport error (if there is one).
pub fn connect_failed(path: &Path, e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = Some(e);
    let mut kind = None;
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            kind = Some(io.kind());
            break;
        }
        cause = c.source();
    }
    connect_message(path, kind)
}

fn connect_message(path: &Path, kind: Option<io::ErrorKind>) -> String {
    match kind {
        Some(io::ErrorKind::PermissionDenied) => {
            format!("permission denied connecting to rindd's socket {}: run as root, or as a member of the socket's group", path.display())
        }
        _ => format!(
            "cannot connect to rindd at {}: is it running? Start it with `rindd` (or point -H / RIND_HOST at its socket)",
            path.display()
        ),
    }
}

/// True when `e` comes from writing to a closed pipe (`rind logs c | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// Ends the process as SIGPIPE does, quietly: what docker (a Go program)
/// does when it writes to a closed stdout. Rust ignores SIGPIPE, so writes
/// fail with EPIPE instead, and `println!` would panic.
pub fn die_of_sigpipe() -> ! {
    // SAFETY: signal(2) and raise(3) with constants; no memory involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached: SIGPIPE's default action ends the process.
    std::process::exit(128 + libc::SIGPIPE)
}

/// `print!`/`println!` (the crate's own, see main.rs): a closed stdout ends
/// the process quietly; another write error ends it with a message.
pub fn write_stdout(args: std::fmt::Arguments) {
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            die_of_sigpipe();
        }
        eprintln!("rind: write stdout: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failed_says_permission_denied_naming_the_socket() {
        let p = Path::new("/run/rind/rind.sock");
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let m = connect_failed(p, &denied);
        assert!(m.contains("permission denied") && m.contains("/run/rind/rind.sock") && !m.contains("is it running"), "{m}");
        let wrapped = tonic::Status::from_error(Box::new(io::Error::from(io::ErrorKind::PermissionDenied)));
        assert!(connect_failed(p, &wrapped).contains("permission denied"));
        let m = connect_failed(p, &io::Error::from(io::ErrorKind::NotFound));
        assert!(m.contains("is it running") && m.contains("/run/rind/rind.sock"), "{m}");
    }

    #[test]
    fn a_broken_connection_is_went_away_and_rindds_answer_is_its_message() {
        let broken = tonic::Status::from_error(Box::new(io::Error::from(io::ErrorKind::ConnectionReset)));
        assert!(went_away(&broken));
        let e = from_status(broken);
        assert!(is_went_away(&e) && e.to_string().contains("rindd went away"), "{e}");
        let answer = tonic::Status::not_found("no such container: x");
        assert!(!went_away(&answer));
        assert_eq!(message(&answer), "no such container: x");
        assert!(!is_went_away(&from_status(answer)));
    }

    #[test]
    fn broken_pipe_is_found_under_context() {
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("write stdout");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
