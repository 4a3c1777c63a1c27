//! `spec`: write a default config.json, as `runc spec` does.

use std::path::Path;

use anyhow::{bail, Context};
use oci_spec::runtime::Spec;

pub fn spec(bundle: &Path, rootless: bool) -> anyhow::Result<()> {
    let path = bundle.join(crate::paths::CONFIG_FILE);
    if path.exists() {
        bail!("{} exists: remove it first", path.display());
    }
    let mut spec = Spec::default();
    if rootless {
        let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        spec.set_linux(Some(oci_spec::runtime::Linux::rootless(uid, gid)));
    }
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
    }
    spec.save(&path).with_context(|| format!("write {}", path.display()))
}
