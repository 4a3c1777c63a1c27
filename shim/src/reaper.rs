//! The one place that calls waitpid. The shim is a child subreaper, so every
//! orphan of the container lands here too; each exit is broadcast, and the
//! runtime client and the task service pick the pids they wait for.

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitEvent {
    pub pid: i32,
    /// Exit code, or 128 + signal.
    pub status: u32,
}

pub struct Reaper {
    tx: broadcast::Sender<ExitEvent>,
}

pub fn status_code(ws: WaitStatus) -> Option<(i32, u32)> {
    match ws {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code as u32)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as u32)),
        _ => None,
    }
}

impl Reaper {
    /// Starts reaping on SIGCHLD. Must run inside the tokio runtime.
    pub fn start() -> std::io::Result<std::sync::Arc<Reaper>> {
        let (tx, _) = broadcast::channel(4096);
        let reaper = std::sync::Arc::new(Reaper { tx });
        let mut sigchld = signal(SignalKind::child())?;
        let r = reaper.clone();
        tokio::spawn(async move {
            loop {
                r.reap_all();
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(reaper)
    }

    fn reap_all(&self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(ws) => {
                    if let Some((pid, status)) = status_code(ws) {
                        let _ = self.tx.send(ExitEvent { pid, status });
                    }
                }
            }
        }
    }

    /// Subscribe before spawning what you will wait for, so no exit is missed.
    pub fn subscribe(&self) -> broadcast::Receiver<ExitEvent> {
        self.tx.subscribe()
    }
}

/// Waits on a subscription for `pid`'s exit.
pub async fn wait_for(rx: &mut broadcast::Receiver<ExitEvent>, pid: i32) -> Option<u32> {
    loop {
        match rx.recv().await {
            Ok(e) if e.pid == pid => return Some(e.status),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_code_of_exit_and_signal() {
        let p = Pid::from_raw(5);
        assert_eq!(status_code(WaitStatus::Exited(p, 3)), Some((5, 3)));
        assert_eq!(status_code(WaitStatus::Signaled(p, nix::sys::signal::Signal::SIGKILL, false)), Some((5, 137)));
        assert_eq!(status_code(WaitStatus::StillAlive), None);
    }
}
