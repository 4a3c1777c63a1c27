//! Terminals: the runtime sends the pty master over a console socket (as
//! runc does); the shim keeps it, copies stdin into it and its output to the
//! stdout fifo, and resizes it on ResizePty.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> std::io::Result<ConsoleSocket> {
        let _ = std::fs::remove_file(path);
        Ok(ConsoleSocket { path: path.to_path_buf(), listener: UnixListener::bind(path)? })
    }

    /// Accepts the runtime's connection and takes the pty master it sends.
    pub fn receive(self) -> std::io::Result<OwnedFd> {
        let (conn, _) = self.listener.accept()?;
        let _ = std::fs::remove_file(&self.path);
        let mut data = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut data)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut cmsg), nix::sys::socket::MsgFlags::empty())?;
        for c in msg.cmsgs()? {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                if let Some(fd) = fds.first() {
                    // SAFETY: the kernel just installed this fd for us.
                    return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
                }
            }
        }
        Err(std::io::Error::other("console socket: no pty master received"))
    }
}

pub fn resize(master: &OwnedFd, width: u32, height: u32) -> std::io::Result<()> {
    let ws = libc::winsize { ws_row: height as u16, ws_col: width as u16, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads the winsize we pass on a pty master we own.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Copies stdin into the pty and the pty into stdout, on two threads (only
/// terminal containers pay for them). Returns when the pty side closes.
pub fn spawn_copies(master: &OwnedFd, stdin: Option<File>, stdout: Option<File>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let out_master = File::from(master.try_clone()?);
    if let Some(mut input) = stdin {
        let mut in_master = File::from(master.try_clone()?);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut input, &mut in_master);
        });
    }
    Ok(std::thread::spawn(move || {
        let mut out_master = out_master;
        let mut buf = [0u8; 32 * 1024];
        let mut out = stdout;
        // Reading the master ends with EIO when the last slave fd closes.
        while let Ok(n) = out_master.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Some(o) = out.as_mut() {
                if o.write_all(&buf[..n]).is_err() {
                    out = None;
                }
            }
        }
    }))
}
