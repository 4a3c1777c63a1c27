//! `save` (`image save`): images as one archive (docker's manifest.json
//! and an OCI layout), streamed from rindd to a file or to stdout.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::SaveImageRequest;
use tonic::transport::Channel;

use crate::status;

#[derive(clap::Args, Debug)]
pub struct SaveFlags {
    /// Write to this file instead of stdout ("-": stdout)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Names (NAME alone: each of its tags), ids
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// A file beside `dest`, renamed over it once the archive is whole: a
/// failed save leaves no truncated archive where a good one may have been
/// (docker's CLI does the same). Removed on drop unless kept.
struct Partial {
    path: PathBuf,
    file: std::fs::File,
    kept: bool,
}

impl Partial {
    fn create(dest: &Path) -> anyhow::Result<Partial> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = dest.file_name().with_context(|| format!("{}: not a file name", dest.display()))?;
        let path = dir.join(format!(".{}.rind-save-{}", name.to_string_lossy(), std::process::id()));
        // 0600 as docker's: an image may hold secrets.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        Ok(Partial { path, file, kept: false })
    }

    fn keep(mut self, dest: &Path) -> anyhow::Result<()> {
        self.file.sync_all().with_context(|| format!("write {}", dest.display()))?;
        std::fs::rename(&self.path, dest).with_context(|| format!("rename {} to {}", self.path.display(), dest.display()))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub async fn save(c: &mut RindClient<Channel>, f: SaveFlags) -> anyhow::Result<i32> {
    let to_file = f.output.as_ref().filter(|o| o.as_os_str() != "-");
    if to_file.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    // The call fails here, before anything is written, when a name is not there.
    let mut stream = c.save_image(SaveImageRequest { names: f.images }).await.map_err(status)?.into_inner();
    match to_file {
        Some(dest) => {
            let mut partial = Partial::create(dest)?;
            while let Some(chunk) = stream.message().await.map_err(status)? {
                partial.file.write_all(&chunk.data).with_context(|| format!("write {}", partial.path.display()))?;
            }
            partial.keep(dest)?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = stream.message().await.map_err(status)? {
                out.write_all(&chunk.data).context("write to stdout")?;
            }
            out.flush().context("write to stdout")?;
        }
    }
    Ok(0)
}
