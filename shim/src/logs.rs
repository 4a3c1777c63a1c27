//! The container's stdout/stderr when the shim owns them: a raw file
//! (`file:///path`) or the Kubernetes CRI log format
//! (`file:///path?format=cri&max-size=BYTES&max-files=N`), one line per
//! record: `<RFC3339Nano> <stdout|stderr> <P|F> <message>`. The shim reads
//! the pipes as fast as the container writes, so the container never blocks
//! on a missing reader and no byte is lost.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A fifo path, as containerd's ctr gives.
    Fifo(PathBuf),
    /// file:///path: raw bytes appended.
    Raw(PathBuf),
    /// file:///path?format=cri…
    Cri { path: PathBuf, max_size: u64, max_files: u32 },
    /// binary:///path?k=v: a logging program, containerd's protocol.
    Binary { path: PathBuf, args: Vec<String> },
}

/// A CRI line longer than this is split into partial (P) records.
const MAX_LINE: usize = 16 * 1024;

pub fn parse_target(uri: &str) -> Result<Option<Target>, String> {
    if uri.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = uri.strip_prefix("binary://") {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if !path.starts_with('/') {
            return Err(format!("stdio URI {uri}: the path must be absolute"));
        }
        // As containerd does: each key, then its value when it has one.
        let mut args = Vec::new();
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            args.push(k.to_string());
            if !v.is_empty() {
                args.push(v.to_string());
            }
        }
        return Ok(Some(Target::Binary { path: PathBuf::from(path), args }));
    }
    let Some(rest) = uri.strip_prefix("file://") else {
        if uri.contains("://") {
            return Err(format!("stdio URI {uri}: only fifo paths, file:// and binary:// are supported"));
        }
        return Ok(Some(Target::Fifo(PathBuf::from(uri))));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return Err(format!("stdio URI {uri}: the path must be absolute"));
    }
    let mut cri = false;
    let (mut max_size, mut max_files) = (0u64, 1u32);
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "format" if v == "cri" => cri = true,
            "format" => return Err(format!("stdio URI {uri}: unknown format {v:?}")),
            "max-size" => max_size = v.parse().map_err(|_| format!("stdio URI {uri}: bad max-size {v:?}"))?,
            "max-files" => max_files = v.parse().map_err(|_| format!("stdio URI {uri}: bad max-files {v:?}"))?,
            _ => return Err(format!("stdio URI {uri}: unknown parameter {k:?}")),
        }
    }
    Ok(Some(if cri {
        Target::Cri { path: PathBuf::from(path), max_size, max_files: max_files.max(1) }
    } else {
        Target::Raw(PathBuf::from(path))
    }))
}

/// Formats complete CRI records out of `buf`, leaving an unfinished line in it
/// unless `drained`: then it goes out as a partial (P) record, so a prompt
/// without a newline reaches readers of the log at once.
pub fn cri_records(stream: &str, buf: &mut Vec<u8>, now: &str, eof: bool, drained: bool) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let (tag, take, skip) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) if i <= MAX_LINE => ("F", i, 1),
            _ if buf.len() > MAX_LINE => ("P", MAX_LINE, 0),
            _ if eof && !buf.is_empty() => ("F", buf.len(), 0),
            _ if drained && !buf.is_empty() => ("P", buf.len(), 0),
            _ => break,
        };
        out.extend_from_slice(format!("{now} {stream} {tag} ").as_bytes());
        out.extend_from_slice(&buf[..take]);
        out.push(b'\n');
        buf.drain(..take + skip);
    }
    out
}

