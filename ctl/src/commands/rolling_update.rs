//! `ctl rolling-update OLD [NEW] --image=IMAGE | -f NEW.yaml`: the 2014
//! verb. A new replication controller is created at 0 replicas, then
//! scaled up one pod at a time while the old one is scaled down, waiting
//! `--update-period` between steps; the old controller is deleted at the
//! end.
//!
//! After each step it waits (up to `--timeout`, polling every
//! `--poll-interval`) for the controller's `status.replicas` to reach its
//! new size, which the replication manager reports. `--timeout=0s` skips
//! that wait (for clusters without a replication manager).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::client::Ctl;
use crate::resources;
use crate::{emit, manifests, GlobalArgs};

/// A flag's Go duration (`1m0s`), refused with the flag's text.
fn go_duration(text: &str) -> Result<Duration> {
    client_util::go_duration(text).map_err(anyhow::Error::msg)
}

/// Flags of `rolling-update`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The controller to replace.
    pub old: String,
    /// The new controller's name (with --image; default `OLD-<n>`).
    pub new: Option<String>,
    /// The new image (the old template otherwise unchanged).
    #[arg(long)]
    pub image: Option<String>,
    /// A manifest of the new controller.
    #[arg(short = 'f', long = "filename")]
    pub file: Option<String>,
    /// Time to wait between two steps (`1m0s`, `500ms`).
    #[arg(long, default_value = "1m0s")]
    pub update_period: String,
    /// How often to check a step's progress.
    #[arg(long, default_value = "3s")]
    pub poll_interval: String,
    /// How long to wait for one step's pods (`0s`: don't wait).
    #[arg(long, default_value = "5m0s")]
    pub timeout: String,
}

fn count(rc: &Value, pointer: &str) -> i64 {
    rc.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Runs `rolling-update`.
///
/// # Errors
///
/// Bad flags, a new controller whose selector the old one also matches, a
/// step that did not finish within `--timeout`, server errors.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let update_period = go_duration(&args.update_period)?;
    let poll = go_duration(&args.poll_interval)?;
    let timeout = go_duration(&args.timeout)?;
    let ctl = global.connect().await?;
    let rcs = &api_types::kinds::REPLICATION_CONTROLLERS;
    let old_path = resources::object_path(rcs, &ctl.namespace, &args.old);
    let old = ctl
        .get(&old_path)
        .await
        .context("reading the old controller")?;
    let desired = count(&old, "/spec/replicas");
    let mut new = match (&args.file, &args.image) {
        (Some(file), None) => {
            let [manifest] = manifests::read(std::slice::from_ref(file), false)?
                .try_into()
                .ok()
                .context("the file must hold exactly one replication controller")?;
            let manifest: manifests::Manifest = manifest;
            if manifest.resource.kind != "ReplicationController" {
                bail!(
                    "{} holds a {}, not a replication controller",
                    file,
                    manifest.resource.kind
                );
            }
            if manifest.v1beta1 {
                manifests::to_v1(&manifest)?
            } else {
                manifest.value
            }
        }
        (None, Some(image)) => from_image(&ctl, &old, &args, image).await?,
        _ => bail!("give exactly one of --image or -f"),
    };
    let new_name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if new_name == args.old {
        bail!(
            "the new controller must have a name other than {:?}",
            args.old
        );
    }
    let old_selector = old.pointer("/spec/selector").cloned().unwrap_or_default();
    let new_selector = new.pointer("/spec/selector").cloned().unwrap_or_default();
    if old_selector == new_selector {
        bail!("the new controller's selector must differ from the old one's ({old_selector})");
    }
    let target = match new.pointer("/spec/replicas").and_then(Value::as_i64) {
        Some(n) if args.file.is_some() && n > 0 => n,
        _ => desired,
    };
    new["spec"]["replicas"] = json!(0);
    new["metadata"]["annotations"]["kubectl.kubernetes.io/desired-replicas"] =
        Value::String(target.to_string());
    let new_path = resources::object_path(rcs, &ctl.namespace, &new_name);
    ctl.post(&resources::collection_path(rcs, Some(&ctl.namespace)), &new)
        .await
        .context("creating the new controller")?;
    emit(&format!("Created {new_name}\n"));
    let mut up = 0;
    let mut down = desired;
    while up < target || down > 0 {
        if up < target {
            up += 1;
            emit(&format!("Scaling {new_name} up to {up}\n"));
            scale(&ctl, &new_path, up, poll, timeout).await?;
        }
        if down > 0 {
            down -= 1;
            emit(&format!("Scaling {} down to {down}\n", args.old));
            scale(&ctl, &old_path, down, poll, timeout).await?;
        }
        if up < target || down > 0 {
            tokio::time::sleep(update_period).await;
        }
    }
    emit(&format!("Update succeeded. Deleting {}\n", args.old));
    ctl.delete(&old_path)
        .await
        .context("deleting the old controller")?;
    emit(&format!(
        "replicationcontroller/{} rolling updated to \"{new_name}\"\n",
        args.old
    ));
    Ok(())
}

