//! The init's verbs (the container itself): create, start, pause, resume,
//! kill, update and delete. Each holds the init's lock across check, act
//! (the runtime command), record and its event.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::OwnedMutexGuard;

use super::state::{State, Verb};
use super::{io_err, read_pid, Inner, Process, ProcessError, ProcessId, Result};
use crate::container::Container;
use crate::exit_file::Exit;
use crate::paths;
use crate::rootfs::{self, Mount};
use crate::runtime::{Runtime, RuntimeChoice, Stdio3};
use crate::stdio::{self, StdioConfig};

/// What Create asks for, out of its request.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The bundle as the request names it (for TaskCreate).
    pub bundle: String,
    pub stdio: StdioConfig,
    pub rootfs: Vec<Mount>,
    /// The runc options' BinaryName and Root, empty when not given.
    pub binary_name: String,
    pub root: String,
    pub checkpoint: bool,
}

/// The runc options' BinaryName wins; then the shim's environment; then
/// rind-runtime. The state root is per namespace.
pub fn choose_runtime(binary_name: &str, env: Option<std::ffi::OsString>, root: &str, namespace: &str) -> RuntimeChoice {
    let binary = match (binary_name.is_empty(), env) {
        (false, _) => PathBuf::from(binary_name),
        (true, Some(b)) => PathBuf::from(b),
        (true, None) => PathBuf::from(paths::DEFAULT_RUNTIME),
    };
    let root = if root.is_empty() { paths::runtime_root().join(namespace) } else { PathBuf::from(root).join(namespace) };
    RuntimeChoice { binary, root }
}

impl Container {
    /// Creates the init: the runtime's `create`, with its stdio. Returns its pid.
    pub async fn create(&self, opts: CreateOptions) -> Result<i32> {
        if opts.checkpoint {
            return Err(ProcessError::Unimplemented("restore from checkpoint"));
        }
        let p = Arc::new(Process::new(ProcessId::Init, opts.stdio.clone(), Vec::new()));
        // Locked before anyone can see it: State and Start wait for the create.
        let mut g = p.lock().await;
        self.processes.insert(p.clone())?;
        let result = async {
            let choice = choose_runtime(&opts.binary_name, std::env::var_os(paths::RUNTIME_ENV), &opts.root, &self.namespace);
            let choice_path = self.bundle.join(paths::RUNTIME_CHOICE_FILE);
            // A struct of two paths always serializes.
            let json = serde_json::to_vec(&choice).unwrap_or_default();
            std::fs::write(&choice_path, json).map_err(io_err("write", &choice_path))?;
            let runtime = Arc::new(Runtime {
                binary: choice.binary,
                root: choice.root,
                log: self.bundle.join(paths::RUNTIME_LOG),
                spawner: self.spawner.clone(),
            });
            self.set_runtime(runtime.clone());
            let mounted = rootfs::mount(&opts.rootfs, &self.bundle.join(paths::ROOTFS))?;
            self.rootfs_mounted.store(mounted, Ordering::SeqCst);
            let pid_file = self.bundle.join(paths::INIT_PID_FILE);
            let args = vec![
                "create".into(),
                "--bundle".into(),
                self.bundle.display().to_string(),
                "--pid-file".into(),
                pid_file.display().to_string(),
                self.id.clone(),
            ];
            let window = self.processes.begin_start();
            g.io = stdio::run_with_io(&runtime, args, &p.stdio, &self.id, &self.namespace).await?;
            let pid = read_pid(&pid_file)?;
            if let Some(status) = window.started(&p, pid) {
                self.exits.spawn_record(p.clone(), pid, status);
            }
            Ok(pid)
        }
        .await;
        match result {
            Ok(pid) => {
                self.watch_oom(pid);
                self.events.created(&opts.bundle, &opts.rootfs, &p.stdio, pid).await;
                Ok(pid)
            }
            Err(e) => {
                g.state = State::Deleted;
                self.processes.remove(&p);
                self.unmount_rootfs();
                Err(e)
            }
        }
    }

    pub(crate) async fn start_init(&self) -> Result<i32> {
        let p = self.processes.get(&ProcessId::Init)?;
        let mut g = p.lock().await;
        let next = p.check(&g, Verb::Start)?;
        self.runtime()?.run(&["start".into(), self.id.clone()], Stdio3::default(), None).await?;
        g.state = next;
        self.events.started(&p.id, p.pid()).await;
        Ok(p.pid())
    }

