//! `pull` (`image pull`): rindd pulls, the CLI shows docker's progress:
//! one bar per layer on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{PullImageRequest, PullProgress};
use tonic::transport::Channel;

use crate::credentials;
use crate::status;

/// How the progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Bars, redrawn in place.
    Terminal,
    /// One line per change of a layer's state; no bars, no escapes.
    Plain,
    /// Only the image's name at the end (`-q`).
    Quiet,
    /// Plain lines on stderr (a pull for `run`: stdout is the container's).
    Stderr,
}

impl Show {
    pub fn for_stderr() -> Show {
        Show::Stderr
    }

    pub fn for_stdout(quiet: bool) -> Show {
        if quiet {
            Show::Quiet
        } else if std::io::stdout().is_terminal() {
            Show::Terminal
        } else {
            Show::Plain
        }
    }
}

/// Pulls `image`; returns the stored name.
pub async fn pull(c: &mut RindClient<Channel>, image: &str, platform: &str, show: Show) -> anyhow::Result<String> {
    let auth = credentials::lookup(&credentials::registry_of(image)).context("read registry credentials")?;
    let req = PullImageRequest { reference: image.to_string(), platform: platform.to_string(), auth };
    let mut stream = c.pull_image(req).await.map_err(status)?.into_inner();
    let mut view = View::new(show);
    let mut name = String::new();
    while let Some(p) = stream.message().await.map_err(|e| {
        view.abandon();
        status(e)
    })? {
        if !p.image.is_empty() {
            name = p.image.clone();
            continue;
        }
        view.show(&p);
    }
    view.finish();
    if show == Show::Quiet {
        println!("{}", qualified(&name));
    }
    Ok(name)
}

/// docker -q prints the full name: docker.io/library/busybox:latest.
fn qualified(name: &str) -> String {
    let first = name.split('/').next().unwrap_or("");
    if name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost") {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    }
}

pub async fn pull_verb(c: &mut RindClient<Channel>, image: &str, platform: &str, quiet: bool) -> anyhow::Result<i32> {
    pull(c, image, platform, Show::for_stdout(quiet)).await?;
    Ok(0)
}

pub struct View {
    show: Show,
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    /// Plain mode: the last status printed per id (a "Downloading" is printed once).
    last: HashMap<String, String>,
}

impl View {
    pub fn new(show: Show) -> View {
        // Bars on stdout, as docker draws them (indicatif's default is stderr).
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        View { show, multi, bars: HashMap::new(), last: HashMap::new() }
    }

    pub fn show(&mut self, p: &PullProgress) {
        match self.show {
            Show::Quiet => {}
            Show::Plain | Show::Stderr => {
                if self.last.get(&p.id) == Some(&p.status) {
                    return;
                }
                self.last.insert(p.id.clone(), p.status.clone());
                let line = if p.id.is_empty() { p.status.clone() } else { format!("{}: {}", p.id, p.status) };
                if self.show == Show::Stderr {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
            Show::Terminal => {
                if p.id.is_empty() {
                    let _ = self.multi.println(&p.status);
                    return;
                }
                let multi = &self.multi;
                let bar = self.bars.entry(p.id.clone()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(0));
                    b.set_style(ProgressStyle::with_template("{prefix}: {msg}").expect("template"));
                    b.set_prefix(p.id.clone());
                    b
                });
                if p.total > 0 {
                    bar.set_style(
                        ProgressStyle::with_template("{prefix}: {msg} [{bar:40}] {bytes}/{total_bytes}")
                            .expect("template")
                            .progress_chars("=> "),
                    );
                    bar.set_length(p.total);
                    bar.set_position(p.current);
                } else {
                    bar.set_style(ProgressStyle::with_template("{prefix}: {msg}").expect("template"));
                }
                bar.set_message(p.status.clone());
            }
        }
    }

    pub fn abandon(&mut self) {
        for b in self.bars.values() {
            b.abandon();
        }
    }

    pub fn finish(&mut self) {
        for b in self.bars.values() {
            b.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_names_are_docker_qualified() {
        assert_eq!(qualified("busybox:latest"), "docker.io/library/busybox:latest");
        assert_eq!(qualified("someone/app:v1"), "docker.io/someone/app:v1");
        assert_eq!(qualified("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app:v1");
    }
}
