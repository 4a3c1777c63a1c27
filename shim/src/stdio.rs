//! A process's stdio: the fifos containerd gives, the log files and binary
//! loggers the shim feeds through pipes, and terminals whose pty master the
//! runtime sends back over a console socket. Owns what must outlive the
//! runtime command (the copies, the pty, a writer held on stdin).

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::console::StdinCloser;
use crate::logs;
use crate::paths;
use crate::runtime::{Runtime, RuntimeError, Stdio3};

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    /// A stdio URI the shim cannot serve (the message names it).
    #[error("{0}")]
    InvalidUri(String),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

type Result<T> = std::result::Result<T, StdioError>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StdioError + 'a {
    move |source| StdioError::Io { op, path: path.display().to_string(), source }
}

/// The stdio a client asked for: fifo paths or file:// / binary:// URIs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioConfig {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// What starting a process with its stdio leaves to keep.
#[derive(Default)]
pub struct IoHandles {
    /// Copies of the output the shim owns, drained before the exit is told.
    pub tasks: Vec<JoinHandle<()>>,
    /// The pty master of a terminal process (ResizePty).
    pub console: Option<Arc<OwnedFd>>,
    /// Ends the copy of stdin into the pty (CloseIO).
    pub stdin_closer: Option<StdinCloser>,
    /// A writer the shim holds on the stdin fifo, so the process sees EOF
    /// only on CloseIO, not whenever a client (rindd, an attach) goes away.
    pub stdin_hold: Option<File>,
}

impl IoHandles {
    /// CloseIO of stdin: drop the writer the shim holds (without a terminal
    /// the process then sees EOF once the clients' writers close) and stop
    /// the pty copy of a terminal.
    pub fn close_stdin(&mut self) {
        self.stdin_hold = None;
        if let Some(c) = self.stdin_closer.take() {
            c.close();
        }
    }
}

type Copy = (&'static str, OwnedFd, logs::Target, Arc<Mutex<logs::LogFile>>);

fn parse(uri: &str) -> Result<Option<logs::Target>> {
    logs::parse_target(uri).map_err(StdioError::InvalidUri)
}

/// The stdio handed to the runtime (fifos opened, pipes for files the shim
/// writes) and the copies to run once the process exists.
fn setup_stdio(stdin: &str, stdout: &str, stderr: &str, id: &str, namespace: &str) -> Result<(Stdio3, Vec<Copy>)> {
    if let Some(logs::Target::Binary { path, args }) = parse(stdout)? {
        let (out, err) = logs::start_binary_logger(&path, &args, id, namespace).map_err(io_err("start logger", &path))?;
        let stdin = match parse(stdin)? {
            Some(logs::Target::Fifo(p)) => open_fifo(&p, false)?,
            _ => None,
        };
        // stderr goes to the same logger, as containerd's binary IO does.
        let _ = stderr;
        return Ok((Stdio3 { stdin, stdout: Some(out), stderr: Some(err) }, Vec::new()));
    }
    let mut copies: Vec<Copy> = Vec::new();
    let mut files: Vec<(PathBuf, Arc<Mutex<logs::LogFile>>)> = Vec::new();
    let mut out = |stream: &'static str, uri: &str| -> Result<Option<File>> {
        match parse(uri)? {
            None => Ok(None),
            Some(logs::Target::Fifo(p)) => open_fifo(&p, true),
            Some(target) => {
                let (path, max_size, max_files) = match &target {
                    logs::Target::Cri { path, max_size, max_files } => (path.clone(), *max_size, *max_files),
                    logs::Target::Raw(path) => (path.clone(), 0, 1),
                    logs::Target::Fifo(_) | logs::Target::Binary { .. } => {
                        return Err(StdioError::InvalidUri(format!("{uri}: a binary logger takes stdout and stderr together")))
                    }
                };
                // stdout and stderr naming one file share it.
                let file = match files.iter().find(|(p, _)| *p == path) {
                    Some((_, f)) => f.clone(),
                    None => {
                        let f = Arc::new(Mutex::new(logs::LogFile::open(&path, max_size, max_files).map_err(io_err("open log", &path))?));
                        files.push((path.clone(), f.clone()));
                        f
                    }
                };
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| StdioError::Io {
                    op: "create pipe for",
                    path: stream.into(),
                    source: e.into(),
                })?;
                copies.push((stream, r, target, file));
                Ok(Some(File::from(w)))
            }
        }
    };
    let stdout = out("stdout", stdout)?;
    let stderr = out("stderr", stderr)?;
    let stdin = match parse(stdin)? {
        None => None,
        Some(logs::Target::Fifo(p)) => open_fifo(&p, false)?,
        Some(_) => return Err(StdioError::InvalidUri(format!("stdin {stdin}: only a fifo can be stdin"))),
    };
    Ok((Stdio3 { stdin, stdout, stderr }, copies))
}

fn spawn_copies(copies: Vec<Copy>) -> Vec<JoinHandle<()>> {
    copies.into_iter().map(|(stream, fd, target, file)| tokio::spawn(logs::copy(stream, fd, target, file))).collect()
}

