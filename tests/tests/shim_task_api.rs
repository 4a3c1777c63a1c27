//! The shim driven directly as a ttrpc client, as rindd will: output and
//! exit status survive a client that is not there.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use containerd_shim_protos::shim::shim::{CreateTaskRequest, DeleteRequest, ShutdownRequest, StartRequest, StateRequest, WaitRequest};
use containerd_shim_protos::shim_async::{Client, TaskClient};
use containerd_shim_protos::types::task::Status;
use rind_tests::*;

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(30_000_000_000)
}

/// Starts a shim for `id` in `bundle` and returns its address.
fn start_shim(bundle: &Path, id: &str) -> String {
    let shim = workspace_bin("containerd-shim-rind-v2");
    let path = format!("{}:{}", target_dir().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(shim)
        .args(["-namespace", "rindtest", "-id", id, "-address", "/nonexistent/containerd.sock", "start"])
        .current_dir(bundle)
        .env("PATH", path)
        .env_remove("TTRPC_ADDRESS")
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

#[test]
fn exit_status_and_output_survive_a_missing_client() {
    require_root();
    let b = Bundle::new(&["sh", "-c", "i=0; while [ $i -lt 5000 ]; do echo line-$i; i=$((i+1)); done; head -c 10485760 /dev/zero | tr '\\0' x; echo; echo to-stderr >&2; exit 3"]);
    b.write();
    let id = unique_id("direct");
    let log = b.path().join("ctr.log");
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
