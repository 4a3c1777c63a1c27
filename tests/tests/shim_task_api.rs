//! The shim driven directly as a ttrpc client, as rindd will: output and
//! exit status survive a client that is not there.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use containerd_shim_protos::shim::shim::{CreateTaskRequest, DeleteRequest, ShutdownRequest, StartRequest, StateRequest, WaitRequest};
use containerd_shim_protos::shim_async::{Client, TaskClient};
use containerd_shim_protos::types::task::Status;
use rind_tests::*;

/// A deadline for one call: a create runs the runtime, which a slow machine
/// (the emulated cgroup v2 guest under load) slows many times over.
fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(rind_tests::patience(Duration::from_secs(30)).as_nanos() as i64)
}

/// Starts a shim for `id` in `bundle` and returns its address.
fn start_shim(bundle: &Path, id: &str) -> String {
    start_shim_env(bundle, id, &[])
}

/// Kills the shim and its container if a test stops half-way.
struct ShimGuard(String);

impl Drop for ShimGuard {
    fn drop(&mut self) {
        for pid in containerd::pids_with_cmdline(&format!("-id {}", self.0)) {
            // SAFETY: killing the shim this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let root = Path::new("/run/rind/runtime/rindtest");
        let _ = Command::new(workspace_bin("rind-runtime")).arg("--root").arg(root).args(["delete", "--force", &self.0]).output();
    }
}

fn start_shim_env(bundle: &Path, id: &str, env: &[(&str, &str)]) -> String {
    let shim = workspace_bin("containerd-shim-rind-v2");
    let path = format!("{}:{}", target_dir().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(shim)
        .args(["-namespace", "rindtest", "-id", id, "-address", "/nonexistent/containerd.sock", "start"])
        .current_dir(bundle)
        .env("PATH", path)
        .env_remove("TTRPC_ADDRESS")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "shim start: {}", stderr(&out));
    let addr = stdout(&out).trim().to_string();
    assert!(addr.starts_with("unix:///run/rind/s/"), "{addr}");
    assert_eq!(std::fs::read_to_string(bundle.join("address")).unwrap(), addr);
    addr
}

async fn client(addr: &str) -> TaskClient {
    TaskClient::new(Client::connect(addr).await.unwrap())
}

/// Create, start, wait, delete and shut down one task through the shim at
/// `addr`; returns the exit status Wait reported.
async fn run_task(addr: &str, id: &str, bundle: &Path, stdout: &str, stderr: &str) -> u32 {
    let c = client(addr).await;
    let mut req = CreateTaskRequest::new();
    req.id = id.to_string();
    req.bundle = bundle.display().to_string();
    req.stdout = stdout.to_string();
    req.stderr = stderr.to_string();
    if let Err(e) = c.create(ctx(), &req).await {
        panic!("create: {e:?}; shim log: {}", std::fs::read_to_string(bundle.join("log")).unwrap_or_default());
    }
    let mut start = StartRequest::new();
    start.id = id.to_string();
    c.start(ctx(), &start).await.unwrap();
    let mut w = WaitRequest::new();
    w.id = id.to_string();
    let status = c.wait(ctx(), &w).await.unwrap().exit_status;
    let mut d = DeleteRequest::new();
    d.id = id.to_string();
    assert_eq!(c.delete(ctx(), &d).await.unwrap().exit_status, status);
    let mut sd = ShutdownRequest::new();
    sd.id = id.to_string();
    let _ = c.shutdown(ctx(), &sd).await;
    status
}

#[test]
fn exit_status_and_output_survive_a_missing_client() {
    require_root();
    let b = Bundle::new(&["sh", "-c", "i=0; while [ $i -lt 5000 ]; do echo line-$i; i=$((i+1)); done; head -c 10485760 /dev/zero | tr '\\0' x; echo; echo to-stderr >&2; exit 3"]);
    b.write();
    let id = unique_id("direct");
    let log = b.path().join("ctr.log");
    let _guard = ShimGuard(id.clone());
    let addr = start_shim(b.path(), &id);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = client(&addr).await;
        let mut req = CreateTaskRequest::new();
        req.id = id.clone();
        req.bundle = b.path().display().to_string();
        let uri = format!("file://{}?format=cri", log.display());
        req.stdout = uri.clone();
        req.stderr = uri;
        let created = c.create(ctx(), &req).await.unwrap();
        assert!(created.pid > 0);
        let mut start = StartRequest::new();
        start.id = id.clone();
        c.start(ctx(), &start).await.unwrap();
        // Nobody is connected while the container writes and exits.
        drop(c);
        wait_until("exit file", Duration::from_secs(60), || b.path().join("exit").exists());
        let c = client(&addr).await;
        let mut st = StateRequest::new();
        st.id = id.clone();
        let s = c.state(ctx(), &st).await.unwrap();
        assert_eq!(s.status.enum_value().unwrap(), Status::STOPPED);
        assert_eq!(s.exit_status, 3);
        let mut w = WaitRequest::new();
        w.id = id.clone();
        assert_eq!(c.wait(ctx(), &w).await.unwrap().exit_status, 3);
        let exit: serde_json::Value = serde_json::from_slice(&std::fs::read(b.path().join("exit")).unwrap()).unwrap();
        assert_eq!(exit["status"], 3);
        let mut d = DeleteRequest::new();
        d.id = id.clone();
        assert_eq!(c.delete(ctx(), &d).await.unwrap().exit_status, 3);
        assert!(!b.path().join("exit").exists(), "delete removes the exit file");
        let mut sd = ShutdownRequest::new();
        sd.id = id.clone();
        let _ = c.shutdown(ctx(), &sd).await;
    });
    // Every line, in the CRI format, with nothing lost.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut stdout_lines = 0;
    let mut x_bytes = 0;
    for line in text.lines() {
        let mut f = line.splitn(4, ' ');
        let (ts, stream, tag, msg) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""));
        assert!(ts.ends_with('Z') && ts.contains('T'), "{line}");
        assert!(tag == "F" || tag == "P", "{line}");
        if stream == "stdout" && msg.starts_with("line-") {
            assert_eq!(msg, format!("line-{stdout_lines}"));
            stdout_lines += 1;
        } else if stream == "stdout" {
            x_bytes += msg.len();
        } else {
            assert_eq!((stream, msg), ("stderr", "to-stderr"));
        }
    }
    assert_eq!(stdout_lines, 5000);
    assert_eq!(x_bytes, 10 * 1024 * 1024, "10 MiB written with no reader: every byte must be in the log");
    wait_until("shim to exit", Duration::from_secs(10), || containerd::pids_with_cmdline(&format!("-id {id}")).is_empty());
    let sock = addr.trim_start_matches("unix://");
    assert!(!Path::new(sock).exists(), "the shim left its socket {sock} behind");
}

