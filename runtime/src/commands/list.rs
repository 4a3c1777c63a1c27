//! `list`: every container under --root.

use std::io::Write;
use std::path::Path;

use crate::cli::ListFormat;
use crate::state::State;

pub fn list(root: &Path, format: ListFormat, quiet: bool, out: &mut impl Write) -> std::io::Result<()> {
    let mut states: Vec<State> = match std::fs::read_dir(root) {
        Ok(rd) => rd.filter_map(|e| State::load(root, e.ok()?.file_name().to_str()?).ok()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    states.sort_by(|a, b| a.id.cmp(&b.id));
    if quiet {
        for s in &states {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    match format {
        ListFormat::Json => {
            let v: Vec<_> = states.iter().map(|s| s.oci_json(s.status(root))).collect();
            writeln!(out, "{}", serde_json::Value::Array(v))
        }
        ListFormat::Table => {
            writeln!(out, "{:<24} {:<8} {:<10} {:<40} {:<32} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED")?;
            for s in &states {
                let status = s.status(root);
                let pid = if status == crate::state::Status::Stopped { 0 } else { s.pid };
                writeln!(out, "{:<24} {:<8} {:<10} {:<40} {:<32} root", s.id, pid, status, s.bundle.display(), s.created)?;
            }
            Ok(())
        }
    }
}
