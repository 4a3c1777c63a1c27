//! OCI hooks: each runs with the container state as JSON on stdin, its own
//! argv and env, and an optional timeout. Which hooks run where, and what a
//! failure means, follows the spec's lifecycle:
//!
//! | hook            | where                           | state.status | on failure            |
//! |-----------------|---------------------------------|--------------|-----------------------|
//! | prestart        | runtime, during create          | created      | create fails          |
//! | createRuntime   | runtime, during create          | created      | create fails          |
//! | createContainer | container namespaces, pre-pivot | created      | create fails          |
//! | startContainer  | container, before the exec      | created      | start fails           |
//! | poststart       | runtime, after the exec         | running      | warning, next hook    |
//! | poststop        | runtime, after delete           | stopped      | warning, next hook    |
//!
//! The status column is [`status_for`]'s; its doc gives the reasons.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

use crate::state::Status;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}")]
    Spawn {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} hook {path} failed ({status}): {stderr}")]
    Failed { kind: &'static str, path: PathBuf, status: String, stderr: String },
    #[error("{kind} hook {path} timed out after {secs}s")]
    Timeout { kind: &'static str, path: PathBuf, secs: i64 },
}

/// The state a hook reads on stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: String,
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
}

impl HookState {
    pub fn with(&self, status: Status, pid: i32) -> HookState {
        HookState { status: status.to_string(), pid, ..self.clone() }
    }
}

/// The `status` a hook of `kind` reads on stdin, from runtime-spec's
/// runtime.md: `creating` is "the container is being created (step 2 in the
/// lifecycle)"; `created` is "after step 2 […], and the container process has
/// neither exited nor executed the user-specified program"; `running` is
/// after step 8, `stopped` once it has exited.
/// - prestart, createRuntime and createContainer are lifecycle steps 3, 4 and
///   5: after step 2, so `created`. crun says `created` for all three and the
///   runtime-tools suite (validation/hooks_stdin) checks it for prestart; runc
///   says `creating`, which the spec ties to step 2 alone.
/// - startContainer is step 7, after `start` but before the user's program
///   runs: still `created` by the same definition. crun says `starting`, a
///   status of its own; the spec allows extra values only "to represent new
///   runtime states not defined above", and this one is defined.
/// - poststart is step 9, after the program was executed: `running`.
/// - poststop is step 13, after the process exited (step 10): `stopped`.
pub fn status_for(kind: &str) -> Status {
    match kind {
        "poststart" => Status::Running,
        "poststop" => Status::Stopped,
        // prestart, createRuntime, createContainer, startContainer
        _ => Status::Created,
    }
}

/// Runs one hook to completion.
pub fn run(kind: &'static str, hook: &Hook, state: &HookState) -> Result<(), HookError> {
    let path = hook.path().clone();
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(&path);
    if let Some((argv0, rest)) = args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let spawn_err = |source| HookError::Spawn { kind, path: path.clone(), source };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    // The state is small; a hook that does not read it gets EPIPE, which is fine.
    let data = serde_json::to_vec(state).expect("hook state serializes");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&data);
    }
    let status = match hook.timeout().filter(|t| *t > 0) {
        None => child.wait().map_err(spawn_err)?,
        Some(secs) => {
            let at = Instant::now() + Duration::from_secs(secs as u64);
            // Short hooks are the rule: poll fast at first, then back off.
            let mut nap = Duration::from_micros(50);
            loop {
                if let Some(st) = child.try_wait().map_err(spawn_err)? {
                    break st;
                }
                if Instant::now() >= at {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HookError::Timeout { kind, path, secs });
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(10));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    Err(HookError::Failed { kind, path, status: status.to_string(), stderr: stderr.trim().to_string() })
}

/// Runs hooks in order, stopping at the first failure.
pub fn run_all(kind: &'static str, hooks: &[Hook], state: &HookState) -> Result<(), HookError> {
    hooks.iter().try_for_each(|h| run(kind, h, state))
}

/// Runs every hook; failures are warnings (poststart, poststop).
pub fn run_all_warn(kind: &'static str, hooks: &[Hook], state: &HookState) {
    for h in hooks {
        if let Err(e) = run(kind, h, state) {
            tracing::warn!(error = %rind_common::error::Chain(&e), "hook failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> HookState {
        HookState {
            oci_version: "1.2.0".into(),
            id: "c1".into(),
            status: "creating".into(),
            pid: 7,
            bundle: "/b".into(),
            annotations: HashMap::new(),
        }
    }

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn run_passes_state_args_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {0}; echo \" $0 $X\" >> {0}","argzero"],"env":["X=y"]}}"#,
            out.display()
        ));
        run("test", &h, &state()).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains(r#""status":"creating""#) && text.contains(r#""pid":7"#), "{text}");
        assert!(text.ends_with(" argzero y\n"), "{text}");
    }

    #[test]
    fn status_for_follows_the_spec_lifecycle() {
        for kind in ["prestart", "createRuntime", "createContainer", "startContainer"] {
            assert_eq!(status_for(kind), Status::Created, "{kind}");
        }
        assert_eq!(status_for("poststart"), Status::Running);
        assert_eq!(status_for("poststop"), Status::Stopped);
    }

    #[test]
    fn run_reports_failure_and_timeout() {
        let e = run("test", &hook(r#"{"path":"/bin/sh","args":["sh","-c","echo bad >&2; exit 3"]}"#), &state()).unwrap_err();
        assert!(e.to_string().contains("bad"), "{e}");
        let t = Instant::now();
        let e = run("test", &hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 5"],"timeout":1}"#), &state()).unwrap_err();
        assert!(matches!(e, HookError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(run("test", &hook(r#"{"path":"/nonexistent/hook"}"#), &state()).is_err());
    }
}