/// Opens a stdio fifo given by containerd.
fn open_fifo(p: &Path, write: bool) -> Result<Option<File>> {
    let f = if write {
        // The reader (ctr, rindd) is already there; if it is not, keep the pipe open ourselves.
        match OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(p) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                OpenOptions::new().read(true).write(true).open(p).map_err(io_err("open", p))?
            }
            Err(e) => return Err(io_err("open", p)(e)),
        }
    } else {
        OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(p).map_err(io_err("open", p))?
    };
    clear_nonblock(&f);
    Ok(Some(f))
}

/// A writer on a stdin fifo (opened read-write: it never blocks), or None
/// when there is no stdin fifo.
fn hold_fifo(uri: &str) -> Result<Option<File>> {
    match parse(uri)? {
        Some(logs::Target::Fifo(p)) => Ok(Some(OpenOptions::new().read(true).write(true).open(&p).map_err(io_err("open", &p))?)),
        _ => Ok(None),
    }
}

fn clear_nonblock(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFL/F_SETFL on an fd we own.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
    }
}

/// Runs a runtime verb that starts a process (create, exec) with its stdio:
/// fifos and log pipes, or a terminal whose master comes back over a
/// console socket. The container id is the last of `args`.
pub async fn run_with_io(runtime: &Runtime, mut args: Vec<String>, io: &StdioConfig, id: &str, namespace: &str) -> Result<IoHandles> {
    let stdin_hold = hold_fifo(&io.stdin)?;
    if !io.terminal {
        let (stdio, copies) = setup_stdio(&io.stdin, &io.stdout, &io.stderr, id, namespace)?;
        runtime.run(&args, stdio, None).await?;
        return Ok(IoHandles { tasks: spawn_copies(copies), stdin_hold, ..IoHandles::default() });
    }
    let stdin = match parse(&io.stdin)? {
        None => None,
        Some(logs::Target::Fifo(p)) => open_fifo(&p, false)?,
        Some(_) => return Err(StdioError::InvalidUri(format!("stdin {}: only a fifo can be stdin", io.stdin))),
    };
    // The pty's output goes to a fifo, or through a pipe into a log file.
    let (stdout, log_copies) = match parse(&io.stdout)? {
        Some(logs::Target::Fifo(p)) => (open_fifo(&p, true)?, Vec::new()),
        Some(logs::Target::Binary { .. }) => {
            return Err(StdioError::InvalidUri(format!("{}: a terminal's output goes to a fifo or a file", io.stdout)))
        }
        _ => {
            let (stdio, copies) = setup_stdio("", &io.stdout, "", id, namespace)?;
            (stdio.stdout, copies)
        }
    };
    static N: AtomicU32 = AtomicU32::new(0);
    // A short path: sun_path holds 108 bytes, bundle paths can be longer.
    let path = paths::socket_dir().join(format!("{}-{}.console", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let sock = crate::console::ConsoleSocket::bind(&path).map_err(io_err("listen on", &path))?;
    let receiving = tokio::task::spawn_blocking(move || sock.receive());
    let container = args.pop().unwrap_or_default();
    args.extend(["--console-socket".into(), path.display().to_string(), container]);
    if let Err(e) = runtime.run(&args, Stdio3::default(), None).await {
        // Unblock the accept: nobody else will connect now.
        let _ = std::os::unix::net::UnixStream::connect(&path);
        let _ = receiving.await;
        let _ = std::fs::remove_file(&path);
        return Err(e.into());
    }
    let master = receiving.await.map_err(std::io::Error::other).and_then(|r| r).map_err(io_err("receive pty master from", &path))?;
    let (copy, closer) = crate::console::spawn_copies(&master, stdin, stdout).map_err(io_err("copy pty of", &path))?;
    let join = tokio::task::spawn_blocking(move || {
        let _ = copy.join();
    });
    let mut tasks = spawn_copies(log_copies);
    tasks.push(join);
    Ok(IoHandles { tasks, console: Some(Arc::new(master)), stdin_closer: closer, stdin_hold })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_stdio_refuses_a_file_as_stdin() {
        let d = tempfile::tempdir().unwrap();
        let log = format!("file://{}", d.path().join("log").display());
        let e = setup_stdio(&log, "", "", "c", "ns").err().unwrap();
        assert!(matches!(e, StdioError::InvalidUri(m) if m.contains("only a fifo can be stdin")));
    }

    #[test]
    fn setup_stdio_shares_one_log_file_between_stdout_and_stderr() {
        let d = tempfile::tempdir().unwrap();
        let log = format!("file://{}?format=cri", d.path().join("log").display());
        let (stdio, copies) = setup_stdio("", &log, &log, "c", "ns").unwrap();
        assert!(stdio.stdout.is_some() && stdio.stderr.is_some() && stdio.stdin.is_none());
        assert_eq!(copies.len(), 2);
        assert!(Arc::ptr_eq(&copies[0].3, &copies[1].3));
    }

    #[test]
    fn close_stdin_drops_the_held_writer() {
        let f = tempfile::tempfile().unwrap();
        let mut io = IoHandles { stdin_hold: Some(f), ..IoHandles::default() };
        io.close_stdin();
        assert!(io.stdin_hold.is_none());
    }
}