/// The new controller for `--image`: the old one's template with the new
/// image and a `deployment` label telling the two apart. The old
/// controller's pods and selector get `deployment=OLD` first, so its
/// replication manager never counts the new pods.
async fn from_image(ctl: &Ctl, old: &Value, args: &Args, image: &str) -> Result<Value> {
    let new_name = args.new.clone().unwrap_or_else(|| {
        let version = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("1");
        format!("{}-{version}", args.old)
    });
    let rcs = &api_types::kinds::REPLICATION_CONTROLLERS;
    if old.pointer("/spec/selector/deployment").is_none() {
        let selector = crate::printers::label_selector(old.pointer("/spec/selector"));
        let pods_path = resources::with_query(
            &resources::collection_path(&api_types::kinds::PODS, Some(&ctl.namespace)),
            &[("labelSelector", Some(&selector))],
        );
        let pods = ctl.get(&pods_path).await?;
        for pod in pods
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = pod.pointer("/metadata/name").and_then(Value::as_str) {
                ctl.merge_patch(
                    &resources::object_path(&api_types::kinds::PODS, &ctl.namespace, name),
                    &json!({"metadata": {"labels": {"deployment": args.old}}}),
                )
                .await?;
            }
        }
        ctl.merge_patch(
            &resources::object_path(rcs, &ctl.namespace, &args.old),
            &json!({"spec": {
                "selector": {"deployment": args.old},
                "template": {"metadata": {"labels": {"deployment": args.old}}}
            }}),
        )
        .await
        .context("labelling the old controller")?;
    }
    let mut new = json!({
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": new_name, "labels": old.pointer("/metadata/labels").cloned().unwrap_or(json!({}))},
        "spec": old.get("spec").cloned().unwrap_or_default(),
    });
    new["spec"]["selector"]["deployment"] = Value::String(new_name.clone());
    new["spec"]["template"]["metadata"]["labels"]["deployment"] = Value::String(new_name.clone());
    let containers = new
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
        .context("the old controller has no containers")?;
    for container in containers.iter_mut() {
        container["image"] = Value::String(image.into());
    }
    Ok(new)
}

async fn scale(
    ctl: &Ctl,
    path: &str,
    replicas: i64,
    poll: Duration,
    timeout: Duration,
) -> Result<()> {
    ctl.merge_patch(
        &format!("{path}/scale"),
        &json!({"spec": {"replicas": replicas}}),
    )
    .await
    .with_context(|| format!("scaling {path}"))?;
    if timeout.is_zero() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let rc = ctl.get(path).await?;
        if count(&rc, "/status/replicas") == replicas {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {path} to reach {replicas} replicas");
        }
        tokio::time::sleep(poll).await;
    }
}