    pub async fn pause(&self) -> Result<()> {
        let _g = self.simple_verb(Verb::Pause, vec!["pause".into(), self.id.clone()], None).await?;
        self.events.paused().await;
        Ok(())
    }

    pub async fn resume(&self) -> Result<()> {
        let _g = self.simple_verb(Verb::Resume, vec!["resume".into(), self.id.clone()], None).await?;
        self.events.resumed().await;
        Ok(())
    }

    /// New resources, as the OCI spec's linux.resources JSON.
    pub async fn update(&self, resources: Vec<u8>) -> Result<()> {
        let args = vec!["update".into(), "--resources".into(), "-".into(), self.id.clone()];
        self.simple_verb(Verb::Update, args, Some(resources)).await.map(drop)
    }

    pub(crate) async fn kill_init(&self, signal: u32, all: bool) -> Result<()> {
        let mut args = vec!["kill".to_string()];
        if all {
            args.push("--all".into());
        }
        args.extend([self.id.clone(), signal.to_string()]);
        self.simple_verb(Verb::Kill, args, None).await.map(drop)
    }

    /// An init verb that is one runtime command. Returns the lock still
    /// held, for the caller's event.
    async fn simple_verb(&self, verb: Verb, args: Vec<String>, input: Option<Vec<u8>>) -> Result<OwnedMutexGuard<Inner>> {
        let p = self.processes.get(&ProcessId::Init)?;
        let mut g = p.lock_owned().await;
        let next = p.check(&g, verb)?;
        self.runtime()?.run(&args, Stdio3::default(), input).await?;
        g.state = next;
        Ok(g)
    }

    /// Deletes the container (and with it every exec); returns the init's
    /// pid and exit. A second Delete finds it deleted: NOT_FOUND.
    pub(crate) async fn delete_init(&self) -> Result<(i32, Exit)> {
        let p = self.processes.get(&ProcessId::Init)?;
        let mut g = p.lock().await;
        let next = p.check(&g, Verb::Delete)?;
        let runtime = self.runtime()?;
        match runtime.run(&["delete".into(), "--force".into(), self.id.clone()], Stdio3::default(), None).await {
            // The runtime's state is already gone (a `shim delete` ran while
            // this shim lived, or a Delete was cut short): what it would have
            // deleted is deleted. containerd's runc shim does the same;
            // refusing would leave this shim unable ever to shut down.
            Err(e) if e.is_gone() => tracing::info!(id = %self.id, "runtime state already deleted"),
            r => r?,
        }
        self.unmount_rootfs();
        g.state = next;
        self.processes.clear();
        self.deleted.store(true, Ordering::SeqCst);
        // The namespace's runtime root goes with its last container.
        let _ = std::fs::remove_dir(&runtime.root);
        let _ = std::fs::remove_file(self.bundle.join(paths::EXIT_FILE));
        let pid = p.pid();
        // A created init that never ran was killed by the forced delete.
        let exit = p.exit().unwrap_or_else(|| Exit::now(pid, 128 + libc::SIGKILL as u32));
        self.events.deleted(pid, &exit).await;
        Ok((pid, exit))
    }

    pub(crate) fn unmount_rootfs(&self) {
        if self.rootfs_mounted.swap(false, Ordering::SeqCst) {
            rootfs::unmount(&self.bundle.join(paths::ROOTFS));
        }
    }

