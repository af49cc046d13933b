//! `ctl create -f`: `POST` each object; 2014 manifests go to `/api/v1beta1`.

use anyhow::{Context, Result};

use crate::{emit, manifests, report, GlobalArgs};

/// Flags of `create`.
pub type Args = manifests::FileArgs;

/// Runs `create`: every object is tried; each failure is reported.
///
/// # Errors
///
/// Unreadable manifests (nothing is sent then), or the objects that failed.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
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
