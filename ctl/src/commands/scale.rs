//! `ctl scale` (alias `resize`): set `spec.replicas` through the `scale`
//! subresource.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::resources;
use crate::{emit, report, GlobalArgs};

/// Flags of `scale`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TYPE NAME or TYPE/NAME (replication controllers).
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// The new number of replicas.
    #[arg(long)]
    pub replicas: u32,
    /// Only scale if the current size is this (a precondition).
    #[arg(long)]
    pub current_replicas: Option<u32>,
}

/// Runs `scale`.
///
/// # Errors
///
/// A kind without a scale subresource, a failed precondition, server errors.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let ctl = global.connect().await?;
    let mut failures = Vec::new();
    for selection in resources::parse(&args.resources)? {
        if !selection.resource.subresources.contains(&"scale") {
            bail!("{} cannot be scaled", selection.resource.plural);
        }
        if selection.names.is_empty() {
            bail!("a name is required (TYPE NAME or TYPE/NAME)");
        }
        for name in &selection.names {
            let path = format!(
                "{}/scale",
                resources::object_path(selection.resource, &ctl.namespace, name)
            );
            if let Some(expected) = args.current_replicas {
                match ctl.get(&path).await {
                    Ok(scale) => {
                        let current = scale.pointer("/spec/replicas").and_then(Value::as_u64);
                        if current != Some(u64::from(expected)) {
                            failures.push(anyhow::anyhow!(
                                "expected replicas to be {expected}, was {}",
                                current.unwrap_or_default()
                            ));
                            continue;
                        }
                    }
                    Err(e) => {
                        failures.push(e.into());
                        continue;
                    }
                }
            }
            match ctl
                .merge_patch(&path, &json!({"spec": {"replicas": args.replicas}}))
                .await
            {
                Ok(_) => emit(&format!(
                    "{} scaled\n",
                    resources::display_name(selection.resource, name)
                )),
                Err(e) => failures.push(e.into()),
            }
        }
    }
    report(failures)
}
