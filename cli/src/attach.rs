//! An attached session (run, start -a, attach, exec): stdin to the daemon,
//! output to our stdout/stderr, the exit code last. With a terminal: raw
//! mode, window size changes, and ctrl-p ctrl-q to detach.

use std::io::{Read, Write};
use std::os::fd::AsFd;

use anyhow::Context;
use rind_api::v1::attach_in::Msg as In;
use rind_api::v1::attach_out::Msg as Out;
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::*;
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// Puts the terminal in raw mode until dropped.
pub struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    pub fn enter() -> Option<RawMode> {
        use nix::sys::termios::*;
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin().as_fd(), nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(fd) == 1 }
}

fn window_size() -> Option<Resize> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    let rc = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(Resize { width: ws.ws_col as u32, height: ws.ws_row as u32 })
}

/// Finds ctrl-p ctrl-q across reads.
#[derive(Default)]
pub struct DetachKeys {
    saw_p: bool,
}

impl DetachKeys {
    /// Returns the bytes to forward, and whether the sequence was typed.
    pub fn scan(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len() + 1);
        for &b in data {
            if self.saw_p {
                self.saw_p = false;
                if b == 0x11 {
                    return (out, true);
                }
                out.push(0x10);
            }
            if b == 0x10 {
                self.saw_p = true;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

pub enum Ended {
    Exit(i32),
    Detached,
}

pub struct Session {
    pub start: AttachStart,
    pub tty: bool,
    pub exec: bool,
}

/// Runs the session; `on_attached` is called (with the client) once the
/// daemon follows the output, so `run` starts the container only then.
pub async fn run<F, Fut>(client: &mut RindClient<Channel>, s: Session, on_attached: F) -> anyhow::Result<Ended>
where
    F: FnOnce(RindClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let want_stdin = s.start.stdin;
    let (tx, rx) = mpsc::channel::<AttachIn>(32);
    tx.send(AttachIn { msg: Some(In::Start(s.start)) }).await.ok();
    let input = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut out = if s.exec { client.exec(input).await } else { client.attach(input).await }.map_err(crate::status)?.into_inner();
    match out.message().await.map_err(crate::status)? {
        Some(AttachOut { msg: Some(Out::Attached(_)) }) => {}
        Some(AttachOut { msg: Some(Out::Exit(e)) }) => return Ok(Ended::Exit(e.exit_code)),
        _ => anyhow::bail!("the daemon ended the session before it began"),
    }
    on_attached(client.clone()).await?;
    let raw = (s.tty && is_tty(0)).then(RawMode::enter).flatten();
    let (detach_tx, mut detach_rx) = mpsc::channel::<()>(1);
    if s.tty {
        if let Some(r) = window_size() {
            tx.send(AttachIn { msg: Some(In::Resize(r)) }).await.ok();
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            let Ok(mut winch) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) else { return };
            while winch.recv().await.is_some() {
                if let Some(r) = window_size() {
                    if tx.send(AttachIn { msg: Some(In::Resize(r)) }).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    if want_stdin {
        let tx = tx.clone();
        let tty = s.tty;
        // A thread: reads of stdin block, and may outlive the session.
        std::thread::spawn(move || {
            let mut keys = DetachKeys::default();
            let mut buf = [0u8; 16 * 1024];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.blocking_send(AttachIn { msg: Some(In::CloseStdin(Empty {})) });
                        return;
                    }
                    Ok(n) => {
                        let (data, detach) = if tty { keys.scan(&buf[..n]) } else { (buf[..n].to_vec(), false) };
                        if !data.is_empty() && tx.blocking_send(AttachIn { msg: Some(In::Stdin(data)) }).is_err() {
                            return;
                        }
                        if detach {
                            let _ = detach_tx.blocking_send(());
                            return;
                        }
                    }
                }
            }
        });
    }
    let ended = loop {
        let msg = tokio::select! {
            m = out.message() => m.map_err(crate::status)?,
            Some(()) = detach_rx.recv() => break Ended::Detached,
        };
        match msg {
            Some(AttachOut { msg: Some(Out::Output(c)) }) => {
                if c.stream == "stderr" {
                    let mut e = std::io::stderr().lock();
                    e.write_all(&c.data).context("write stderr")?;
                    e.flush().ok();
                } else {
                    let mut o = std::io::stdout().lock();
                    o.write_all(&c.data).context("write stdout")?;
                    o.flush().ok();
                }
            }
            Some(AttachOut { msg: Some(Out::Exit(e)) }) => {
                if !e.error.is_empty() && e.exit_code < 0 {
                    eprintln!("rind: {}", e.error);
                }
                break Ended::Exit(e.exit_code);
            }
            Some(_) => {}
            // rindd always ends a session with the exit: it went away.
            None => return Err(crate::errors::WentAway.into()),
        }
    };
    drop(raw);
    if matches!(ended, Ended::Detached) {
        eprintln!("\r\nread escape sequence");
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_across_reads() {
        let mut k = DetachKeys::default();
        assert_eq!(k.scan(b"ab"), (b"ab".to_vec(), false));
        assert_eq!(k.scan(b"x\x10"), (b"x".to_vec(), false));
        assert_eq!(k.scan(b"\x11rest"), (Vec::new(), true));
        let mut k = DetachKeys::default();
        assert_eq!(k.scan(b"\x10a"), (b"\x10a".to_vec(), false), "ctrl-p alone is passed on");
    }
}
