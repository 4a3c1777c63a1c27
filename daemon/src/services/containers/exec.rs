//! exec: the process of a new exec, from the container's.

use super::*;

impl Containers {
    /// The OCI process of an exec: the container's, with the exec's changes.
    pub fn exec_process(&self, row: &ContainerRow, p: &ExecRequest) -> Result<Vec<u8>> {
        let spec: Spec = serde_json::from_str(&row.spec).map_err(|e| ContainerError::Invalid(format!("stored spec: {e}")))?;
        let mut proc = spec.process().clone().ok_or_else(|| ContainerError::Invalid("stored spec has no process".into()))?;
        if p.args.is_empty() {
            return Err(ContainerError::Invalid("exec needs a command".into()));
        }
        proc.set_args(Some(p.args.clone()));
        proc.set_terminal(Some(p.tty));
        let env = spec::merge_env(proc.env().as_deref().unwrap_or(&[]), &p.env);
        proc.set_env(Some(env));
        if !p.workdir.is_empty() {
            proc.set_cwd(PathBuf::from(&p.workdir));
        }
        if !p.user.is_empty() {
            let (uid, gid) = spec::parse_user(&self.resolve_user(&Self::config(row)?.chain, &p.user)?)?;
            let mut u = proc.user().clone();
            u.set_uid(uid);
            u.set_gid(gid);
            proc.set_user(u);
        }
        Ok(serde_json::to_vec(&proc).expect("process serializes"))
    }

    pub fn exec_request(
        &self,
        row: &ContainerRow,
        exec_id: &str,
        p: &ExecRequest,
        io: (String, String, String),
    ) -> Result<api::ExecProcessRequest> {
        let spec = self.exec_process(row, p)?;
        Ok(api::ExecProcessRequest {
            id: row.id.clone(),
            exec_id: exec_id.to_string(),
            terminal: p.tty,
            stdin: io.0,
            stdout: io.1,
            stderr: io.2,
            spec: MessageField::some(containerd_shim_protos::protobuf::well_known_types::any::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: spec,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// Adds exec `exec_id` to the container and starts it, under the
    /// container's lock: an exec never lands on a shim being torn down or a
    /// container being removed. Returns the shim that runs it.
    pub async fn exec_start(
        &self,
        row: &ContainerRow,
        exec_id: &str,
        p: &ExecRequest,
        io: (String, String, String),
    ) -> Result<Arc<dyn TaskApi>> {
        let req = self.exec_request(row, exec_id, p, io)?;
        let lock = self.lock_of(&row.id);
        let _g = lock.lock().await;
        let (row, shim) = self.shim_for(&row.id)?;
        shim.exec(req).await?;
        if let Err(e) = shim.start(&row.id, exec_id).await {
            let _ = shim.delete(&row.id, exec_id).await;
            return Err(e.into());
        }
        Ok(shim)
    }

    pub fn new_exec_id() -> String {
        random_hex(8)
    }
}

/// What `rind exec` asks for.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub tty: bool,
}
