//! `ctl version`: the client's version and the server's `/version`.

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{emit, GlobalArgs};

/// Flags of `version`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the client version (no server contact).
    #[arg(long)]
    pub client: bool,
}

/// The client's version string.
pub fn client_version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// Runs `version`.
///
/// # Errors
///
/// The server cannot be reached (the client version is printed first).
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    emit(&format!("Client Version: {}\n", client_version()));
    if args.client {
        return Ok(());
    }
    let ctl = global.connect().await?;
    let version = ctl
        .get("/version")
        .await
        .context("reading the server version")?;
    let git = version
        .get("gitVersion")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    emit(&format!("Server Version: {git}\n"));
    Ok(())
}
