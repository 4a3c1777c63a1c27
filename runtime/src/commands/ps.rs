//! `ps`: the container's processes, as pids (json) or through ps(1).

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::cli::ListFormat;
use crate::state::State;

pub fn ps(root: &Path, id: &str, format: ListFormat, ps_args: &[String], out: &mut impl Write) -> anyhow::Result<()> {
    let st = State::load(root, id)?;
    let pids = st.cgroup.pids()?;
    if format == ListFormat::Json {
        writeln!(out, "{}", serde_json::to_string(&pids)?)?;
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() { vec!["-ef".into()] } else { ps_args.to_vec() };
    let o = Command::new("ps").args(&args).output().context("run ps")?;
    if !o.status.success() {
        bail!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim());
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header.split_whitespace().position(|h| h == "PID").context("ps output has no PID column")?;
    writeln!(out, "{header}")?;
    for l in lines {
        if l.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok()).is_some_and(|p| pids.contains(&p)) {
            writeln!(out, "{l}")?;
        }
    }
    Ok(())
}
