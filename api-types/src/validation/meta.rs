//! `metadata`: names, namespaces, labels, annotations, owner references.

use std::collections::{BTreeMap, BTreeSet};

use crate::status::{FieldError, FieldErrorKind};
use crate::v1::ObjectMeta;

use super::names::{
    is_legacy_label_value, is_qualified_name, is_valid_label_value, name_is_dns_label,
    name_is_dns_subdomain,
};
use super::{child, index, push_invalid, FieldErrors, FIELD_IMMUTABLE_ERROR_MSG};

/// Checks an object name (`prefix` = it is a `generateName` prefix) and
/// returns what is wrong with it, like [`name_is_dns_subdomain`].
pub type NameValidator = fn(&str, bool) -> Vec<String>;

/// The most bytes all annotations of one object may hold, keys and values
/// together (256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES: usize = 256 * 1024;

/// Finalizer names that need no domain prefix.
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// Validates the `metadata` of a top-level object whose name must be a DNS
/// subdomain.
///
/// `name` is required unless `generateName` is set (the apiserver then makes
/// one); `namespace` is required and must be a DNS label when `namespaced`,
/// and forbidden otherwise. Labels, annotations (256 KiB in all),
/// finalizers and owner references are checked too.
pub fn validate_object_meta(meta: &ObjectMeta, namespaced: bool) -> FieldErrors {
    validate_object_meta_with(meta, namespaced, name_is_dns_subdomain, "metadata")
}

/// [`validate_object_meta`] with another name rule and path (`metadata` for
/// top-level objects).
pub fn validate_object_meta_with(
    meta: &ObjectMeta,
    namespaced: bool,
    name_rule: NameValidator,
    path: &str,
) -> FieldErrors {
    let mut errs = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or("");
    if !generate_name.is_empty() {
        let p = child(path, "generateName");
        push_invalid(&mut errs, &p, generate_name, name_rule(generate_name, true));
    }
    match meta.name.as_deref() {
        None | Some("") => {
            if generate_name.is_empty() {
                errs.push(FieldError::required(
                    child(path, "name"),
                    "name or generateName is required",
                ));
            }
        }
        Some(name) => {
            let p = child(path, "name");
            push_invalid(&mut errs, &p, name, name_rule(name, false));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    let ns_path = child(path, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(ns_path, ""));
        } else {
            push_invalid(
                &mut errs,
                &ns_path,
                namespace,
                name_is_dns_label(namespace, false),
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(ns_path, "not allowed on this type"));
    }
    super::validate_nonnegative(&mut errs, &child(path, "generation"), meta.generation);
    if let Some(labels) = &meta.labels {
        errs.extend(validate_object_labels(labels, &child(path, "labels")));
    }
    if let Some(annotations) = &meta.annotations {
        errs.extend(validate_annotations(
            annotations,
            &child(path, "annotations"),
        ));
    }
    if let Some(finalizers) = &meta.finalizers {
        errs.extend(validate_finalizers(finalizers, &child(path, "finalizers")));
    }
    if let Some(owners) = &meta.owner_references {
        let owners_path = child(path, "ownerReferences");
        let mut controllers = 0;
        for (i, owner) in owners.iter().enumerate() {
            let p = index(&owners_path, i);
            // Kubernetes' messages: "version", not "apiVersion".
            for (field, value, what) in [
                ("apiVersion", &owner.api_version, "version"),
                ("kind", &owner.kind, "kind"),
                ("name", &owner.name, "name"),
                ("uid", &owner.uid, "uid"),
            ] {
                if value.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, field),
                        "",
                        format!("{what} must not be empty"),
                    ));
                }
            }
            if owner.controller == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            errs.push(FieldError::invalid(
                owners_path,
                format!("{controllers} controllers"),
                "Only one reference can have Controller set to true",
            ));
        }
    }
    errs
}

/// Validates label keys (qualified names) and values (label values).
///
/// Errors are reported at `path` itself with the offending key or value, as
/// Kubernetes does (`metadata.labels: Invalid value: "a b": ...`). Use this
/// for selectors and `nodeSelector`.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &str) -> FieldErrors {
    validate_labels_by(labels, path, is_valid_label_value)
}

/// Labels of an object: like [`validate_labels`], but values may also be the
/// comma-separated lists 2014 manifests used ([`is_legacy_label_value`]).
pub(crate) fn validate_object_labels(labels: &BTreeMap<String, String>, path: &str) -> FieldErrors {
    validate_labels_by(labels, path, is_legacy_label_value)
}

