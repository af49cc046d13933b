//! `ctl label` and `ctl annotate`: `KEY=VALUE` sets, `KEY-` removes, sent as
//! a merge patch of `metadata.labels` / `metadata.annotations`.

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use crate::resources;
use crate::{emit, report, GlobalArgs};

/// Flags of `label`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TYPE NAME KEY=VALUE... KEY-... (or TYPE/NAME KEY=VALUE...)
    #[arg(required = true, num_args = 2..)]
    pub args: Vec<String>,
    /// Allow changing a key that already has a value.
    #[arg(long)]
    pub overwrite: bool,
}

/// Flags of `annotate` (the same as `label`'s).
#[derive(Debug, clap::Args)]
pub struct AnnotateArgs {
    /// TYPE NAME KEY=VALUE... KEY-... (or TYPE/NAME KEY=VALUE...)
    #[arg(required = true, num_args = 2..)]
    pub args: Vec<String>,
    /// Allow changing a key that already has a value.
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs `label`.
///
/// # Errors
///
/// Bad arguments, a key that has a value without `--overwrite`, server errors.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    change(global, &args.args, args.overwrite, "labels", "labeled").await
}

/// Runs `annotate`.
///
/// # Errors
///
/// As [`run`].
pub async fn annotate(global: &GlobalArgs, args: AnnotateArgs) -> Result<()> {
    change(
        global,
        &args.args,
        args.overwrite,
        "annotations",
        "annotated",
    )
    .await
}

async fn change(
    global: &GlobalArgs,
    args: &[String],
    overwrite: bool,
    field: &str,
    verb: &str,
) -> Result<()> {
    let split = args
        .iter()
        .position(|a| a.contains('=') || (a.ends_with('-') && !a.contains('/')))
        .unwrap_or(args.len());
    let (targets, changes) = args.split_at(split);
    if changes.is_empty() {
        bail!("at least one {field} update is required (KEY=VALUE or KEY-)");
    }
    let mut set = Map::new();
    for change in changes {
        if let Some((key, value)) = change.split_once('=') {
            if key.is_empty() {
                bail!("invalid {field} update {change:?}");
            }
            set.insert(key.into(), Value::String(value.into()));
        } else if let Some(key) = change.strip_suffix('-') {
            set.insert(key.into(), Value::Null);
        } else {
            bail!("invalid {field} update {change:?}: expected KEY=VALUE or KEY-");
        }
    }
    let ctl = global.connect().await?;
    let mut failures = Vec::new();
    for selection in resources::parse(targets)? {
        if selection.names.is_empty() {
            bail!("a name is required (TYPE NAME or TYPE/NAME)");
        }
        for name in &selection.names {
            let path = resources::object_path(selection.resource, &ctl.namespace, name);
            let current = match ctl.get(&path).await {
                Ok(current) => current,
                Err(e) => {
                    failures.push(e.into());
                    continue;
                }
            };
            let existing = current.pointer(&format!("/metadata/{field}"));
            if !overwrite {
                if let Some((key, old)) = set.iter().find_map(|(k, v)| {
                    let old = existing.and_then(|e| e.get(k))?;
                    (!v.is_null() && old != v).then_some((k, old))
                }) {
                    failures.push(anyhow::anyhow!(
                        "'{key}' already has a value ({}), and --overwrite is false",
                        old.as_str().unwrap_or_default()
                    ));
                    continue;
                }
            }
            let patch = json!({"metadata": {field: Value::Object(set.clone())}});
            match ctl.merge_patch(&path, &patch).await {
                Ok(_) => emit(&format!(
                    "{} {verb}\n",
                    resources::display_name(selection.resource, name)
                )),
                Err(e) => failures.push(e.into()),
            }
        }
    }
    report(failures)
}
