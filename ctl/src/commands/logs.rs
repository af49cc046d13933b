//! `ctl logs`: a container's log, through the apiserver's `pods/{name}/log`
//! (which asks the kubelet of the pod's node).

use std::io::Write;

use anyhow::Result;
use futures::StreamExt;

use crate::GlobalArgs;

/// Flags of `logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The container; required when the pod has more than one.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new lines.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,
    /// The log of the previous (dead) instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
}

/// Runs `logs`.
///
/// # Errors
///
/// A pod or container that does not exist, a pod not on a node yet, an
/// unreachable kubelet (all as the server says them).
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let ctl = global.connect().await?;
    let name = args
        .pod
        .strip_prefix("pod/")
        .or_else(|| args.pod.strip_prefix("pods/"))
        .unwrap_or(&args.pod);
    let mut query = Vec::new();
    if let Some(container) = &args.container {
        query.push(format!("container={}", crate::client::encode(container)));
    }
    if let Some(tail) = args.tail.filter(|t| *t >= 0) {
        query.push(format!("tailLines={tail}"));
    }
    if args.follow {
        query.push("follow=true".into());
    }
    if args.previous {
        query.push("previous=true".into());
    }
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/log{}{}",
        crate::client::encode(&ctl.namespace),
        crate::client::encode(name),
        if query.is_empty() { "" } else { "?" },
        query.join("&")
    );
    let mut chunks = ctl.stream_text(&path).await?;
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = chunks.next().await {
        stdout.write_all(&chunk?)?;
        stdout.flush()?;
    }
    Ok(())
}