fn validate_labels_by(
    labels: &BTreeMap<String, String>,
    path: &str,
    value_rule: fn(&str) -> Vec<String>,
) -> FieldErrors {
    let mut errs = Vec::new();
    for (k, v) in labels {
        push_invalid(&mut errs, path, k, is_qualified_name(k));
        push_invalid(&mut errs, path, v, value_rule(v));
    }
    errs
}

/// Validates annotation keys (qualified names, compared in lower case) and
/// their total size ([`TOTAL_ANNOTATION_SIZE_LIMIT_BYTES`]).
pub fn validate_annotations(annotations: &BTreeMap<String, String>, path: &str) -> FieldErrors {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        push_invalid(
            &mut errs,
            path,
            k,
            is_qualified_name(&k.to_ascii_lowercase()),
        );
        total = total.saturating_add(k.len()).saturating_add(v.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES {
        errs.push(FieldError::new(
            FieldErrorKind::TooLong,
            path,
            None,
            format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT_BYTES} bytes"),
        ));
    }
    errs
}

/// Finalizers: qualified names; one without a '/' must be a standard one.
pub(crate) fn validate_finalizers(finalizers: &[String], path: &str) -> FieldErrors {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for f in finalizers {
        let before = errs.len();
        push_invalid(&mut errs, path, f, is_qualified_name(f));
        if errs.len() == before && !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()) {
            errs.push(FieldError::invalid(
                path,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
        if !seen.insert(f.as_str()) {
            errs.push(FieldError::duplicate(path, f));
        }
    }
    errs
}

/// Validates what an update may not change in `metadata`: name, namespace,
/// and, when the update carries them, uid and creationTimestamp
/// (`Invalid: field is immutable`, as Kubernetes says); generation may not
/// go down.
///
/// An update without `resourceVersion` is allowed (an unconditional update).
/// The new metadata's own rules are checked by the object's full validation.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta, path: &str) -> FieldErrors {
    let mut errs = Vec::new();
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    if s(&new.name) != s(&old.name) {
        errs.push(FieldError::invalid(
            child(path, "name"),
            s(&new.name),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    if s(&new.namespace) != s(&old.namespace) {
        errs.push(FieldError::invalid(
            child(path, "namespace"),
            s(&new.namespace),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    if !s(&new.uid).is_empty() && s(&new.uid) != s(&old.uid) {
        errs.push(FieldError::invalid(
            child(path, "uid"),
            s(&new.uid),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    if let Some(ts) = &new.creation_timestamp {
        if new.creation_timestamp != old.creation_timestamp {
            errs.push(FieldError::invalid(
                child(path, "creationTimestamp"),
                ts.0,
                FIELD_IMMUTABLE_ERROR_MSG,
            ));
        }
    }
    if let (Some(n), Some(o)) = (new.generation, old.generation) {
        if n < o {
            errs.push(FieldError::invalid(
                child(path, "generation"),
                n,
                "must not be decremented",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::FieldErrorKind::*;
    use crate::validation::name_is_dns1035_label;
    use crate::validation::testutil::{assert_exactly, assert_has, assert_valid};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(Into::into),
            ..ObjectMeta::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn valid_namespaced_and_cluster_meta() {
        assert_valid(&validate_object_meta(&meta("web-1", Some("default")), true));
        assert_valid(&validate_object_meta(
            &meta("node.example.com", None),
            false,
        ));
    }

    #[test]
    fn name_required_unless_generate_name() {
        let mut m = meta("", Some("default"));
        assert_exactly(
            &validate_object_meta(&m, true),
            &[("metadata.name", Required)],
        );
        m.name = None;
        assert_exactly(
            &validate_object_meta(&m, true),
            &[("metadata.name", Required)],
        );
        m.generate_name = Some("web-".into());
        assert_valid(&validate_object_meta(&m, true));
        m.generate_name = Some("Web_".into());
        assert_exactly(
            &validate_object_meta(&m, true),
            &[("metadata.generateName", Invalid)],
        );
    }

    #[test]
    fn name_format_uses_the_rule() {
        let m = meta("Bad_Name", Some("default"));
        let errs = validate_object_meta(&m, true);
        assert_exactly(&errs, &[("metadata.name", Invalid)]);
        assert_eq!(errs[0].value.as_deref(), Some("Bad_Name"));
        let m = meta("a.b", Some("default"));
        assert_valid(&validate_object_meta(&m, true));
        assert_exactly(
            &validate_object_meta_with(&m, true, name_is_dns1035_label, "metadata"),
            &[("metadata.name", Invalid)],
        );
    }

    #[test]
    fn namespace_required_forbidden_and_valid() {
        assert_exactly(
            &validate_object_meta(&meta("a", None), true),
            &[("metadata.namespace", Required)],
        );
        assert_exactly(
            &validate_object_meta(&meta("a", Some("")), true),
            &[("metadata.namespace", Required)],
        );
        assert_exactly(
            &validate_object_meta(&meta("a", Some("default")), false),
            &[("metadata.namespace", Forbidden)],
        );
        assert_exactly(
            &validate_object_meta(&meta("a", Some("my.ns")), true),
            &[("metadata.namespace", Invalid)],
        );
    }

    #[test]
    fn labels_keys_and_values() {
        let mut m = meta("a", Some("default"));
        m.labels = Some(map(&[
            ("app", "web"),
            ("example.com/tier", "front_end"),
            ("bad key", "ok"),
            ("ok", "bad value"),
            ("uses", "redisslave,redis-master"),
        ]));
        let errs = validate_object_meta(&m, true);
        assert_exactly(
            &errs,
            &[("metadata.labels", Invalid), ("metadata.labels", Invalid)],
        );
        assert!(errs.iter().any(|e| e.value.as_deref() == Some("bad key")));
        assert!(errs.iter().any(|e| e.value.as_deref() == Some("bad value")));
    }

    #[test]
    fn selectors_use_strict_label_values() {
        let errs = validate_labels(&map(&[("uses", "a,b")]), "spec.selector");
        assert_exactly(&errs, &[("spec.selector", Invalid)]);
    }

    #[test]
    fn annotations_keys_and_total_size() {
        let mut m = meta("a", Some("default"));
        m.annotations = Some(map(&[
            ("Example.com/Key", "any value at all, with spaces"),
            ("bad key", "v"),
        ]));
        assert_exactly(
            &validate_object_meta(&m, true),
            &[("metadata.annotations", Invalid)],
        );
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES);
        m.annotations = Some(map(&[("k", &big)]));
        let errs = validate_object_meta(&m, true);
        assert_exactly(&errs, &[("metadata.annotations", TooLong)]);
        m.annotations = Some(map(&[("k", &big[1..])]));
        assert_valid(&validate_object_meta(&m, true));
    }

    #[test]
    fn finalizers_and_owner_references() {
        let mut m = meta("a", Some("default"));
        m.finalizers = Some(vec![
            "kubernetes".into(),
            "example.com/cleanup".into(),
            "custom".into(),
            "kubernetes".into(),
        ]);
        assert_exactly(
            &validate_object_meta(&m, true),
            &[
                ("metadata.finalizers", Invalid),
                ("metadata.finalizers", Duplicate),
            ],
        );
        m.finalizers = None;
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "ReplicationController".into(),
            name: "web".into(),
            uid: "u-1".into(),
            controller: Some(true),
            ..OwnerReference::default()
        };
        m.owner_references = Some(vec![owner.clone()]);
        assert_valid(&validate_object_meta(&m, true));
        m.owner_references = Some(vec![owner.clone(), owner, OwnerReference::default()]);
        assert_exactly(
            &validate_object_meta(&m, true),
            &[
                ("metadata.ownerReferences", Invalid),
                ("metadata.ownerReferences[2].apiVersion", Invalid),
                ("metadata.ownerReferences[2].kind", Invalid),
                ("metadata.ownerReferences[2].name", Invalid),
                ("metadata.ownerReferences[2].uid", Invalid),
            ],
        );
    }

    #[test]
    fn negative_generation() {
        let mut m = meta("a", None);
        m.generation = Some(-1);
        assert_exactly(
            &validate_object_meta(&m, false),
            &[("metadata.generation", Invalid)],
        );
    }

    #[test]
    fn update_immutables() {
        let mut old = meta("a", Some("default"));
        old.uid = Some("u-1".into());
        old.resource_version = Some("5".into());
        let mut new = old.clone();
        new.resource_version = None;
        new.uid = None;
        new.labels = Some(map(&[("x", "y")]));
        assert_valid(&validate_object_meta_update(&new, &old, "metadata"));
        new.name = Some("b".into());
        new.namespace = Some("other".into());
        new.uid = Some("u-2".into());
        let errs = validate_object_meta_update(&new, &old, "metadata");
        assert_exactly(
            &errs,
            &[
                ("metadata.name", Invalid),
                ("metadata.namespace", Invalid),
                ("metadata.uid", Invalid),
            ],
        );
        assert!(errs.iter().all(|e| e.detail == "field is immutable"));
        assert_has(&errs, "metadata.name", Invalid);
    }
}
