//! The typed channel between the runtime and the process it cloned.
//!
//! ```text
//! parent                                 child (future container process)
//!   clone ───────────────────────────────▶ waits
//!   id maps, cgroup, oom_score_adj
//!   send Go ─────────────────────────────▶ joins namespaces, mounts, pivots,
//!                                          sets user, caps, seccomp
//!   recv ◀──────────────────────────────── Ready  (or Error("step: cause"))
//! ```
//! A SOCK_SEQPACKET socketpair: one message per datagram, EOF when the peer exits.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("create channel")]
    Create(#[source] nix::Error),
    #[error("send {msg:?}")]
    Send {
        msg: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("receive")]
    Recv(#[source] nix::Error),
    #[error("the container process exited before it was ready")]
    Closed,
    #[error("unexpected message: expected {expected}, received {received:?}")]
    Unexpected { expected: &'static str, received: Message },
    #[error("malformed message")]
    Malformed(#[source] serde_json::Error),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Message {
    /// Parent: go on; `pid` is the child's pid as the runtime sees it.
    Go {
        pid: i32,
    },
    Ready,
    Error(String),
    /// Child: the rootfs is prepared; run prestart and createRuntime hooks.
    RunHooks,
    /// Parent: the hooks ran; go on.
    HooksDone,
}

impl Message {
    fn name(&self) -> &'static str {
        match self {
            Message::Go { .. } => "Go",
            Message::Ready => "Ready",
            Message::Error(_) => "Error",
            Message::RunHooks => "RunHooks",
            Message::HooksDone => "HooksDone",
        }
    }
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel), ChannelError> {
    let (a, b) =
        socket::socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(ChannelError::Create)?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Message) -> Result<(), ChannelError> {
        // Serializing an enum of strings cannot fail.
        let data = serde_json::to_vec(msg).expect("message serializes");
        socket::send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
            .map(drop)
            .map_err(|source| ChannelError::Send { msg: msg.name(), source })
    }

    pub fn recv(&self) -> Result<Message, ChannelError> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::Error::EINTR) => continue,
                r => break r.map_err(ChannelError::Recv)?,
            }
        };
        if n == 0 {
            return Err(ChannelError::Closed);
        }
        serde_json::from_slice(&buf[..n]).map_err(ChannelError::Malformed)
    }

    /// Waits for Go and returns the pid it carries.
    pub fn wait_go(&self) -> Result<i32, ChannelError> {
        match self.recv()? {
            Message::Go { pid } => Ok(pid),
            other => Err(ChannelError::Unexpected { expected: "Go", received: other }),
        }
    }

    pub fn expect(&self, want: Message, name: &'static str) -> Result<(), ChannelError> {
        match self.recv()? {
            m if std::mem::discriminant(&m) == std::mem::discriminant(&want) => Ok(()),
            other => Err(ChannelError::Unexpected { expected: name, received: other }),
        }
    }
}

impl From<ChannelError> for io::Error {
    fn from(e: ChannelError) -> Self {
        io::Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_round_trips_messages() {
        let (a, b) = pair().unwrap();
        a.send(&Message::Go { pid: 42 }).unwrap();
        assert_eq!(b.wait_go().unwrap(), 42);
        b.send(&Message::Error("mount proc: denied".into())).unwrap();
        assert!(matches!(a.recv().unwrap(), Message::Error(e) if e == "mount proc: denied"));
        drop(b);
        assert!(matches!(a.recv(), Err(ChannelError::Closed)));
    }

    #[test]
    fn wait_go_rejects_other_messages() {
        let (a, b) = pair().unwrap();
        a.send(&Message::Ready).unwrap();
        assert!(matches!(b.wait_go(), Err(ChannelError::Unexpected { .. })));
    }
}
