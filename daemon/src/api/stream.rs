//! The streaming calls: attach and exec (stdin in, output out, the exit
//! last), logs (read and follow the CRI log) and stats.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rind_api::v1::attach_in::Msg as In;
use rind_api::v1::attach_out::Msg as Out;
use rind_api::v1::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::rind::{container_status, BoxStream, FOLLOW_POLL};
use crate::services::containers::{Containers, ExecRequest};
use crate::services::logs::{self, Follower, Record};
use crate::shims::TaskApi;

type Tx = mpsc::Sender<Result<AttachOut, Status>>;

fn chunk(r: Record) -> LogChunk {
    LogChunk { stream: r.stream, data: r.data, time: r.time }
}

async fn send_out(tx: &Tx, msg: Out) -> bool {
    tx.send(Ok(AttachOut { msg: Some(msg) })).await.is_ok()
}

fn io_status(what: &str, path: &Path, e: std::io::Error) -> Status {
    Status::internal(format!("{what} {}: {e}", path.display()))
}

async fn first(input: &mut Streaming<AttachIn>) -> Result<AttachStart, Status> {
    match input.message().await? {
        Some(AttachIn { msg: Some(In::Start(s)) }) => Ok(s),
        _ => Err(Status::invalid_argument("the first message must name the container")),
    }
}

/// Opens a fifo for writing once its reader (the shim) is there, retrying
/// while the container is still starting.
async fn open_writer(path: &Path) -> Option<tokio::net::unix::pipe::Sender> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::net::unix::pipe::OpenOptions::new().open_sender(path) {
            Ok(s) => return Some(s),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %rind_common::error::Chain(&e), "open stdin");
                return None;
            }
        }
    }
}

/// Forwards the client's stdin, resizes and close to the process.
async fn pump_input(
    mut input: Streaming<AttachIn>,
    stdin: Option<PathBuf>,
    shim: impl Fn() -> Option<Arc<dyn TaskApi>>,
    id: String,
    exec_id: String,
) {
    use tokio::io::AsyncWriteExt;
    let mut writer: Option<tokio::net::unix::pipe::Sender> = None;
    while let Ok(Some(m)) = input.message().await {
        match m.msg {
            Some(In::Stdin(data)) => {
                let Some(path) = &stdin else { continue };
                if writer.is_none() {
                    writer = open_writer(path).await;
                }
                if let Some(w) = writer.as_mut() {
                    if w.write_all(&data).await.is_err() {
                        writer = None;
                    }
                }
            }
            Some(In::Resize(r)) => {
                if let Some(s) = shim() {
                    let _ = s.resize(&id, &exec_id, r.width, r.height).await;
                }
            }
            Some(In::CloseStdin(_)) => {
                drop(writer.take());
                if let Some(s) = shim() {
                    let _ = s.close_stdin(&id, &exec_id).await;
                }
            }
            _ => {}
        }
    }
}

