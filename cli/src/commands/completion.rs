//! `completion` and `man`: shell completions and man pages, generated from
//! the clap definitions; neither needs rindd.

use std::path::Path;

use anyhow::Context;

pub fn completion(shell: clap_complete::Shell, mut cmd: clap::Command) -> anyhow::Result<i32> {
    clap_complete::generate(shell, &mut cmd, "rind", &mut std::io::stdout());
    Ok(0)
}

pub fn man(dir: &Path, cmd: clap::Command) -> anyhow::Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir).with_context(|| format!("write man pages to {}", dir.display()))?;
    Ok(0)
}
