//! One file per verb (or per small family: pause and unpause, the image
//! verbs); `main.rs` parses the command line and dispatches here.

pub mod attach;
pub mod completion;
pub mod create;
pub mod events;
pub mod exec;
pub mod history;
pub mod image_prune;
pub mod images;
pub mod info;
pub mod inspect;
pub mod kill;
pub mod load;
pub mod login;
pub mod logs;
pub mod network;
pub mod pause;
pub mod port;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rename;
pub mod restart;
pub mod rm;
pub mod run;
pub mod save;
pub mod start;
pub mod stats;
pub mod stop;
pub mod top;
pub mod version;
pub mod wait;

use rind_api::v1::rind_client::RindClient;
use tonic::transport::Channel;

use crate::errors;

/// Runs one call per container, printing each name done, as docker does.
pub async fn each<F, Fut>(c: &RindClient<Channel>, names: &[String], mut f: F) -> anyhow::Result<i32>
where
    F: FnMut(RindClient<Channel>, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut failed = false;
    for n in names {
        match f(c.clone(), n.clone()).await {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("rind: {}", errors::message(&e));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// docker's prompt before a prune: `warning`, then "[y/N]"; only y says yes.
pub fn confirm(warning: &str) -> bool {
    use std::io::{BufRead, Write};
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y")
}