/// Attach: follow the log from now on; end with the exit code.
pub async fn attach(containers: Arc<Containers>, mut input: Streaming<AttachIn>) -> Result<BoxStream<AttachOut>, Status> {
    let start = first(&mut input).await?;
    let row = containers.get(&start.id).map_err(container_status)?;
    let log = containers.paths.log(&row.id);
    let mut follower = Follower::open(&log, true).map_err(|e| io_status("open", &log, e))?;
    let mut events = containers.events.subscribe();
    let (tx, rx) = mpsc::channel(64);
    let stdin = start.stdin.then(|| containers.paths.bundle(&row.id).join("init-stdin"));
    let (c, id) = (containers.clone(), row.id.clone());
    tokio::spawn(pump_input(input, stdin, move || c.shim_for(&id).ok().map(|(_, s)| s), row.id.clone(), String::new()));
    let id = row.id.clone();
    let was_live = row.status.is_live();
    let started_at = row.started_at;
    // Like docker run --rm: the exit is told once the container is gone.
    let auto_remove = crate::services::containers::Config::of(&row).map_err(container_status)?.auto_remove;
    tokio::spawn(async move {
        if !send_out(&tx, Out::Attached(Empty {})).await {
            return;
        }
        let mut exit: Option<WaitResponse> = None;
        let mut removal: Option<Instant> = None;
        let mut polls = 0u32;
        loop {
            for r in follower.read().unwrap_or_default() {
                if !send_out(&tx, Out::Output(chunk(r))).await {
                    return;
                }
            }
            if removal.is_some_and(|t| t.elapsed() > Duration::from_secs(10)) {
                removal = None;
            }
            if exit.is_some() && removal.is_none() {
                send_out(&tx, Out::Exit(exit.take().expect("checked"))).await;
                return;
            }
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) if ev.id == id && ev.action == "die" => {
                        exit = Some(WaitResponse { exit_code: ev.exit_code.unwrap_or(-1) as i32, error: String::new() });
                        removal = auto_remove.then(Instant::now);
                    }
                    Ok(ev) if ev.id == id && ev.action == "destroy" => removal = None,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    _ => {}
                },
                _ = tokio::time::sleep(FOLLOW_POLL) => {
                    polls += 1;
                    // Now and then ask the database too (a lagged receiver misses events).
                    if polls.is_multiple_of(25) {
                        match containers.get(&id) {
                            Ok(r) if !r.status.is_live() && r.status != crate::store::Status::Created
                                && (was_live || r.started_at != started_at) => {
                                exit = Some(WaitResponse { exit_code: r.exit_code.unwrap_or(-1) as i32, error: r.exit_reason.unwrap_or_default() });
                            }
                            Err(_) => {
                                removal = None;
                                exit.get_or_insert(WaitResponse { exit_code: -1, error: "container removed".into() });
                            }
                            _ => {}
                        }
                    }
                },
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

fn mkfifo(p: &Path) -> Result<(), Status> {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| io_status("create fifo", p, e.into()))
}

/// Copies one output fifo to the client as `stream`.
async fn copy_output(path: PathBuf, stream: &'static str, tx: Tx) {
    use tokio::io::AsyncReadExt;
    let Ok(mut rx) = tokio::net::unix::pipe::OpenOptions::new().open_receiver(&path) else { return };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let c = LogChunk { stream: stream.into(), data: buf[..n].to_vec(), time: String::new() };
                if !send_out(&tx, Out::Output(c)).await {
                    return;
                }
            }
        }
    }
}

