//! `ctl exec POD [-c C] [-i] [-t] -- COMMAND...`: runs a command in a
//! container through `pods/{name}/exec` over WebSocket; its exit code
//! becomes ours (`command terminated with exit code N`), as with kubectl.

use anyhow::{bail, Context, Result};
use api_types::remotecommand::{Options, Outcome};
use serde_json::Value;

use crate::client::{encode, Ctl};
use crate::stream;
use crate::GlobalArgs;

/// Flags of `exec`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// The container (default: the pod's `kubectl.kubernetes.io/default-container`, else its first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Give the command a terminal (stdin must be one).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Print no "Defaulted container" note.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// The pod's name from `NAME`, `pod/NAME` or `pods/NAME`.
pub fn pod_name(arg: &str) -> &str {
    arg.strip_prefix("pod/")
        .or_else(|| arg.strip_prefix("pods/"))
        .unwrap_or(arg)
}

/// The pod and the container a streaming verb works on: `container` if it
/// is one of the pod's, else the pod's default one (its
/// `kubectl.kubernetes.io/default-container` annotation, else the first,
/// with kubectl's note on stderr when there was a choice). A pod that has
/// finished is refused, as kubectl does.
///
/// # Errors
///
/// A missing pod (as the server says), a finished pod, an unknown container.
pub async fn target(
    ctl: &Ctl,
    name: &str,
    container: Option<&str>,
    quiet: bool,
) -> Result<(Value, String)> {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}",
        encode(&ctl.namespace),
        encode(name)
    );
    let pod = ctl.get(&path).await?;
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        bail!("cannot exec into a container in a completed pod; current phase is {phase}");
    }
    let names: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let init_or_ephemeral = |c: &str| {
        ["initContainers", "ephemeralContainers"]
            .iter()
            .any(|list| {
                pod["spec"][list]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x["name"] == c))
            })
    };
    let chosen = match container {
        Some(c) if names.iter().any(|n| n == c) || init_or_ephemeral(c) => c.to_string(),
        Some(c) => bail!("container {c} not found in pod {name}"),
        None => {
            let annotated = pod["metadata"]["annotations"]
                ["kubectl.kubernetes.io/default-container"]
                .as_str()
                .filter(|a| names.iter().any(|n| n == a));
            let Some(first) = annotated.or_else(|| names.first().map(String::as_str)) else {
                bail!("pod {name} has no containers");
            };
            if names.len() > 1 && annotated.is_none() && !quiet {
                eprintln!("Defaulted container {first:?} out of: {}", names.join(", "));
            }
            first.to_string()
        }
    };
    Ok((pod, chosen))
}

/// The WebSocket path of `pods/{name}/{verb}` (`exec`, `attach`) for `options`.
pub fn stream_path(namespace: &str, name: &str, verb: &str, options: &Options) -> String {
    let query: Vec<String> = options
        .to_pairs()
        .into_iter()
        .map(|(key, value)| format!("{key}={}", encode(&value)))
        .collect();
    format!(
        "/api/v1/namespaces/{}/pods/{}/{verb}?{}",
        encode(namespace),
        encode(name),
        query.join("&")
    )
}

/// Runs a session on the terminal: stdin if asked, raw mode and sizes with
/// a TTY, our stdout and stderr; then its outcome as our exit.
///
/// # Errors
///
/// The connection failing, the stream failing (the server's message), or
/// [`crate::ExitCode`] for a command that exited non-zero.
pub async fn interactive(ctl: &Ctl, path: &str, stdin: bool, tty: bool) -> Result<()> {
    let connection = ctl.connect_ws(path).await?;
    // Raw mode from here on; the guard restores the terminal on every way
    // out of this function.
    let _raw = if tty {
        stream::RawTerminal::enter()
    } else {
        None
    };
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let io = stream::Io {
        stdin: stdin.then(stream::stdin_chunks),
        resize: tty.then(stream::terminal_sizes),
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    let outcome = stream::run(connection, io).await?;
    drop(_raw);
    match outcome {
        Outcome::Exited(0) => Ok(()),
        Outcome::Exited(code) => Err(crate::ExitCode(code).into()),
        Outcome::Failed(message) => bail!("{message}"),
    }
}

/// Runs `exec`.
///
/// # Errors
///
/// See [`target`] and [`interactive`].
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let ctl = global.connect().await?;
    let name = pod_name(&args.pod);
    let (_, container) = target(&ctl, name, args.container.as_deref(), args.quiet).await?;
    let mut tty = args.tty;
    if tty && !(args.stdin && stream::stdin_is_terminal()) {
        if !args.quiet {
            eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        }
        tty = false;
    }
    let options = Options {
        command: args.command,
        container,
        stdin: args.stdin,
        stdout: true,
        stderr: !tty,
        tty,
    };
    let path = stream_path(&ctl.namespace, name, "exec", &options);
    interactive(&ctl, &path, args.stdin, tty)
        .await
        .with_context(|| format!("exec in pod {name}"))
        .map_err(unwrap_exit)
}

/// An [`crate::ExitCode`] under context, bare again (main matches on it).
pub fn unwrap_exit(error: anyhow::Error) -> anyhow::Error {
    match error.downcast_ref::<crate::ExitCode>() {
        Some(code) => crate::ExitCode(code.0).into(),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_carries_each_argument_encoded_in_order() {
        let options = Options {
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            container: "c".into(),
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        assert_eq!(
            stream_path("ns", "p", "exec", &options),
            "/api/v1/namespaces/ns/pods/p/exec?command=sh&command=-c&command=exit%203&container=c&stdin=true&stdout=true&stderr=true&tty=false"
        );
    }
}
