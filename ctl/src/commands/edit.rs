//! `ctl edit TYPE NAME`: the object as YAML in `$KUBE_EDITOR`/`$EDITOR`
//! (default `vi`); saved changes are sent as an update. A rejected edit
//! reopens the editor with the error at the top; saving it unchanged gives
//! up.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::resources;
use crate::{emit, GlobalArgs};

/// Flags of `edit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TYPE NAME or TYPE/NAME.
    #[arg(required = true)]
    pub resources: Vec<String>,
}

/// Runs `edit`.
///
/// # Errors
///
/// The editor failed, the edit was rejected and then left unchanged, or the
/// object could not be read.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let [selection] = resources::parse(&args.resources)?
        .try_into()
        .ok()
        .context("edit takes one object")?;
    let [name] = selection.names.as_slice() else {
        bail!("edit takes one name");
    };
    let ctl = global.connect().await?;
    let path = resources::object_path(selection.resource, &ctl.namespace, name);
    let object = ctl.get(&path).await?;
    let object = crate::printers::with_type(selection.resource, object);
    let original = crate::printers::to_yaml(&object);
    let header = "# Please edit the object below. Lines beginning with a '#' will be ignored,\n# and an empty file will abort the edit. If an error occurs while saving this file will be\n# reopened with the relevant failures.\n#\n";
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let file = dir
        .path()
        .join(format!("{}-{name}.yaml", selection.resource.singular));
    let mut shown = format!("{header}{original}");
    let mut last_attempt: Option<String> = None;
    loop {
        std::fs::write(&file, &shown).with_context(|| format!("writing {}", file.display()))?;
        open_editor(&file).await?;
        let edited = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let body: String = edited
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        if body.trim().is_empty() {
            bail!("edit cancelled, the file was emptied");
        }
        if body == original {
            eprintln!("Edit cancelled, no changes made.");
            return Ok(());
        }
        if last_attempt.as_deref() == Some(body.as_str()) {
            bail!("edit cancelled: the rejected edit was saved again unchanged");
        }
        last_attempt = Some(body.clone());
        let result = match api_types::yaml::from_str::<Value>(&body) {
            Ok(value) => ctl.put(&path, &value).await.map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::anyhow!("the edited file is not valid YAML: {e}")),
        };
        match result {
            Ok(_) => {
                emit(&format!(
                    "{} edited\n",
                    resources::display_name(selection.resource, name)
                ));
                return Ok(());
            }
            Err(e) => {
                let message = format!("{e:#}").replace('\n', " ");
                eprintln!("error: {message}");
                shown = format!("{header}# The edit was rejected:\n# {message}\n#\n{body}");
            }
        }
    }
}

async fn open_editor(file: &std::path::Path) -> Result<()> {
    let editor = std::env::var("KUBE_EDITOR")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("ctl-edit")
        .arg(file)
        .status()
        .await
        .with_context(|| format!("starting the editor {editor:?}"))?;
    if !status.success() {
        bail!("the editor {editor:?} exited with {status}");
    }
    Ok(())
}
