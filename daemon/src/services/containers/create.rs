//! create: the row, the container's directories and its OCI spec, from the
//! image config and the run options.

use std::os::unix::fs::DirBuilderExt;

use super::*;

impl Containers {
    /// The image's stored name ("busybox" is "busybox:latest"), config digest,
    /// config and snapshot chain.
    fn image_config(&self, image: &str) -> Result<(String, String, ImageConfiguration, Vec<String>)> {
        let exact = self.db().image(image)?;
        // "busybox" means "busybox:latest", as docker reads it.
        let row = match exact {
            Some(r) => Some(r),
            None if !image.contains(':') => self.db().image(&format!("{image}:latest"))?,
            None => None,
        };
        let row = row.ok_or_else(|| ContainerError::NoImage(image.into()))?;
        let digest = Digest::parse(&row.config)
            .map_err(|e| ContainerError::ImageConfig { digest: row.config.clone(), message: rind_common::error::chain(&e) })?;
        let data = self
            .content
            .read(&digest)
            .map_err(|e| ContainerError::ImageConfig { digest: row.config.clone(), message: rind_common::error::chain(&e) })?;
        let cfg: ImageConfiguration = serde_json::from_slice(&data)
            .map_err(|e| ContainerError::ImageConfig { digest: row.config.clone(), message: rind_common::error::chain(&e) })?;
        let diff_ids = cfg
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| Digest::parse(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ContainerError::ImageConfig { digest: row.config.clone(), message: rind_common::error::chain(&e) })?;
        let chain = chain_ids(&diff_ids).iter().map(|d| d.as_str().to_string()).collect();
        Ok((row.name, row.config, cfg, chain))
    }

    /// --security-opt: what rind knows of it.
    fn security_opts(c: &mut Config) -> Result<()> {
        for o in &c.security_opt {
            match o.as_str() {
                "seccomp=unconfined" | "seccomp:unconfined" => c.run.seccomp_unconfined = true,
                "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true" => {}
                other => {
                    return Err(ContainerError::Invalid(format!(
                        "invalid --security-opt {other:?}: rind knows seccomp=unconfined and no-new-privileges"
                    )))
                }
            }
        }
        Ok(())
    }

    /// A file of the image, from its top layer down ("" if absent or deleted).
    fn image_file(&self, chain: &[String], path: &str) -> String {
        use std::os::unix::fs::FileTypeExt;
        let snaps = Snapshots::new(&self.paths.root);
        for d in chain.iter().rev() {
            let Ok(d) = Digest::parse(d) else { continue };
            let p = snaps.dir(&d).join(path.trim_start_matches('/'));
            match std::fs::symlink_metadata(&p) {
                // A whiteout: deleted in this layer.
                Ok(m) if m.file_type().is_char_device() => return String::new(),
                Ok(m) if m.is_file() => return std::fs::read_to_string(&p).unwrap_or_default(),
                _ => {}
            }
        }
        String::new()
    }

    /// "name[:group]" → "uid:gid" through the image's passwd and group files.
    pub(super) fn resolve_user(&self, chain: &[String], user: &str) -> Result<String> {
        crate::services::users::resolve(user, &self.image_file(chain, "etc/passwd"), &self.image_file(chain, "etc/group"))
            .map_err(|e| ContainerError::Invalid(e.to_string()))
    }

