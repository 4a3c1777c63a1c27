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

/// Stops the stdin copy of a terminal (CloseIO): an eventfd the copy polls.
pub struct StdinCloser(OwnedFd);

impl StdinCloser {
    pub fn close(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: an 8-byte write to our own eventfd.
        unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), 8) };
    }
}

fn copy_stdin(mut input: File, mut master: File, stop: OwnedFd) {
    let mut buf = [0u8; 32 * 1024];
    loop {
        let mut fds = [
            libc::pollfd { fd: input.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: stop.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: poll on two fds we own, described by a local array.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        match input.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if master.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Copies stdin into the pty and the pty into stdout, on two threads (only
/// terminal containers pay for them). The handle returns when the pty side
/// closes; the closer ends the stdin copy.
pub fn spawn_copies(
    master: &OwnedFd,
    stdin: Option<File>,
    stdout: Option<File>,
) -> std::io::Result<(std::thread::JoinHandle<()>, Option<StdinCloser>)> {
    let out_master = File::from(master.try_clone()?);
    let mut closer = None;
    if let Some(input) = stdin {
        let in_master = File::from(master.try_clone()?);
        // SAFETY: eventfd(2) returns a new fd we own.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: efd was just created and is owned here.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        let stop = efd.try_clone()?;
        std::thread::spawn(move || copy_stdin(input, in_master, stop));
        closer = Some(StdinCloser(efd));
    }
    let out = std::thread::spawn(move || {
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
    });
    Ok((out, closer))
}
