//! `ctl run NAME --image=IMAGE`: a replication controller (label
//! `run=NAME`), or a bare pod with `--restart=Never`.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::resources;
use crate::{emit, GlobalArgs};

/// Flags of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the controller or pod.
    pub name: String,
    /// The container image.
    #[arg(long, required = true)]
    pub image: String,
    /// Replicas of the controller.
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    /// The container port to expose.
    #[arg(long)]
    pub port: Option<u16>,
    /// Labels, `k=v,k2=v2` (default `run=NAME`).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// `Always` makes a replication controller; `Never` or `OnFailure` a pod.
    #[arg(long, default_value = "Always")]
    pub restart: String,
    /// Environment variables, `K=V` (repeatable).
    #[arg(long)]
    pub env: Vec<String>,
    /// Print the object instead of creating it (`-o json|yaml`).
    #[arg(long)]
    pub dry_run: bool,
    /// Output format for --dry-run.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Runs `run`.
///
/// # Errors
///
/// Malformed labels or env, server errors (duplicate name, invalid image).
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let labels = parse_pairs(args.labels.as_deref().unwrap_or(""), ",")?;
    let labels = if labels.is_empty() {
        let mut m = Map::new();
        m.insert("run".into(), Value::String(args.name.clone()));
        m
    } else {
        labels
    };
    let mut container = json!({"name": args.name, "image": args.image});
    if let Some(port) = args.port {
        container["ports"] = json!([{"containerPort": port}]);
    }
    if !args.env.is_empty() {
        let env: Result<Vec<Value>> = args
            .env
            .iter()
            .map(|e| {
                let (k, v) = e
                    .split_once('=')
                    .with_context(|| format!("invalid --env {e:?}: expected K=V"))?;
                Ok(json!({"name": k, "value": v}))
            })
            .collect();
        container["env"] = Value::Array(env?);
    }
    if !args.command.is_empty() {
        container["command"] = json!(args.command);
    }
    let (resource, object) = match args.restart.as_str() {
        "Always" => (
            &api_types::kinds::REPLICATION_CONTROLLERS,
            json!({
                "apiVersion": "v1", "kind": "ReplicationController",
                "metadata": {"name": args.name, "labels": labels},
                "spec": {
                    "replicas": args.replicas,
                    "selector": labels,
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}
                }
            }),
        ),
        "Never" | "OnFailure" => (
            &api_types::kinds::PODS,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": args.name, "labels": labels},
                "spec": {"restartPolicy": args.restart, "containers": [container]}
            }),
        ),
        other => bail!("invalid --restart {other:?}: use Always, OnFailure or Never"),
    };
    if args.dry_run {
        emit(&match args.output.as_deref() {
            Some("json") => crate::printers::to_json(&object),
            _ => crate::printers::to_yaml(&object),
        });
        return Ok(());
    }
    let ctl = global.connect().await?;
    ctl.post(
        &resources::collection_path(resource, Some(&ctl.namespace)),
        &object,
    )
    .await?;
    emit(&format!(
        "{} created\n",
        resources::display_name(resource, &args.name)
    ));
    Ok(())
}

/// `k=v` pairs separated by `separator`.
///
/// # Errors
///
/// A pair without `=`.
pub fn parse_pairs(text: &str, separator: &str) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for pair in text.split(separator).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("invalid label {pair:?}: expected KEY=VALUE"))?;
        map.insert(k.trim().into(), Value::String(v.trim().into()));
    }
    Ok(map)
}
