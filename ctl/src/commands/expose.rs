//! `ctl expose rc|pod NAME --port=P`: a service selecting the same pods.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::resources;
use crate::{emit, GlobalArgs};

/// Flags of `expose`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TYPE NAME or TYPE/NAME (a replication controller, pod or service).
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// The service's port (default: the first container port).
    #[arg(long)]
    pub port: Option<u16>,
    /// The container port traffic goes to (default: --port).
    #[arg(long)]
    pub target_port: Option<String>,
    /// The service's name (default: the exposed object's).
    #[arg(long)]
    pub name: Option<String>,
    /// TCP or UDP.
    #[arg(long, default_value = "TCP")]
    pub protocol: String,
    /// ClusterIP (default) or NodePort.
    #[arg(long = "type")]
    pub service_type: Option<String>,
    /// External IPs (the 2014 `publicIPs`), comma-separated.
    #[arg(long)]
    pub external_ip: Option<String>,
    /// A label selector to use instead of the object's.
    #[arg(long)]
    pub selector: Option<String>,
}

/// Runs `expose`.
///
/// # Errors
///
/// An object without a selector or labels, no port to use, server errors.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let [selection] = resources::parse(&args.resources)?
        .try_into()
        .ok()
        .context("expose takes one object")?;
    let [name] = selection.names.as_slice() else {
        bail!("expose takes one name");
    };
    let ctl = global.connect().await?;
    let object = ctl
        .get(&resources::object_path(
            selection.resource,
            &ctl.namespace,
            name,
        ))
        .await?;
    let (selector, spec) = match selection.resource.kind {
        "ReplicationController" => (
            object.pointer("/spec/selector").cloned(),
            object.pointer("/spec/template/spec").cloned(),
        ),
        "Pod" => (
            object.pointer("/metadata/labels").cloned(),
            object.get("spec").cloned(),
        ),
        "Service" => (object.pointer("/spec/selector").cloned(), None),
        other => bail!("cannot expose a {other}"),
    };
    let selector = match &args.selector {
        Some(s) => Value::Object(crate::commands::run::parse_pairs(s, ",")?),
        None => selector
            .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
            .with_context(|| {
                format!(
                    "couldn't find a selector for {}; pass --selector",
                    resources::display_name(selection.resource, name)
                )
            })?,
    };
    let first_port = spec
        .as_ref()
        .and_then(|s| s.pointer("/containers/0/ports/0/containerPort"))
        .and_then(Value::as_u64);
    let port = match (args.port, first_port) {
        (Some(p), _) => u64::from(p),
        (None, Some(p)) => p,
        (None, None) => bail!("couldn't find a port to expose: pass --port"),
    };
    let target: Value = match &args.target_port {
        Some(t) => t
            .parse::<u64>()
            .map_or_else(|_| Value::String(t.clone()), Value::from),
        None => Value::from(port),
    };
    let service_name = args.name.clone().unwrap_or_else(|| name.clone());
    let mut service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service_name},
        "spec": {
            "selector": selector,
            "ports": [{"port": port, "targetPort": target, "protocol": args.protocol}]
        }
    });
    if let Some(labels) = object.pointer("/metadata/labels") {
        service["metadata"]["labels"] = labels.clone();
    }
    if let Some(t) = &args.service_type {
        service["spec"]["type"] = Value::String(t.clone());
    }
    if let Some(ips) = &args.external_ip {
        service["spec"]["externalIPs"] = json!(ips.split(',').collect::<Vec<_>>());
    }
    ctl.post(
        &resources::collection_path(&api_types::kinds::SERVICES, Some(&ctl.namespace)),
        &service,
    )
    .await?;
    emit(&format!("service/{service_name} exposed\n"));
    Ok(())
}
