//! Pod updates: what may change in a running pod's spec, and the semantic
//! diff that names what else did.

use std::collections::BTreeSet;

use serde_json::Value;

use super::scheduling::validate_only_added_tolerations;
use super::{s, validate_pod};
use crate::status::FieldError;
use crate::v1::{Pod, PodSpec};
use crate::validation::{child, index, validate_object_meta_update, FieldErrors};

/// Validates an update of a pod: the new pod must be valid, metadata
/// immutables unchanged, and the spec unchanged except
/// `containers[*].image`, `initContainers[*].image`,
/// `activeDeadlineSeconds` (set, or lowered), `tolerations` (additions),
/// `schedulingGates` (removals) and `nodeName` while it is unset (once set it
/// may not change). Anything else is one `Forbidden` at `spec` naming the
/// changed fields.
pub fn validate_pod_update(new: &Pod, old: &Pod) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_pod(new));
    let empty = PodSpec::default();
    let ns = new.spec.as_ref().unwrap_or(&empty);
    let os = old.spec.as_ref().unwrap_or(&empty);

    let new_init = ns.init_containers.as_deref().unwrap_or(&[]);
    let old_init = os.init_containers.as_deref().unwrap_or(&[]);
    if ns.containers.len() != os.containers.len() {
        errs.push(FieldError::forbidden(
            "spec.containers",
            "pod updates may not add or remove containers",
        ));
        return errs;
    }
    if new_init.len() != old_init.len() {
        errs.push(FieldError::forbidden(
            "spec.initContainers",
            "pod updates may not add or remove containers",
        ));
        return errs;
    }

    validate_only_added_tolerations(
        ns.tolerations.as_deref().unwrap_or(&[]),
        os.tolerations.as_deref().unwrap_or(&[]),
        "spec.tolerations",
        &mut errs,
    );
    match (ns.active_deadline_seconds, os.active_deadline_seconds) {
        (Some(n), Some(o)) if n > o => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            n,
            "must be less than or equal to previous value",
        )),
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            "nil",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    let old_node = s(&os.node_name);
    if !old_node.is_empty() && s(&ns.node_name) != old_node {
        errs.push(FieldError::forbidden(
            "spec.nodeName",
            format!("may not be changed once set (the pod is bound to node \"{old_node}\")"),
        ));
    }
    let old_gates: BTreeSet<&str> = os
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, gate) in ns.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(gate.name.as_str()) {
            errs.push(FieldError::forbidden(
                index("spec.schedulingGates", i),
                format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    gate.name
                ),
            ));
        }
    }

    // What may change is copied from the old spec; any other difference is
    // forbidden.
    let mut munged = ns.clone();
    for (m, o) in munged.containers.iter_mut().zip(&os.containers) {
        m.image.clone_from(&o.image);
    }
    if let Some(init) = munged.init_containers.as_mut() {
        for (m, o) in init.iter_mut().zip(old_init) {
            m.image.clone_from(&o.image);
        }
    }
    munged.active_deadline_seconds = os.active_deadline_seconds;
    munged.tolerations.clone_from(&os.tolerations);
    munged.scheduling_gates.clone_from(&os.scheduling_gates);
    // An unset nodeName may be set (binding); a set one was checked above.
    munged.node_name.clone_from(&os.node_name);
    let changed = changed_paths(&munged, os, "spec");
    if !changed.is_empty() {
        let shown: Vec<&str> = changed.iter().take(10).map(String::as_str).collect();
        let more = changed.len().saturating_sub(shown.len());
        let mut list = shown.join(", ");
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        errs.push(FieldError::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than `spec.containers[*].image`, \
                 `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, \
                 `spec.tolerations` (only additions to existing tolerations), \
                 `spec.schedulingGates` (only removals) and an unset `spec.nodeName`; \
                 changed: {list}"
            ),
        ));
    }
    errs
}

/// The JSON paths under `base` where `a` and `b` differ, treating absent,
/// `null` and empty lists or maps as equal (Kubernetes' semantic equality).
pub(super) fn changed_paths<T: serde::Serialize + PartialEq>(
    a: &T,
    b: &T,
    base: &str,
) -> Vec<String> {
    // The common case (a status update, a binding) leaves the spec as it
    // was: equal typed values serialize equal, so skip both JSON trees.
    if a == b {
        return Vec::new();
    }
    let mut out = Vec::new();
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(va), Ok(vb)) => diff_values(&normalize(va), &normalize(vb), base, &mut out),
        _ => {
            if a != b {
                out.push(base.to_string());
            }
        }
    }
    out
}

fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalize(v)))
                .filter(|(_, v)| !is_empty_value(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn diff_values(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            let keys: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
            for k in keys {
                let p = child(path, k);
                match (ma.get(k), mb.get(k)) {
                    (Some(x), Some(y)) => diff_values(x, y, &p, out),
                    _ => out.push(p),
                }
            }
        }
        (Value::Array(xa), Value::Array(xb)) if xa.len() == xb.len() => {
            for (i, (x, y)) in xa.iter().zip(xb).enumerate() {
                diff_values(x, y, &index(path, i), out);
            }
        }
        _ => {
            if a != b {
                out.push(path.to_string());
            }
        }
    }
}
