//! The one place that calls waitpid. The shim is a child subreaper, so every
//! orphan of the container lands here too; each exit goes to every
//! subscriber, and the runtime client and the exit monitor pick the pids
//! they wait for.
//!
//! An exit must never be lost: each subscriber has its own unbounded queue,
//! which neither drops nor lags (a bounded broadcast channel would make a
//! slow subscriber skip exits, and a Wait on one of them would hang). The
//! queues stay short: the monitor reads at once, and a runtime command's
//! subscription lives only as long as that command.

use std::sync::{Arc, Mutex, PoisonError};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitEvent {
    pub pid: i32,
    /// Exit code, or 128 + signal.
    pub status: u32,
}

#[derive(Default)]
pub struct Reaper {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<ExitEvent>>>,
}

/// Every exit reaped after `Reaper::subscribe`, in order.
pub struct Subscription(mpsc::UnboundedReceiver<ExitEvent>);

pub fn status_code(ws: WaitStatus) -> Option<(i32, u32)> {
    match ws {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code as u32)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as u32)),
        _ => None,
    }
}

impl Reaper {
    /// Starts reaping on SIGCHLD. Must run inside the tokio runtime.
    pub fn start() -> std::io::Result<Arc<Reaper>> {
        let reaper = Arc::new(Reaper::default());
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
                        self.notify(ExitEvent { pid, status });
                    }
                }
            }
        }
    }

    /// Hands `ev` to every live subscription; gone ones are forgotten.
    pub fn notify(&self, ev: ExitEvent) {
        let mut subs = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        subs.retain(|tx| tx.send(ev).is_ok());
    }

    /// Subscribe before spawning what you will wait for, so no exit is missed.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.lock().unwrap_or_else(PoisonError::into_inner).push(tx);
        Subscription(rx)
    }
}

impl Subscription {
    /// The next exit; None once the reaper is gone.
    pub async fn recv(&mut self) -> Option<ExitEvent> {
        self.0.recv().await
    }

    /// Waits for `pid`'s exit, skipping the others.
    pub async fn wait_for(&mut self, pid: i32) -> Option<u32> {
        while let Some(e) = self.recv().await {
            if e.pid == pid {
                return Some(e.status);
            }
        }
        None
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

    /// The old broadcast channel held 4096 exits: a subscriber that fell
    /// further behind lagged and never saw the exit it waited for.
    #[tokio::test]
    async fn wait_for_finds_an_exit_behind_a_flood_of_others() {
        let reaper = Reaper::default();
        let mut sub = reaper.subscribe();
        for pid in 1000..11000 {
            reaper.notify(ExitEvent { pid, status: 0 });
        }
        reaper.notify(ExitEvent { pid: 42, status: 7 });
        assert_eq!(sub.wait_for(42).await, Some(7));
    }

    #[tokio::test]
    async fn subscription_sees_only_exits_after_it_and_all_of_them_in_order() {
        let reaper = Reaper::default();
        reaper.notify(ExitEvent { pid: 1, status: 1 });
        let mut sub = reaper.subscribe();
        reaper.notify(ExitEvent { pid: 2, status: 2 });
        reaper.notify(ExitEvent { pid: 3, status: 3 });
        assert_eq!(sub.recv().await, Some(ExitEvent { pid: 2, status: 2 }));
        assert_eq!(sub.recv().await, Some(ExitEvent { pid: 3, status: 3 }));
    }

    #[test]
    fn notify_forgets_dropped_subscriptions() {
        let reaper = Reaper::default();
        let sub = reaper.subscribe();
        let _kept = reaper.subscribe();
        drop(sub);
        reaper.notify(ExitEvent { pid: 1, status: 0 });
        assert_eq!(reaper.subscribers.lock().unwrap().len(), 1);
    }
}
