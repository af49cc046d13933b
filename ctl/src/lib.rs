//! The `ctl` command line: one module per verb under [`commands`], and the
//! shared pieces they use: [`client`] (kubeconfig, flags, requests,
//! errors), [`resources`] (names and paths), [`manifests`] (`-f`) and
//! [`printers`] (`-o`).
//!
//! Shared modules return `thiserror` errors; the verbs add context with
//! `anyhow` and `main` prints one line per failure.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod commands;
pub mod manifests;
pub mod pki;
pub mod printers;
pub mod resources;
pub mod stream;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands as cmd;

/// `ctl`: drive a mini-k8s cluster the way kubectl drives Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "ctl", version, about, propagate_version = true)]
pub struct Cli {
    /// Connection flags every verb takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb takes, as kubectl spells them.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The address of the apiserver (overrides the kubeconfig).
    #[arg(short = 's', long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for authentication (overrides the kubeconfig).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// The namespace (overrides the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

impl GlobalArgs {
    /// A client for these flags.
    ///
    /// # Errors
    ///
    /// See [`client::Ctl::connect`].
    pub async fn connect(&self) -> Result<client::Ctl, client::Error> {
        client::Ctl::connect(&client::ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            server: self.server.clone(),
            token: self.token.clone(),
            namespace: self.namespace.clone(),
        })
        .await
    }
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Display one or many resources.
    Get(cmd::get::Args),
    /// Show details of a resource, with its events.
    Describe(cmd::describe::Args),
    /// Create resources from files or stdin.
    Create(cmd::create::Args),
    /// Apply a configuration to resources (three-way merge).
    Apply(cmd::apply::Args),
    /// Replace resources from files or stdin.
    Replace(cmd::replace::Args),
    /// Delete resources by name, file, label selector or all.
    Delete(cmd::delete::Args),
    /// Edit a resource in $EDITOR and apply the result on save.
    Edit(cmd::edit::Args),
    /// Set a new size for a replication controller.
    #[command(visible_alias = "resize")]
    Scale(cmd::scale::Args),
    /// Print a container's log (through the kubelet of the pod's node).
    Logs(cmd::logs::Args),
    /// Execute a command in a container.
    Exec(cmd::exec::Args),
    /// Attach to a process that is already running inside a container.
    Attach(cmd::attach::Args),
    /// Forward one or more local ports to a pod.
    PortForward(cmd::port_forward::Args),
    /// Copy files and directories to and from containers.
    Cp(cmd::cp::Args),
    /// Replace a replication controller's pods with a new controller's, one at a time.
    RollingUpdate(cmd::rolling_update::Args),
    /// Run an image: a replication controller, or a pod with --restart=Never.
    Run(cmd::run::Args),
    /// Expose a replication controller or pod as a new service.
    Expose(cmd::expose::Args),
    /// Update the labels on resources.
    Label(cmd::label::Args),
    /// Update the annotations on resources.
    Annotate(cmd::label::AnnotateArgs),
    /// Print the resource types the server serves.
    ApiResources(cmd::api_resources::Args),
    /// Describe a kind or field from the server's OpenAPI schema.
    Explain(cmd::explain::Args),
    /// Print the client and server versions.
    Version(cmd::version::Args),
    /// Display the address of the control plane.
    ClusterInfo,
    /// Modify kubeconfig files.
    Config(cmd::config::Args),
    /// Output a shell completion script (bash or zsh).
    Completion(cmd::completion::Args),
    /// Certificates of a local cluster's identities (not a kubectl verb).
    #[command(hide = true)]
    Certs(cmd::certs::Args),
}

/// An error already printed to stderr (several objects failed): `main`
/// only sets the exit code.
#[derive(Debug, thiserror::Error)]
#[error("{0} of the requested operations failed")]
pub struct Reported(pub usize);

/// A remote command's non-zero exit code, which `main` makes its own.
#[derive(Debug, thiserror::Error)]
#[error("command terminated with exit code {0}")]
pub struct ExitCode(pub i32);

/// Runs the verb.
///
/// # Errors
///
/// Whatever the verb failed with; [`Reported`] when it already printed the
/// failures.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Get(args) => cmd::get::run(g, args).await,
        Command::Describe(args) => cmd::describe::run(g, args).await,
        Command::Create(args) => cmd::create::run(g, args).await,
        Command::Apply(args) => cmd::apply::run(g, args).await,
        Command::Replace(args) => cmd::replace::run(g, args).await,
        Command::Delete(args) => cmd::delete::run(g, args).await,
        Command::Edit(args) => cmd::edit::run(g, args).await,
        Command::Scale(args) => cmd::scale::run(g, args).await,
        Command::Logs(args) => cmd::logs::run(g, args).await,
        Command::Exec(args) => cmd::exec::run(g, args).await,
        Command::Attach(args) => cmd::attach::run(g, args).await,
        Command::PortForward(args) => cmd::port_forward::run(g, args).await,
        Command::Cp(args) => cmd::cp::run(g, args).await,
        Command::RollingUpdate(args) => cmd::rolling_update::run(g, args).await,
        Command::Run(args) => cmd::run::run(g, args).await,
        Command::Expose(args) => cmd::expose::run(g, args).await,
        Command::Label(args) => cmd::label::run(g, args).await,
        Command::Annotate(args) => cmd::label::annotate(g, args).await,
        Command::ApiResources(args) => cmd::api_resources::run(g, args).await,
        Command::Explain(args) => cmd::explain::run(g, args).await,
        Command::Version(args) => cmd::version::run(g, args).await,
        Command::ClusterInfo => cmd::cluster_info::run(g).await,
        Command::Config(args) => cmd::config::run(g, args),
        Command::Completion(args) => cmd::completion::run(&args),
        Command::Certs(args) => cmd::certs::run(args),
    }
}

/// Writes `text` to stdout and flushes (a closed pipe is not an error).
pub fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Prints each failure as `error: ...` on stderr and returns [`Reported`]
/// when there was any; the single failure itself when there was one.
///
/// # Errors
///
/// As described.
pub fn report(mut failures: Vec<anyhow::Error>) -> anyhow::Result<()> {
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        n => {
            for failure in &failures {
                eprintln!("error: {}", format!("{failure:#}").replace('\n', " "));
            }
            Err(Reported(n).into())
        }
    }
}
