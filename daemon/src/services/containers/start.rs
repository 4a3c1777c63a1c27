//! start: bundle, shim, Task.Create and Task.Start.

use super::*;

impl Containers {
    pub async fn start(&self, id: &str) -> Result<ContainerRow> {
        let row = self.get(id)?;
        let lock = self.lock_of(&row.id);
        let _g = lock.lock().await;
        let row = self.get(&row.id)?;
        if row.status.is_live() {
            return Ok(row);
        }
        self.db().update_container(&row.id, |r| r.desired = Desired::Running)?;
        self.start_locked(row, false).await
    }

    /// Starts a stopped container: bundle, shim, Create, Start.
    pub(super) async fn start_locked(&self, row: ContainerRow, restarting: bool) -> Result<ContainerRow> {
        let c = Self::config(&row)?;
        let bundle = self.paths.bundle(&row.id);
        let data = self.paths.data(&row.id);
        let _ = std::fs::remove_dir_all(&bundle);
        std::fs::create_dir_all(bundle.join("rootfs")).map_err(io_err("create", &bundle))?;
        let cfg = bundle.join("config.json");
        // Root only: the spec holds the container's environment.
        crate::dirs::write_private(&cfg, row.spec.as_bytes()).map_err(io_err("write", &cfg))?;
        let stdin = if c.open_stdin {
            let p = bundle.join("init-stdin");
            nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| io_err("create fifo", &p)(e.into()))?;
            p.display().to_string()
        } else {
            String::new()
        };
        let chain =
            c.chain.iter().map(|d| Digest::parse(d).map_err(|e| ContainerError::Invalid(e.to_string()))).collect::<Result<Vec<_>>>()?;
        let options = Snapshots::new(&self.paths.root).overlay_options(&chain, &data.join("upper"), &data.join("work"));
        let log = format!("file://{}?format=cri", self.paths.log(&row.id).display());
        let req = api::CreateTaskRequest {
            id: row.id.clone(),
            bundle: bundle.display().to_string(),
            rootfs: vec![containerd_shim_protos::types::mount::Mount {
                type_: "overlay".into(),
                source: "overlay".into(),
                options: options.split(',').map(String::from).collect(),
                ..Default::default()
            }],
            terminal: c.run.tty,
            stdin,
            stdout: log.clone(),
            stderr: if c.run.tty { String::new() } else { log },
            ..Default::default()
        };
        // The previous shim of this container may still be on its way out,
        // listening on the socket a new one would use: let it go first.
        self.await_retired(&row.id).await;
        // Intent first: the shim's address is in the row before the shim
        // exists, so wherever this is cut short (rindd killed included),
        // recovery finds the shim and tears it down.
        let planned = self.launcher.address(&row.id);
        self.db().update_container(&row.id, |r| r.shim_address = Some(planned.clone()))?;
        let t0 = std::time::Instant::now();
        let started = async {
            // The network's CNI ADD runs while the shim starts: only the
            // runtime's create (below) needs the namespace it pins.
            let (address, attached) = tokio::join!(self.launcher.start(&row.id, &bundle), self.attach_network(&row.id, &c));
            let address = address?;
            attached?;
            tracing::debug!(id = %row.id, ms = t0.elapsed().as_secs_f64() * 1000.0, "shim started");
            if address != planned {
                tracing::warn!(id = %row.id, planned, address, "the shim listens elsewhere than planned");
            }
            let shim = self.launcher.connect(&address).await?;
            self.adopt(&row.id, shim.clone());
            // Before Create: a TaskOOM of this run may come before Start returns.
            self.db().update_container(&row.id, |r| {
                r.shim_address = Some(address.clone());
                r.oom_killed = false;
            })?;
            let pid = shim.create(req).await?;
            tracing::debug!(id = %row.id, ms = t0.elapsed().as_secs_f64() * 1000.0, "task created");
            shim.start(&row.id, "").await?;
            tracing::debug!(id = %row.id, ms = t0.elapsed().as_secs_f64() * 1000.0, "task started");
            Ok::<u32, ContainerError>(pid)
        }
        .await;
        match started {
            Ok(pid) => {
                let row = self.db().update_container(&row.id, |r| {
                    r.status = Status::Running;
                    r.pid = pid as i64;
                    r.started_at = Some(SystemTime::now());
                    r.exit_code = None;
                    r.exit_reason = None;
                    r.finished_at = None;
                    if restarting {
                        r.restart_count += 1;
                    }
                })?;
                tracing::info!(id = %row.id, name = %row.name, pid, "container started");
                self.emit(&row, "start", None);
                Ok(row)
            }
            Err(e) => {
                self.teardown(&row.id).await;
                // Docker keeps the container, with the error and 127/126/128 as its exit code.
                let msg = rind_common::error::chain(&e);
                let code = start_error_code(&msg);
                let _ = self.db().update_container(&row.id, |r| {
                    r.status = if restarting { Status::Exited } else { Status::Created };
                    r.exit_code = Some(code);
                    r.exit_reason = Some(msg);
                    r.finished_at = Some(SystemTime::now());
                    r.shim_address = None;
                });
                Err(e)
            }
        }
    }
}

/// Docker's exit code for a container that could not start.
fn start_error_code(msg: &str) -> i64 {
    rind_common::exit::start_failure_code(msg).unwrap_or(128) as i64
}