/// A log file shared by the streams that name it, rotated by size.
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl LogFile {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<LogFile> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let file = open_log(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile { path: path.to_path_buf(), file, size, max_size, max_files })
    }

    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.max_size > 0 && self.size + data.len() as u64 > self.max_size && self.size > 0 {
            self.rotate()?;
        }
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    /// path → path.1 → … → path.<max_files-1>; the oldest goes.
    fn rotate(&mut self) -> std::io::Result<()> {
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        for i in (1..self.max_files - 1).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        std::fs::rename(&self.path, name(1))?;
        self.file = open_log(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Appends to the log, made readable by root only: a container's output may
/// hold secrets (Docker's and containerd's logs are not world-readable either).
fn open_log(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// Copies one stream until EOF. Write errors are logged once, and reading
/// goes on so the container never blocks.
pub async fn copy(stream: &'static str, pipe: std::os::fd::OwnedFd, target: Target, file: Arc<Mutex<LogFile>>) {
    use tokio::io::AsyncReadExt;
    let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe) else { return };
    let cri = matches!(target, Target::Cri { .. });
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending = Vec::new();
    let mut failed = false;
    loop {
        let n = rx.read(&mut buf).await.unwrap_or(0);
        let eof = n == 0;
        let out = if cri {
            pending.extend_from_slice(&buf[..n]);
            cri_records(stream, &mut pending, &now(), eof, n < buf.len())
        } else {
            buf[..n].to_vec()
        };
        if !out.is_empty() {
            if let Err(e) = file.lock().expect("lock").write(&out) {
                if !failed {
                    tracing::error!(stream, error = %e, "write container log");
                    failed = true;
                }
            }
        }
        if eof {
            return;
        }
    }
}

/// Starts a binary logger as containerd does: the container's stdout and
/// stderr pipes as fds 3 and 4, a pipe on fd 5 it closes when ready, and
/// CONTAINER_ID / CONTAINER_NAMESPACE in its environment. Returns the write
/// ends for the container once the logger is ready.
pub fn start_binary_logger(path: &Path, args: &[String], id: &str, namespace: &str) -> std::io::Result<(File, File)> {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let pipe = || -> std::io::Result<(OwnedFd, OwnedFd)> { nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from) };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = std::process::Command::new(path);
    cmd.args(args).env("CONTAINER_ID", id).env("CONTAINER_NAMESPACE", namespace);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    // SAFETY: only dup/dup2 between fork and exec. Copies above 10 first, so
    // placing them on 3, 4, 5 cannot clobber one another.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [0; 3];
            for (i, fd) in fds.iter().enumerate() {
                high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // The reaper collects it; the shim keeps no read end.
    drop(child);
    drop((out_r, err_r, ready_w));
    // Ready when the logger closes fd 5 (or exits).
    let mut ready = File::from(ready_r);
    let mut b = [0u8; 1];
    let _ = ready.read(&mut b);
    Ok((File::from(out_w), File::from(err_w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_targets() {
        assert_eq!(parse_target("").unwrap(), None);
        assert_eq!(parse_target("/run/x/fifo").unwrap(), Some(Target::Fifo("/run/x/fifo".into())));
        assert_eq!(parse_target("file:///var/log/c.log").unwrap(), Some(Target::Raw("/var/log/c.log".into())));
        assert_eq!(
            parse_target("file:///l/c.log?format=cri&max-size=100&max-files=3").unwrap(),
            Some(Target::Cri { path: "/l/c.log".into(), max_size: 100, max_files: 3 })
        );
        assert_eq!(
            parse_target("binary:///usr/bin/logger?id=x&debug").unwrap(),
            Some(Target::Binary { path: "/usr/bin/logger".into(), args: vec!["id".into(), "x".into(), "debug".into()] })
        );
        assert!(parse_target("ftp://x").is_err());
        assert!(parse_target("file://relative").is_err());
        assert!(parse_target("file:///x?format=json").is_err());
    }

    #[test]
    fn cri_records_full_partial_and_eof() {
        let mut b = b"one\ntwo\nthr".to_vec();
        let out = cri_records("stdout", &mut b, "T", false, false);
        assert_eq!(out, b"T stdout F one\nT stdout F two\n");
        assert_eq!(b, b"thr");
        let out = cri_records("stdout", &mut b, "T", true, false);
        assert_eq!(out, b"T stdout F thr\n");
        let mut prompt = b"line\n/ # ".to_vec();
        let out = cri_records("stdout", &mut prompt, "T", false, true);
        assert_eq!(out, b"T stdout F line\nT stdout P / # \n");
        assert!(prompt.is_empty());
        let mut long = vec![b'x'; MAX_LINE + 10];
        let out = cri_records("stderr", &mut long, "T", false, false);
        assert!(out.starts_with(b"T stderr P xxx"));
        assert_eq!(long.len(), 10);
    }

    #[test]
    fn log_file_rotates_by_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.log");
        let mut l = LogFile::open(&p, 10, 3).unwrap();
        for chunk in [b"12345678\n", b"abcdefgh\n", b"ABCDEFGH\n"] {
            l.write(chunk).unwrap();
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"ABCDEFGH\n");
        assert_eq!(std::fs::read(d.path().join("c.log.1")).unwrap(), b"abcdefgh\n");
        assert_eq!(std::fs::read(d.path().join("c.log.2")).unwrap(), b"12345678\n");
    }

    #[test]
    fn log_files_are_root_only_after_rotation_too() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.log");
        let mut l = LogFile::open(&p, 10, 2).unwrap();
        l.write(b"12345678\n").unwrap();
        l.write(b"abcdefgh\n").unwrap();
        for f in [p.clone(), d.path().join("c.log.1")] {
            assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
        }
    }
}
