//! `ctl api-resources`: the server's discovery of `/api/v1`, as a table.

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{emit, printers, GlobalArgs};

/// Flags of `api-resources`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only print names (`-o name`).
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Leave the header row out.
    #[arg(long)]
    pub no_headers: bool,
}

/// Runs `api-resources`.
///
/// # Errors
///
/// The server cannot be reached or its discovery is malformed.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let ctl = global.connect().await?;
    let discovery = ctl.get("/api/v1").await.context("reading discovery")?;
    let version = discovery
        .get("groupVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1")
        .to_string();
    let mut rows = Vec::new();
    if !args.no_headers && args.output.as_deref() != Some("name") {
        rows.push(
            ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
                .map(String::from)
                .to_vec(),
        );
    }
    let mut resources: Vec<&Value> = discovery
        .get("resources")
        .and_then(Value::as_array)
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    resources.retain(|r| {
        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        let namespaced = r
            .get("namespaced")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        !name.contains('/') && args.namespaced.is_none_or(|n| n == namespaced)
    });
    resources.sort_by_key(|r| {
        r.get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    });
    for r in resources {
        let text = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        if args.output.as_deref() == Some("name") {
            emit(&format!("{}\n", text("name")));
            continue;
        }
        let short: Vec<&str> = r
            .get("shortNames")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let namespaced = r
            .get("namespaced")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        rows.push(vec![
            text("name"),
            short.join(","),
            version.clone(),
            namespaced.to_string(),
            text("kind"),
        ]);
    }
    if args.output.as_deref() != Some("name") {
        emit(&printers::render(&rows));
    }
    Ok(())
}
