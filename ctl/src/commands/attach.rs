//! `ctl attach POD [-c C] [-i] [-t]`: the output (and with `-i` the
//! input) of a container's main process, through `pods/{name}/attach`
//! over WebSocket, as kubectl attaches.

use anyhow::{Context, Result};
use api_types::remotecommand::Options;

use crate::commands::exec::{interactive, pod_name, stream_path, target, unwrap_exit};
use crate::stream;
use crate::GlobalArgs;

/// Flags of `attach`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The container (default: the pod's default container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY (the container must have `tty: true`).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Print no notes, only the container's output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Runs `attach`.
///
/// # Errors
///
/// A missing pod or container, a finished pod, a broken stream.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let ctl = global.connect().await?;
    let name = pod_name(&args.pod);
    let (pod, container) = target(&ctl, name, args.container.as_deref(), args.quiet).await?;
    let mut tty = args.tty;
    if tty {
        // kubectl's checks: the container must have a terminal to share,
        // and ours must be one.
        let has_tty = ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .filter_map(|list| pod["spec"][list].as_array())
            .flatten()
            .find(|c| c["name"] == container.as_str())
            .is_some_and(|c| c["tty"].as_bool() == Some(true));
        if !has_tty {
            if !args.quiet {
                eprintln!("Unable to use a TTY - container {container} did not allocate one");
            }
            tty = false;
        } else if !(args.stdin && stream::stdin_is_terminal()) {
            if !args.quiet {
                eprintln!(
                    "Unable to use a TTY - input is not a terminal or the right kind of file"
                );
            }
            tty = false;
        }
    }
    if tty && !args.quiet {
        eprintln!("If you don't see a command prompt, try pressing enter.");
    }
    let options = Options {
        command: Vec::new(),
        container,
        stdin: args.stdin,
        stdout: true,
        stderr: !tty,
        tty,
    };
    let path = stream_path(&ctl.namespace, name, "attach", &options);
    interactive(&ctl, &path, args.stdin, tty)
        .await
        .with_context(|| format!("attach to pod {name}"))
        .map_err(unwrap_exit)
}