    /// Publishes TaskOOM for every OOM kill in the container's memory cgroup.
    fn watch_oom(&self, pid: i32) {
        let Some((dir, v2)) = crate::oom::memory_cgroup(pid) else { return };
        let events = self.events.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::oom::watch(dir, v2, || events.oom()).await {
                tracing::warn!(error = %e, "watch for OOM kills");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::runtime::testing;

    /// A container whose created init has `pid`, run by `binary`.
    async fn created(dir: &Path, binary: &str) -> Arc<Container> {
        let c = testing::container(dir, Some(binary));
        let p = Arc::new(Process::new(ProcessId::Init, StdioConfig::default(), Vec::new()));
        c.processes.insert(p.clone()).unwrap();
        c.processes.begin_start().started(&p, 4242);
        c
    }

    #[test]
    fn choose_runtime_prefers_options_then_environment() {
        let env = Some("/usr/sbin/runc".into());
        assert_eq!(choose_runtime("/opt/crun", env.clone(), "", "ns").binary, PathBuf::from("/opt/crun"));
        assert_eq!(choose_runtime("", env, "", "ns").binary, PathBuf::from("/usr/sbin/runc"));
        let c = choose_runtime("", None, "/run/x", "ns");
        assert_eq!((c.binary, c.root), (PathBuf::from(paths::DEFAULT_RUNTIME), PathBuf::from("/run/x/ns")));
        assert_eq!(choose_runtime("", None, "", "ns").root, paths::runtime_root().join("ns"));
    }

    /// The old shim released its lock around the runtime's delete and then
    /// `expect`ed the init to be there: the second of two Deletes panicked.
    #[tokio::test]
    async fn delete_twice_at_once_deletes_once_and_the_second_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        let c = created(d.path(), "/bin/true").await;
        let (a, b) = tokio::join!(c.delete(&ProcessId::Init), c.delete(&ProcessId::Init));
        let (ok, err) = match (a, b) {
            (Ok(ok), Err(err)) | (Err(err), Ok(ok)) => (ok, err),
            other => panic!("one Delete must win: {other:?}"),
        };
        assert_eq!((ok.0, ok.1.status), (4242, 137));
        assert!(err.is_not_found(), "{err}");
        assert!(c.deleted.load(Ordering::SeqCst) && c.can_shut_down());
        assert!(c.delete(&ProcessId::Init).await.unwrap_err().is_not_found(), "and a third, later");
    }

    #[tokio::test]
    async fn delete_of_a_running_init_names_its_state() {
        let d = tempfile::tempdir().unwrap();
        let c = created(d.path(), "/bin/true").await;
        assert_eq!(c.start(&ProcessId::Init).await.unwrap(), 4242);
        let e = c.delete(&ProcessId::Init).await.unwrap_err();
        assert_eq!(e.to_string(), "cannot delete process init: it is running");
        let e = c.start(&ProcessId::Init).await.unwrap_err();
        assert_eq!(e.to_string(), "cannot start process init: it is running");
    }

    #[tokio::test]
    async fn pause_and_resume_move_the_init_and_refuse_out_of_turn() {
        let d = tempfile::tempdir().unwrap();
        let c = created(d.path(), "/bin/true").await;
        assert_eq!(c.pause().await.unwrap_err().to_string(), "cannot pause process init: it is created");
        c.start(&ProcessId::Init).await.unwrap();
        c.pause().await.unwrap();
        assert_eq!(c.state(&ProcessId::Init).await.unwrap().0.state, State::Paused);
        assert_eq!(c.pause().await.unwrap_err().to_string(), "cannot pause process init: it is paused");
        c.resume().await.unwrap();
        assert_eq!(c.state(&ProcessId::Init).await.unwrap().0.state, State::Running);
    }

    #[tokio::test]
    async fn a_failed_runtime_command_leaves_the_state_as_it_was() {
        let d = tempfile::tempdir().unwrap();
        let c = created(d.path(), "/bin/false").await;
        assert!(matches!(c.start(&ProcessId::Init).await, Err(ProcessError::Runtime(_))));
        assert_eq!(c.state(&ProcessId::Init).await.unwrap().0.state, State::Created);
        assert!(matches!(c.delete(&ProcessId::Init).await, Err(ProcessError::Runtime(_))));
        assert!(!c.deleted.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn delete_when_the_runtime_state_is_already_gone_succeeds() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        // A runtime that knows no such container (its args: --root R --log L ...).
        let gone = d.path().join("gone");
        std::fs::write(&gone, "#!/bin/sh\necho '{\"level\":\"error\",\"msg\":\"container c does not exist\"}' > \"$4\"\nexit 1\n").unwrap();
        std::fs::set_permissions(&gone, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = created(d.path(), gone.to_str().unwrap()).await;
        let (pid, exit) = c.delete(&ProcessId::Init).await.expect("deleted");
        assert_eq!((pid, exit.status), (4242, 137));
        assert!(c.deleted.load(Ordering::SeqCst) && c.can_shut_down(), "the shim can shut down");
    }

    #[tokio::test]
    async fn verbs_before_create_are_not_found() {
        let d = tempfile::tempdir().unwrap();
        let c = testing::container(d.path(), None);
        assert!(c.start(&ProcessId::Init).await.unwrap_err().is_not_found());
        assert!(c.kill(&ProcessId::Init, 9, false).await.unwrap_err().is_not_found());
        assert!(matches!(c.pids().await, Err(ProcessError::NotCreated)));
        assert_eq!(c.init_pid(), 0);
    }
}
