//! The three patch kinds (JSON, merge, strategic merge) on generated and
//! mutated documents: a patched document or a typed error, and a result
//! bounded by the copy budget.

use api_types::patch::{apply_patch, PatchType};
use proptest::prelude::*;
use serde_json::Value;

use crate::corpus::{config, json_value, mutated, seeds};

const KINDS: &[&str] = &[
    "Pod",
    "Service",
    "ReplicationController",
    "Node",
    "ConfigMap",
];
const TYPES: &[PatchType] = &[PatchType::Json, PatchType::Merge, PatchType::StrategicMerge];

/// The largest patched document: the target, the patch, and the JSON
/// patch copy budget (`MAX_JSON_PATCH_COPY_BYTES`) at most.
fn bounded(target: &Value, patch: &Value, result: &Value) {
    let size = |v: &Value| serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0);
    let limit = size(target) + size(patch) + api_types::patch::MAX_JSON_PATCH_COPY_BYTES;
    assert!(
        size(result) <= limit,
        "a patch grew the document past its bound"
    );
}

fn patch_all_ways(target: &Value, patch: &Value) {
    for kind in KINDS {
        for patch_type in TYPES {
            if let Ok(result) = apply_patch(*patch_type, kind, target, patch) {
                bounded(target, patch, &result);
            }
        }
    }
}

/// The `patches` corpus: each file is `{"target": ..., "patch": ...}`.
fn split(bytes: &[u8]) -> Option<(Value, Value)> {
    let mut doc: Value = serde_json::from_slice(bytes).ok()?;
    Some((doc.get_mut("target")?.take(), doc.get_mut("patch")?.take()))
}

#[test]
fn corpus_patches_apply_or_are_refused() {
    for (name, seed) in seeds("patches") {
        let (target, patch) = split(&seed).unwrap_or_else(|| panic!("{name} is not a patch case"));
        patch_all_ways(&target, &patch);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_patches_apply_or_are_refused(target in json_value(), patch in json_value()) {
        patch_all_ways(&target, &patch);
    }

    #[test]
    fn mutated_patches_apply_or_are_refused(bytes in mutated("patches")) {
        if let Some((target, patch)) = split(&bytes) {
            patch_all_ways(&target, &patch);
        }
    }
}