/// Exec: a new process in a running container, its stdio over fifos in
/// the bundle; ends with its exit code.
pub async fn exec(containers: Arc<Containers>, mut input: Streaming<AttachIn>) -> Result<BoxStream<AttachOut>, Status> {
    let start = first(&mut input).await?;
    let p = start.exec.ok_or_else(|| Status::invalid_argument("exec needs a process"))?;
    // Refused early if not running; exec_start checks again under the lock.
    let (row, _) = containers.shim_for(&start.id).map_err(container_status)?;
    let exec_id = Containers::new_exec_id();
    let bundle = containers.paths.bundle(&row.id);
    let fifo = |s: &str| bundle.join(format!("exec-{exec_id}-{s}"));
    let (stdin, stdout, stderr) = (fifo("stdin"), fifo("stdout"), fifo("stderr"));
    let mut made = Vec::new();
    let wants = [(p.stdin, &stdin), (!p.detach, &stdout), (!p.detach && !p.tty, &stderr)];
    for (want, path) in wants {
        if want {
            mkfifo(path)?;
            made.push(path.clone());
        }
    }
    let cleanup = move || {
        for f in &made {
            let _ = std::fs::remove_file(f);
        }
    };
    let uri = |want: bool, p: &Path| if want { p.display().to_string() } else { String::new() };
    let io = (uri(p.stdin, &stdin), uri(!p.detach, &stdout), uri(!p.detach && !p.tty, &stderr));
    let req = ExecRequest { args: p.args, env: p.env, user: p.user, workdir: p.workdir, tty: p.tty };
    let (tx, rx) = mpsc::channel(64);
    // Attached goes first, so the client never sees output before it.
    send_out(&tx, Out::Attached(Empty {})).await;
    // Readers next: the shim opens the fifos for writing when it runs the exec.
    let mut copies = Vec::new();
    if !p.detach {
        copies.push(tokio::spawn(copy_output(stdout.clone(), "stdout", tx.clone())));
        if !p.tty {
            copies.push(tokio::spawn(copy_output(stderr.clone(), "stderr", tx.clone())));
        }
    }
    let shim = match containers.exec_start(&row, &exec_id, &req, io).await {
        Ok(shim) => shim,
        Err(e) => {
            for c in copies {
                c.abort();
            }
            cleanup();
            return Err(container_status(e));
        }
    };
    let (id, eid) = (row.id.clone(), exec_id.clone());
    let s2 = shim.clone();
    tokio::spawn(pump_input(input, p.stdin.then_some(stdin), move || Some(s2.clone()), id, eid));
    tokio::spawn(async move {
        if p.detach {
            return;
        }
        let waited = shim.wait(&row.id, &exec_id).await;
        for c in copies {
            let _ = tokio::time::timeout(Duration::from_secs(2), c).await;
        }
        let exit = match waited {
            Ok(w) => WaitResponse { exit_code: w.exit_status as i32, error: String::new() },
            Err(e) => WaitResponse { exit_code: -1, error: rind_common::error::chain(&e) },
        };
        send_out(&tx, Out::Exit(exit)).await;
        let _ = shim.delete(&row.id, &exec_id).await;
        cleanup();
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Logs: what the log holds (since/tail), then, with follow, what comes
/// until the container stops.
pub fn logs(containers: Arc<Containers>, req: LogsRequest) -> Result<BoxStream<LogChunk>, Status> {
    let row = containers.get(&req.id).map_err(container_status)?;
    let log = containers.paths.log(&row.id);
    let since = if req.since.is_empty() {
        None
    } else {
        Some(logs::parse_since(&req.since).ok_or_else(|| Status::invalid_argument(format!("invalid --since {:?}", req.since)))?)
    };
    let mut follower = Follower::open(&log, false).map_err(|e| io_status("open", &log, e))?;
    let tail = (req.tail >= 0).then_some(req.tail as usize);
    let first = logs::select(follower.read().map_err(|e| io_status("read", &log, e))?, since, tail);
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        for r in first {
            if tx.send(Ok(chunk(r))).await.is_err() {
                return;
            }
        }
        if !req.follow {
            return;
        }
        let mut events = containers.events.subscribe();
        loop {
            let live = containers.get(&row.id).map(|r| r.status.is_live()).unwrap_or(false);
            for r in logs::select(follower.read().unwrap_or_default(), since, None) {
                if tx.send(Ok(chunk(r))).await.is_err() {
                    return;
                }
            }
            if !live {
                return;
            }
            tokio::select! {
                _ = events.recv() => {}
                _ = tokio::time::sleep(FOLLOW_POLL * 5) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Stats: one sample per container, CPU from two readings.
pub async fn stats(containers: Arc<Containers>, req: StatsRequest) -> Result<BoxStream<StatsResponse>, Status> {
    use crate::services::stats::{cpu_percent, sample, Sample};
    let rows = if req.ids.is_empty() {
        containers.list().map_err(container_status)?.into_iter().filter(|r| r.status == crate::store::Status::Running).collect()
    } else {
        req.ids.iter().map(|i| containers.get(i)).collect::<Result<Vec<_>, _>>().map_err(container_status)?
    };
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let read = |c: Arc<Containers>, rows: Vec<crate::store::ContainerRow>| async move {
            let mut out = Vec::new();
            for r in rows {
                let s = match c.shim_for(&r.id) {
                    Ok((_, shim)) => match shim.stats(&r.id).await {
                        Ok(Some(any)) => sample(&any).unwrap_or_default(),
                        _ => Sample::default(),
                    },
                    Err(_) => Sample::default(),
                };
                out.push((r.id.clone(), r.name.clone(), s));
            }
            (Instant::now(), out)
        };
        let mut before = read(containers.clone(), rows.clone()).await;
        loop {
            tokio::time::sleep(Duration::from_millis(if req.stream { 1000 } else { 500 })).await;
            let after = read(containers.clone(), rows.clone()).await;
            let wall = after.0.duration_since(before.0).as_nanos() as u64;
            let stats = after
                .1
                .iter()
                .zip(&before.1)
                .map(|((id, name, a), (_, _, b))| ContainerStats {
                    id: id.clone(),
                    name: name.clone(),
                    cpu_percent: cpu_percent(b, a, wall),
                    memory_usage: a.memory,
                    memory_limit: a.memory_limit,
                    pids: a.pids,
                })
                .collect();
            if tx.send(Ok(StatsResponse { stats })).await.is_err() || !req.stream {
                return;
            }
            before = after;
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