/// An events service standing in for containerd: it records every envelope.
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

#[async_trait::async_trait]
impl containerd_shim_protos::shim_async::Events for Recorder {
    async fn forward(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        req: containerd_shim_protos::shim::events::ForwardRequest,
    ) -> ttrpc::Result<containerd_shim_protos::protobuf::well_known_types::empty::Empty> {
        let env = req.envelope.unwrap_or_default();
        self.0.lock().unwrap().push(format!("{} {}", env.topic, env.event.type_url));
        Ok(Default::default())
    }
}

#[test]
fn events_in_order_with_oom() {
    require_root();
    let mut b = Bundle::new(&["sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' a)"]);
    b.config["linux"]["resources"]["memory"] = serde_json::json!({"limit": 16777216});
    b.write();
    let id = unique_id("events");
    let events_sock = b.path().join("events.sock");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let svc = containerd_shim_protos::shim_async::create_events(std::sync::Arc::new(Recorder(seen.clone())));
        let mut server =
            ttrpc::asynchronous::Server::new().bind(&format!("unix://{}", events_sock.display())).unwrap().register_service(svc);
        server.start().await.unwrap();
        std::fs::write(b.path().join("log"), "").unwrap();
        let _guard = ShimGuard(id.clone());
        let addr = start_shim_env(b.path(), &id, &[("TTRPC_ADDRESS", events_sock.to_str().unwrap())]);
        let status = run_task(&addr, &id, b.path(), "", "").await;
        assert_eq!(status, 137, "the OOM killer's SIGKILL");
        let deadline = std::time::Instant::now() + patience(Duration::from_secs(5));
        let both = |s: &[String]| s.iter().any(|e| e.starts_with("/tasks/delete")) && s.iter().any(|e| e.starts_with("/tasks/oom"));
        while !both(&seen.lock().unwrap()) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = server.shutdown().await;
    });
    let seen = seen.lock().unwrap().clone();
    let topics: Vec<&str> = seen.iter().map(|e| e.split(' ').next().unwrap()).collect();
    let pos = |t: &str| topics.iter().position(|x| *x == t).unwrap_or_else(|| panic!("no {t} in {seen:?}"));
    assert!(pos("/tasks/create") < pos("/tasks/start"));
    assert!(pos("/tasks/start") < pos("/tasks/exit"));
    assert!(topics.contains(&"/tasks/oom"), "{seen:?}");
    assert!(pos("/tasks/exit") < pos("/tasks/delete"));
    assert!(seen.iter().any(|e| e == "/tasks/exit containerd.events.TaskExit"), "{seen:?}");
}

#[test]
fn the_shim_drives_runc_when_configured() {
    require_root();
    let b = Bundle::new(&["sh", "-c", "echo via-runc; exit 4"]);
    b.write();
    let id = unique_id("viarunc");
    let log = b.path().join("out.log");
    let _guard = ShimGuard(id.clone());
    let addr = start_shim_env(b.path(), &id, &[("RIND_SHIM_RUNTIME", "/usr/sbin/runc")]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = rt.block_on(run_task(&addr, &id, b.path(), &format!("file://{}", log.display()), ""));
    assert_eq!(status, 4);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "via-runc\n", "raw file mode");
    let choice: serde_json::Value = serde_json::from_slice(&std::fs::read(b.path().join("runtime.json")).unwrap()).unwrap();
    assert_eq!(choice["binary"], "/usr/sbin/runc");
}

#[test]
fn binary_logger_gets_stdout_and_stderr() {
    require_root();
    let b = Bundle::new(&["sh", "-c", "echo out-line; echo err-line >&2"]);
    b.write();
    let id = unique_id("binlog");
    let out = b.path().join("logged");
    let logger = b.path().join("logger.sh");
    // containerd's protocol: stdout on fd 3, stderr on fd 4, fd 5 closed when ready
    std::fs::write(&logger, "#!/bin/sh\nexec 5>&-\n{ echo \"id=$CONTAINER_ID ns=$CONTAINER_NAMESPACE\"; cat <&3; cat <&4; } > \"$1\"\n")
        .unwrap();
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let _guard = ShimGuard(id.clone());
    let addr = start_shim(b.path(), &id);
    let uri = format!("binary://{}?{}", logger.display(), out.display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(rt.block_on(run_task(&addr, &id, b.path(), &uri, &uri)), 0);
    wait_until("logger output", Duration::from_secs(5), || std::fs::read_to_string(&out).is_ok_and(|s| s.contains("err-line")));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, format!("id={id} ns=rindtest\nout-line\nerr-line\n"));
}
