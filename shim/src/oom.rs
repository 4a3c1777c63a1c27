//! TaskOOM: the kernel's OOM kills in the container's memory cgroup, watched
//! without polling: v1 through an eventfd registered on memory.oom_control,
//! v2 through inotify on memory.events (its oom_kill counter).

use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

/// The container's memory cgroup directory, from its init's /proc/<pid>/cgroup.
pub fn memory_cgroup(pid: i32) -> Option<(PathBuf, bool)> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    parse_memory_cgroup(&text, Path::new("/sys/fs/cgroup"))
}

pub fn parse_memory_cgroup(text: &str, root: &Path) -> Option<(PathBuf, bool)> {
    let mut unified = None;
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let rel = path.trim_start_matches('/');
        if ctrls.split(',').any(|c| c == "memory") {
            return Some((root.join("memory").join(rel), false));
        }
        if ctrls.is_empty() {
            unified = Some((root.join(rel), true));
        }
    }
    unified.filter(|(p, _)| p.join("memory.events").exists())
}

fn oom_kills(dir: &Path) -> u64 {
    fs::read_to_string(dir.join("memory.events"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// Calls `on_oom` for each OOM kill until the cgroup goes away.
pub async fn watch(dir: PathBuf, v2: bool, on_oom: impl Fn()) -> std::io::Result<()> {
    if v2 {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        ino.add_watch(&dir.join("memory.events"), AddWatchFlags::IN_MODIFY)?;
        let fd: OwnedFd = ino.into();
        // SAFETY: the OwnedFd owns the inotify fd for as long as the AsyncFd lives.
        let afd = unsafe { AsyncFd::register(fd) }.map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut seen = oom_kills(&dir);
        let mut buf = [0u8; 4096];
        loop {
            let mut guard = afd.readable().await?;
            // The events only say "changed": drain them, then read the counter.
            // SAFETY: reading into a local buffer from our own nonblocking fd.
            while unsafe { libc::read(guard.get_inner().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
            guard.clear_ready();
            if !dir.exists() {
                return Ok(());
            }
            let now = oom_kills(&dir);
            for _ in seen..now {
                on_oom();
            }
            seen = now;
        }
    }
    // SAFETY: eventfd(2) returns a new fd we own.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: efd was just created and is owned here.
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    let control = fs::File::open(dir.join("memory.oom_control"))?;
    fs::write(dir.join("cgroup.event_control"), format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()))?;
    // SAFETY: the OwnedFd owns the eventfd for as long as the AsyncFd lives.
    let afd = unsafe { AsyncFd::register(efd) }.map_err(|e| std::io::Error::other(e.to_string()))?;
    loop {
        let mut guard = afd.readable().await?;
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes from our eventfd into a local buffer.
        let n = unsafe { libc::read(guard.get_inner().as_fd().as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        guard.clear_ready();
        // The eventfd also fires when the cgroup is removed.
        if !dir.exists() {
            return Ok(());
        }
        if n == 8 {
            on_oom();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_memory_cgroup_v1_and_v2() {
        let v1 = "12:pids:/default/c\n6:memory:/default/c\n0::/\n";
        assert_eq!(parse_memory_cgroup(v1, Path::new("/sys/fs/cgroup")), Some((PathBuf::from("/sys/fs/cgroup/memory/default/c"), false)));
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("default/c")).unwrap();
        fs::write(t.path().join("default/c/memory.events"), "oom_kill 2\n").unwrap();
        assert_eq!(parse_memory_cgroup("0::/default/c\n", t.path()), Some((t.path().join("default/c"), true)));
        assert_eq!(oom_kills(&t.path().join("default/c")), 2);
        assert_eq!(parse_memory_cgroup("0::/none\n", t.path()), None);
    }
}
