//! `ctl replace -f`: `PUT` each object whole.

use anyhow::Result;

use crate::{emit, manifests, report, GlobalArgs};

/// Flags of `replace`.
pub type Args = manifests::FileArgs;

/// Runs `replace`. Without a `resourceVersion` in the manifest the update is
/// unconditional; with one, a stale value fails with the server's Conflict.
///
/// # Errors
///
/// Unreadable manifests, or the objects that failed.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let objects = manifests::read(&args.files, args.recursive)?;
    let ctl = global.connect().await?;
    let mut failures = Vec::new();
    for object in &objects {
        if object.name.is_empty() {
            failures.push(anyhow::anyhow!(
                "{}: a {} without a name cannot be replaced",
                object.source,
                object.resource.singular
            ));
            continue;
        }
        let path = object.object_path(&ctl.namespace, true);
        match ctl.put(&path, &object.value).await {
            Ok(_) => emit(&format!("{} replaced\n", object.display_name())),
            Err(e @ crate::client::Error::Connect { .. }) => return Err(e.into()),
            Err(e) => failures.push(anyhow::Error::from(e).context(format!(
                "replacing {} from {}",
                object.display_name(),
                object.source
            ))),
        }
    }
    report(failures)
}
