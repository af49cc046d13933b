//! `ctl create -f`: `POST` each object; 2014 manifests go to `/api/v1beta1`.
//! `ctl create configmap|secret`: see [`super::create_data`].

use anyhow::{Context, Result};

use super::create_data;
use crate::{emit, manifests, report, GlobalArgs};

/// Flags of `create`: files, or a kind built from flags.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    /// The objects to create.
    #[command(flatten)]
    pub files: manifests::FileArgs,
    /// A kind to build from flags instead.
    #[command(subcommand)]
    pub kind: Option<Kind>,
}

/// Kinds `create` builds from flags.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Kind {
    /// Create a ConfigMap from literals, files and env files.
    #[command(visible_alias = "cm")]
    Configmap(create_data::Sources),
    /// Create a Secret.
    Secret {
        /// The kind of secret.
        #[command(subcommand)]
        kind: create_data::SecretKind,
    },
}

/// Runs `create`: every object is tried; each failure is reported.
///
/// # Errors
///
/// Unreadable manifests (nothing is sent then), or the objects that failed.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    match args.kind {
        Some(Kind::Configmap(sources)) => return create_data::configmap(global, sources).await,
        Some(Kind::Secret { kind }) => return create_data::secret_generic(global, kind).await,
        None => {}
    }
    let args = args.files;
    let objects = manifests::read(&args.files, args.recursive)?;
    let ctl = global.connect().await?;
    let mut failures = Vec::new();
    for object in &objects {
        let path = object.collection_path(&ctl.namespace);
        match ctl.post(&path, &object.value).await {
            Ok(created) => {
                let name = created
                    .pointer("/metadata/name")
                    .or_else(|| created.get("id"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or(&object.name);
                emit(&format!(
                    "{} created\n",
                    crate::resources::display_name(object.resource, name)
                ));
            }
            Err(e @ crate::client::Error::Connect { .. }) => return Err(e.into()),
            Err(e) => failures.push(anyhow::Error::from(e).context(format!(
                "creating {} from {}",
                object.display_name(),
                object.source
            ))),
        }
    }
    report(failures).context("create")
}
