//! `ctl apply -f`: create, or three-way merge against the configuration
//! last applied (kept in the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation, as kubectl keeps it, so both tools can take turns), or with
//! `--server-side` a server-side apply (`application/apply-patch+yaml`,
//! the server merging and tracking field owners).

use anyhow::{Context, Result};
use api_types::patch::create_three_way_merge_patch;
use serde_json::{json, Value};

use crate::manifests::Manifest;
use crate::{emit, manifests, report, GlobalArgs};

/// The annotation holding the last applied configuration.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Flags of `apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The manifests (`-f`, `-R`).
    #[command(flatten)]
    pub files: manifests::FileArgs,
    /// Apply on the server (server-side apply) instead of a three-way merge
    /// patch computed here.
    #[arg(long)]
    pub server_side: bool,
    /// With `--server-side`: take the fields other managers own instead of
    /// failing with a conflict.
    #[arg(long)]
    pub force_conflicts: bool,
    /// The field manager recorded for the applied fields.
    #[arg(long, default_value = "ctl")]
    pub field_manager: String,
}

/// Runs `apply`. 2014 manifests are converted to v1 here (v1beta1 has no
/// PATCH), so what is recorded and compared is their v1 form.
///
/// # Errors
///
/// Unreadable manifests, or the objects that failed.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let objects = manifests::read(&args.files.files, args.files.recursive)?;
    let ctl = global.connect().await?;
    let mut failures = Vec::new();
    for object in &objects {
        let applied = if args.server_side {
            apply_server_side(&ctl, object, &args).await
        } else {
            apply_one(&ctl, object).await
        };
        match applied {
            Ok(verb) => emit(&format!("{} {verb}\n", object.display_name())),
            Err(e) => {
                if matches!(
                    e.downcast_ref::<crate::client::Error>(),
                    Some(crate::client::Error::Connect { .. })
                ) {
                    return Err(e);
                }
                failures.push(e.context(format!(
                    "applying {} from {}",
                    object.display_name(),
                    object.source
                )));
            }
        }
    }
    report(failures)
}

/// The object with the last-applied annotation set to its own JSON, written
/// byte for byte as kubectl writes it (keys sorted, compact, a final
/// newline, `metadata.annotations` present and without the annotation
/// itself), so `ctl apply` and `kubectl apply` can take turns.
pub fn with_last_applied(object: &Value) -> Value {
    let mut recorded = object.clone();
    if !recorded["metadata"].is_object() {
        recorded["metadata"] = json!({});
    }
    if !recorded["metadata"]["annotations"].is_object() {
        recorded["metadata"]["annotations"] = json!({});
    }
    if let Some(annotations) = recorded["metadata"]["annotations"].as_object_mut() {
        annotations.remove(LAST_APPLIED);
    }
    let mut text = serde_json::to_string(&sorted(&recorded)).unwrap_or_default();
    text.push('\n');
    let mut modified = recorded;
    modified["metadata"]["annotations"][LAST_APPLIED] = Value::String(text);
    modified
}

/// `value` with every object's keys in sorted order (Go's encoding).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Whether `part` says nothing `whole` does not: objects by key, lists
/// element by element (same length), scalars equal.
fn is_subset(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|wv| is_subset(v, wv))),
        (Value::Array(p), Value::Array(w)) => {
            p.len() == w.len() && p.iter().zip(w).all(|(a, b)| is_subset(a, b))
        }
        (p, w) => p == w,
    }
}

/// A merge patch sets lists whole, so a manifest's list that the server
/// filled in with defaults (`protocol: TCP`...) always differs from the
/// stored one. Drops such lists from `patch` when the manifest's list is a
/// subset of the stored one, so an unchanged manifest gives an empty patch
/// (kubectl gets the same from strategic merge's merge keys). A list that
/// lost or changed an element is still sent whole.
fn prune_defaulted_lists(patch: &mut Value, modified: &Value, current: &Value) {
    let Some(map) = patch.as_object_mut() else {
        return;
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let (Some(m), Some(c)) = (modified.get(&key), current.get(&key)) else {
            continue;
        };
        let drop = match map.get_mut(&key) {
            Some(Value::Array(_)) => is_subset(m, c),
            Some(nested @ Value::Object(_)) => {
                prune_defaulted_lists(nested, m, c);
                nested.as_object().is_some_and(serde_json::Map::is_empty)
            }
            _ => false,
        };
        if drop {
            map.remove(&key);
        }
    }
}

/// A server-side apply of one object: the server creates or merges it.
async fn apply_server_side(
    ctl: &crate::client::Ctl,
    object: &Manifest,
    args: &Args,
) -> Result<&'static str> {
    let mut v1 = if object.v1beta1 {
        manifests::to_v1(object)?
    } else {
        object.value.clone()
    };
    if object.resource.namespaced && v1.pointer("/metadata/namespace").is_none() {
        v1["metadata"]["namespace"] = Value::String(object.namespace_or(&ctl.namespace).into());
    }
    let path = object.object_path(&ctl.namespace, false);
    let manager: String = args
        .field_manager
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let query = format!(
        "{path}?fieldManager={manager}{}",
        if args.force_conflicts {
            "&force=true"
        } else {
            ""
        }
    );
    let body = serde_json::to_vec(&v1).context("encoding the object")?;
    ctl.request(
        http::Method::PATCH,
        &query,
        Some(("application/apply-patch+yaml", body)),
    )
    .await?;
    Ok("serverside-applied")
}

async fn apply_one(ctl: &crate::client::Ctl, object: &Manifest) -> Result<&'static str> {
    let v1 = if object.v1beta1 {
        manifests::to_v1(object)?
    } else {
        object.value.clone()
    };
    let mut v1 = v1;
    if object.resource.namespaced && v1.pointer("/metadata/namespace").is_none() {
        // kubectl records the namespace it applied to; so do we.
        v1["metadata"]["namespace"] = Value::String(object.namespace_or(&ctl.namespace).into());
    }
    let modified = with_last_applied(&v1);
    let path = object.object_path(&ctl.namespace, false);
    let current = match ctl.get(&path).await {
        Ok(current) => current,
        Err(crate::client::Error::Api(e)) if e.is_not_found() => {
            let ns = object.namespace_or(&ctl.namespace);
            ctl.post(
                &crate::resources::collection_path(object.resource, Some(ns)),
                &modified,
            )
            .await?;
            return Ok("created");
        }
        Err(e) => return Err(e.into()),
    };
    let last_applied: Option<Value> = current
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str(text).ok());
    let mut patch = create_three_way_merge_patch(last_applied.as_ref(), &modified, &current);
    prune_defaulted_lists(&mut patch, &modified, &current);
    if patch.as_object().is_some_and(serde_json::Map::is_empty) {
        return Ok("unchanged");
    }
    ctl.merge_patch(&path, &patch)
        .await
        .context("sending the patch")?;
    Ok("configured")
}
