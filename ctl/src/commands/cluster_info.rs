//! `ctl cluster-info`: where the control plane is, after checking it
//! answers.

use anyhow::{Context, Result};

use crate::{emit, GlobalArgs};

/// Runs `cluster-info`.
///
/// # Errors
///
/// The server cannot be reached.
pub async fn run(global: &GlobalArgs) -> Result<()> {
    let ctl = global.connect().await?;
    ctl.get("/version")
        .await
        .context("checking the control plane")?;
    emit(&format!(
        "Kubernetes control plane is running at {}\n",
        ctl.server
    ));
    let services = ctl
        .get("/api/v1/namespaces/kube-system/services?labelSelector=kubernetes.io%2Fcluster-service%3Dtrue")
        .await
        .unwrap_or_default();
    for service in services
        .get("items")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = service.pointer("/metadata/name").and_then(|v| v.as_str()) {
            emit(&format!(
                "{name} is running at {}/api/v1/namespaces/kube-system/services/{name}/proxy\n",
                ctl.server
            ));
        }
    }
    emit("\nTo further debug and diagnose cluster problems, use 'ctl get nodes' and 'ctl describe'.\n");
    Ok(())
}
