//! rind: the command line, a thin client of rindd's gRPC API.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use rind_api::v1::rind_client::RindClient;
use rind_api::v1::*;
use tonic::transport::{Channel, Endpoint};

const DEFAULT_HOST: &str = "unix:///run/rind/rind.sock";

#[derive(Parser, Debug)]
#[command(name = "rind", version, about = "Run containers with rindd")]
struct Cli {
    /// Daemon socket (also RIND_HOST)
    #[arg(short = 'H', long = "host", env = "RIND_HOST", default_value = DEFAULT_HOST, global = true)]
    host: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Client and daemon versions
    Version,
    /// Load images from a `docker save` or OCI layout archive
    Load {
        #[arg(short, long)]
        input: PathBuf,
    },
    /// List images
    Images {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove an image
    Rmi {
        name: String,
        #[arg(short, long)]
        force: bool,
    },
}

async fn connect(host: &str) -> anyhow::Result<RindClient<Channel>> {
    let Some(path) = host.strip_prefix("unix://") else { bail!("-H {host}: only unix:///path is supported") };
    let path = PathBuf::from(path);
    let p = path.clone();
    let channel = Endpoint::try_from("http://rindd.sock")?
        .connect_with_connector(tower::service_fn(move |_| {
            let p = p.clone();
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(p).await?)) }
        }))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot connect to rindd at {}: is it running? Start it with `rindd` (or point -H / RIND_HOST at its socket)",
                path.display()
            )
        })?;
    Ok(RindClient::new(channel))
}

fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut c = connect(&cli.host).await?;
    match cli.command {
        Cmd::Version => {
            let v = c.version(VersionRequest {}).await.map_err(status)?.into_inner();
            println!("Client: {}\nServer: {} (API {})", env!("CARGO_PKG_VERSION"), v.version, v.api_version);
        }
        Cmd::Load { input } => {
            let data = tokio::fs::read(&input).await.with_context(|| format!("read {}", input.display()))?;
            let chunks: Vec<LoadChunk> = data.chunks(1 << 20).map(|c| LoadChunk { data: c.to_vec() }).collect();
            let r = c.load_image(tokio_stream::iter(chunks)).await.map_err(status)?.into_inner();
            for n in r.names {
                println!("Loaded image: {n}");
            }
        }
        Cmd::Images { quiet } => {
            let r = c.list_images(ListImagesRequest {}).await.map_err(status)?.into_inner();
            if !quiet {
                println!("{:<50} {:<20} {}", "NAME", "CONFIG", "LAYERS");
            }
            for i in r.images {
                if quiet {
                    println!("{}", i.name);
                } else {
                    let short = i.config_digest.trim_start_matches("sha256:").chars().take(12).collect::<String>();
                    println!("{:<50} {:<20} {}", i.name, short, i.layers.len());
                }
            }
        }
        Cmd::Rmi { name, force } => {
            c.remove_image(RemoveImageRequest { name: name.clone(), force }).await.map_err(status)?;
            println!("Untagged: {name}");
        }
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rind: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("rind: {e:#}");
        std::process::exit(1);
    }
}