    /// /etc/hostname, /etc/hosts and /etc/resolv.conf for the container.
    fn write_etc(&self, dir: &Path, c: &Config) -> Result<Vec<oci_spec::runtime::Mount>> {
        let hostname = c.run.hostname.clone().unwrap_or_default();
        let hosts = if c.run.network == "host" {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            super::network::hosts_file(c, None, &[])
        };
        let resolv = super::network::resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(), c);
        let files = [("hostname", format!("{hostname}\n")), ("hosts", hosts), ("resolv.conf", resolv)];
        let mut mounts = Vec::new();
        for (name, data) in files {
            let p = dir.join(name);
            std::fs::write(&p, data).map_err(io_err("write", &p))?;
            let m = MountBuilder::default()
                .destination(format!("/etc/{name}"))
                .typ("bind")
                .source(&p)
                .options(vec!["rbind".to_string(), "rprivate".to_string(), if c.run.read_only { "ro" } else { "rw" }.to_string()])
                .build()
                .map_err(SpecError::from)?;
            mounts.push(m);
        }
        Ok(mounts)
    }

    pub fn create(&self, name: &str, mut c: Config) -> Result<ContainerRow> {
        let name = if name.is_empty() { name } else { super::name::valid_name(name)? };
        if !name.is_empty() && self.db().container(name)?.is_some() {
            return Err(ContainerError::Conflict(format!(
                "the container name {name:?} is already in use: remove or rename that container"
            )));
        }
        if c.auto_remove && c.restart != Policy::No {
            return Err(ContainerError::Invalid("--restart and --rm conflict: a container cannot restart and be removed on exit".into()));
        }
        if !c.stop_signal.is_empty() {
            parse_signal(&c.stop_signal)?;
        }
        let (image_name, image_id, image_cfg, chain) = self.image_config(&c.image)?;
        c.image = image_name;
        for d in &chain {
            let dir = Snapshots::new(&self.paths.root).dir(&Digest::parse(d).map_err(|e| ContainerError::Invalid(e.to_string()))?);
            if !dir.is_dir() {
                return Err(ContainerError::ImageConfig {
                    digest: image_id,
                    message: format!("layer snapshot {} is missing: load the image again", dir.display()),
                });
            }
        }
        let id = random_hex(32);
        if c.run.hostname.as_deref().unwrap_or("").is_empty() {
            c.run.hostname = Some(id[..12].to_string());
        }
        if c.stop_signal.is_empty() {
            c.stop_signal = image_cfg.config().as_ref().and_then(|x| x.stop_signal().clone()).unwrap_or_else(|| "SIGTERM".into());
        }
        (c.image_id, c.chain) = (image_id, chain);
        Self::security_opts(&mut c)?;
        // The image's labels, then the user's, as docker shows them.
        let mut labels = image_cfg.config().as_ref().and_then(|x| x.labels().clone()).unwrap_or_default();
        labels.extend(std::mem::take(&mut c.run.labels));
        c.run.labels = labels;
        let volumes: Vec<String> = image_cfg.config().as_ref().and_then(|x| x.volumes().clone()).unwrap_or_default();
        // Held until the row is in: no other create takes the same host port.
        let planned = self.plan_network(&id, &mut c, &image_cfg)?;
        let mut opts = c.run.clone();
        let user = c.run.user.clone().or_else(|| image_cfg.config().as_ref().and_then(|x| x.user().clone())).filter(|u| !u.is_empty());
        if let Some(u) = user {
            opts.user = Some(self.resolve_user(&c.chain, &u)?);
        }
        let mut spec = spec::container_spec(&image_cfg, &opts)?;
        if let Some(path) = &planned.netns {
            spec::set_namespace_path(&mut spec, oci_spec::runtime::LinuxNamespaceType::Network, path)?;
        }
        let data = self.paths.data(&id);
        let made = (|| -> Result<ContainerRow> {
            // Root only: the log inside holds the container's output. The
            // upper dir stays 0755: it is the root directory of the container.
            std::fs::DirBuilder::new().recursive(true).mode(crate::dirs::PRIVATE_DIR).create(&data).map_err(io_err("create", &data))?;
            for d in [data.join("upper"), data.join("work")] {
                std::fs::create_dir_all(&d).map_err(io_err("create", &d))?;
            }
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            mounts.extend(self.write_etc(&data, &c)?);
            // The image's VOLUMEs not bound by -v: a directory of the container's
            // own, outside its overlay (gone with the container).
            for (i, v) in volumes.iter().filter(|v| !c.run.binds.iter().any(|(_, t, _)| t == *v)).enumerate() {
                let dir = data.join("volumes").join(i.to_string());
                std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
                let m = MountBuilder::default()
                    .destination(v)
                    .typ("bind")
                    .source(&dir)
                    .options(vec!["rbind".to_string(), "rw".to_string()])
                    .build()
                    .map_err(SpecError::from)?;
                mounts.push(m);
            }
            spec.set_mounts(Some(mounts));
            let row = ContainerRow {
                id: id.clone(),
                name: if name.is_empty() { random_name() } else { name.to_string() },
                image: c.image.clone(),
                spec: serde_json::to_string(&spec).expect("spec serializes"),
                desired: Desired::Stopped,
                restart_policy: c.restart,
                bundle: self.paths.bundle(&id).display().to_string(),
                shim_address: None,
                created: SystemTime::now(),
                exit_code: None,
                finished_at: None,
                exit_reason: None,
                config: serde_json::to_string(&c).expect("config serializes"),
                status: Status::Created,
                pid: 0,
                started_at: None,
                restart_count: 0,
                oom_killed: false,
            };
            let mut row = row;
            // A generated name taken already: another, as docker does.
            let mut tries = 0;
            loop {
                match self.db().insert_container(&row) {
                    Err(StoreError::Exists(_)) if name.is_empty() && tries < 10 => {
                        tries += 1;
                        row.name = random_name();
                    }
                    done => break done?,
                }
            }
            Ok(row)
        })();
        match made {
            Ok(row) => {
                self.emit(&row, "create", None);
                Ok(row)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&data);
                Err(e)
            }
        }
    }
}
