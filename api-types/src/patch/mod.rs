//! Patches: JSON merge patch, JSON patch and strategic merge patch.
//!
//! The apiserver's `PATCH` takes the three content types Kubernetes takes
//! ([`PatchType`]); [`apply_patch`] applies any of them. `ctl apply` builds
//! its patches with [`create_merge_patch`] and
//! [`create_three_way_merge_patch`] (plain RFC 7386 merge patches, so they
//! need no schema).
//!
//! Strategic merge patch ([`apply_strategic_merge_patch`]) needs to know
//! which lists merge and by which key: the metadata of the core/v1 kinds the
//! API serves is compiled in (module `schema`). Everything here is pure: no
//! IO, and a failing patch never leaves its target half-changed.
//!
//! None of these functions protects fields a client must not change through a
//! patch (`metadata.name`, `uid`, `resourceVersion`...): the caller compares
//! the result with the stored object, as it does for an update.

mod apply;
mod error;
mod json;
mod merge;
mod schema;
mod strategic;
mod value;

#[cfg(test)]
mod kubectl_tests;

use serde_json::Value;

pub use apply::{
    apply as server_side_apply, field_set, path_string, record_update, Conflict, Conflicts,
    FieldSet, Manager,
};
pub use error::{JsonPatchFailure, PatchError, StrategicFailure};
pub use json::{apply_json_patch, MAX_JSON_PATCH_COPY_BYTES, MAX_JSON_PATCH_OPERATIONS};
pub use merge::{apply_merge_patch, create_merge_patch, create_three_way_merge_patch};
pub use schema::{merging_lists, MergingList};
pub use strategic::{apply_strategic_merge_patch, supports_strategic_merge_patch};

/// The patch formats `PATCH` accepts, by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// RFC 6902 JSON patch, `application/json-patch+json`.
    Json,
    /// RFC 7386 JSON merge patch, `application/merge-patch+json`.
    Merge,
    /// Kubernetes' strategic merge patch,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
}

impl PatchType {
    /// The patch type of a `Content-Type` header value; parameters such as
    /// `; charset=utf-8` are ignored, case does not matter. `None` for any
    /// other type, including server-side apply's `application/apply-patch+yaml`
    /// (not a patch of a target but an applied configuration: see
    /// [`server_side_apply`], which the apiserver routes it to).
    #[must_use]
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            _ => None,
        }
    }

    /// The `Content-Type` a client sends this patch type with.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json-patch+json",
            Self::Merge => "application/merge-patch+json",
            Self::StrategicMerge => "application/strategic-merge-patch+json",
        }
    }
}

/// Applies `patch` of type `patch_type` to `target`, an object of kind `kind`
/// (`Pod`; only strategic merge patch looks at it), and returns the patched
/// object. `target` is not changed.
///
/// # Errors
///
/// Whatever the patch function of that type returns; see [`PatchError`] and
/// [`PatchError::is_malformed`] for the HTTP status to answer with.
pub fn apply_patch(
    patch_type: PatchType,
    kind: &str,
    target: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => {
            let mut doc = target.clone();
            apply_json_patch(&mut doc, patch)?;
            Ok(doc)
        }
        PatchType::Merge => {
            let mut doc = target.clone();
            apply_merge_patch(&mut doc, patch);
            Ok(doc)
        }
        PatchType::StrategicMerge => apply_strategic_merge_patch(kind, target, patch),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn content_types_are_recognised_with_parameters_and_any_case() {
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
            Some(PatchType::StrategicMerge)
        );
        assert_eq!(
            PatchType::from_content_type("Application/Merge-Patch+JSON"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            None
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        for t in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge] {
            assert_eq!(PatchType::from_content_type(t.content_type()), Some(t));
        }
    }

    #[test]
    fn apply_patch_dispatches_on_the_type_and_leaves_the_target_alone() {
        let pod = json!({"metadata": {"name": "a", "finalizers": ["x"]}});
        let merged = apply_patch(
            PatchType::Merge,
            "Pod",
            &pod,
            &json!({"metadata": {"finalizers": ["y"]}}),
        )
        .expect("merge patch");
        assert_eq!(
            merged,
            json!({"metadata": {"name": "a", "finalizers": ["y"]}})
        );

        let strategic = apply_patch(
            PatchType::StrategicMerge,
            "Pod",
            &pod,
            &json!({"metadata": {"finalizers": ["y"]}}),
        )
        .expect("strategic merge patch");
        assert_eq!(
            strategic,
            json!({"metadata": {"name": "a", "finalizers": ["y", "x"]}})
        );

        let jsonp = apply_patch(
            PatchType::Json,
            "Pod",
            &pod,
            &json!([{"op": "replace", "path": "/metadata/name", "value": "b"}]),
        )
        .expect("json patch");
        assert_eq!(
            jsonp,
            json!({"metadata": {"name": "b", "finalizers": ["x"]}})
        );
        assert_eq!(pod, json!({"metadata": {"name": "a", "finalizers": ["x"]}}));
    }
}
