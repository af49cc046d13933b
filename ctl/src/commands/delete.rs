//! `ctl delete`: by name, `-f`, `-l` or `--all`; one line per object
//! (`pod "x" deleted`), so deleting many shows progress.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::client::Ctl;
use crate::resources::{self, Selection};
use crate::{emit, manifests, report, GlobalArgs};

/// Flags of `delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TYPE [NAME...] or TYPE/NAME...
    pub resources: Vec<String>,
    /// Files, directories or `-` naming the objects to delete.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// With -l or --all: across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Treat "not found" as success.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// What happens to the objects' dependents (a replication controller's
    /// pods): `background` deletes them after the owner, `foreground`
    /// before it, `orphan` keeps them (`true` and `false` are the old
    /// spellings of background and orphan).
    #[arg(long, default_value = "background", value_parser = parse_cascade)]
    pub cascade: Cascade,
}

/// `--cascade`, as the apiserver's `propagationPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cascade {
    /// `Background`.
    Background,
    /// `Foreground`.
    Foreground,
    /// `Orphan`.
    Orphan,
}

impl Cascade {
    fn policy(self) -> &'static str {
        match self {
            Self::Background => "Background",
            Self::Foreground => "Foreground",
            Self::Orphan => "Orphan",
        }
    }
}

fn parse_cascade(text: &str) -> Result<Cascade, String> {
    match text {
        "background" | "true" => Ok(Cascade::Background),
        "foreground" => Ok(Cascade::Foreground),
        "orphan" | "false" => Ok(Cascade::Orphan),
        _ => Err("must be one of background, foreground, orphan".to_string()),
    }
}

/// Runs `delete`.
///
/// # Errors
///
/// Bad arguments, or the objects that could not be deleted.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let ctl = global.connect().await?;
    let mut targets: Vec<(&'static api_types::kinds::ResourceKind, String, String)> = Vec::new();
    if !args.files.is_empty() {
        for object in manifests::read(&args.files, args.recursive)? {
            let ns = object.namespace_or(&ctl.namespace).to_string();
            targets.push((object.resource, ns, object.name));
        }
    } else {
        let selections = resources::parse(&args.resources)?;
        for selection in &selections {
            targets.extend(expand(&ctl, &args, selection).await?);
        }
    }
    let mut failures = Vec::new();
    for (resource, namespace, name) in targets {
        let path = resources::with_query(
            &resources::object_path(resource, &namespace, &name),
            // Background is the server's default for every kind.
            &[(
                "propagationPolicy",
                (args.cascade != Cascade::Background).then(|| args.cascade.policy()),
            )],
        );
        match ctl.delete(&path).await {
            Ok(_) => emit(&format!("{} \"{name}\" deleted\n", resource.singular)),
            Err(crate::client::Error::Api(e)) if e.is_not_found() && args.ignore_not_found => {}
            Err(e @ crate::client::Error::Connect { .. }) => return Err(e.into()),
            Err(e) => failures.push(e.into()),
        }
    }
    report(failures)
}

async fn expand(
    ctl: &Ctl,
    args: &Args,
    selection: &Selection,
) -> Result<Vec<(&'static api_types::kinds::ResourceKind, String, String)>> {
    let resource = selection.resource;
    if !selection.names.is_empty() {
        if args.all || args.selector.is_some() {
            bail!("names cannot be given together with --all or -l");
        }
        return Ok(selection
            .names
            .iter()
            .map(|n| (resource, ctl.namespace.clone(), n.clone()))
            .collect());
    }
    if !args.all && args.selector.is_none() {
        bail!(
            "resource(s) were provided, but no name was specified (give names, -l SELECTOR or --all)"
        );
    }
    let namespace = (!args.all_namespaces).then_some(ctl.namespace.as_str());
    let path = resources::with_query(
        &resources::collection_path(resource, namespace),
        &[("labelSelector", args.selector.as_deref())],
    );
    let list = ctl
        .get(&path)
        .await
        .with_context(|| format!("listing {}", resource.plural))?;
    let text = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(list
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    let ns = text(i, "/metadata/namespace");
                    let ns = if ns.is_empty() {
                        ctl.namespace.clone()
                    } else {
                        ns
                    };
                    (resource, ns, text(i, "/metadata/name"))
                })
                .collect()
        })
        .unwrap_or_default())
}
