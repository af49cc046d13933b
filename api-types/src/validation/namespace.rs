//! Namespaces: name, finalizers and the Pod Security labels' values.

use k8s_openapi::api::core::v1::NamespaceStatus;

use crate::status::FieldError;
use crate::v1::Namespace;

use super::meta::validate_finalizers;
use super::names::name_is_dns_label;
use super::{validate_object_meta_update, validate_object_meta_with, FieldErrors};

const NAMESPACE_PHASES: &[&str] = &["Active", "Terminating"];

/// Validates a namespace: metadata (cluster-scoped, the name a DNS label),
/// `spec.finalizers` (standard names such as `kubernetes`, or qualified
/// `domain/name`s) and `status.phase` when set.
pub fn validate_namespace(ns: &Namespace) -> FieldErrors {
    let mut errs = validate_object_meta_with(&ns.metadata, false, name_is_dns_label, "metadata");
    // Pod Security admission's labels must name a level, as Kubernetes'
    // admission checks on namespace writes.
    for key in crate::pod_security::LEVEL_LABELS {
        if let Some(value) = ns.metadata.labels.as_ref().and_then(|l| l.get(key)) {
            if let Err(detail) = crate::pod_security::Level::parse(value) {
                errs.push(FieldError::invalid(
                    format!("metadata.labels[{key}]"),
                    format!("{value:?}"),
                    detail,
                ));
            }
        }
    }
    if let Some(finalizers) = ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()) {
        errs.extend(validate_finalizers(finalizers, "spec.finalizers"));
    }
    let empty = NamespaceStatus::default();
    let status = ns.status.as_ref().unwrap_or(&empty);
    if let Some(phase) = status.phase.as_ref().filter(|p| !p.is_empty()) {
        if !NAMESPACE_PHASES.contains(&phase.as_str()) {
            errs.push(FieldError::not_supported(
                "status.phase",
                phase,
                NAMESPACE_PHASES,
            ));
        }
    }
    errs
}

/// Validates an update of a namespace: metadata immutables unchanged and the
/// new namespace valid.
pub fn validate_namespace_update(new: &Namespace, old: &Namespace) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_namespace(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::FieldErrorKind::*;
    use crate::v1::ObjectMeta;
    use crate::validation::testutil::{assert_exactly, assert_valid};
    use k8s_openapi::api::core::v1::NamespaceSpec;

    fn ns(name: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(NamespaceSpec {
                finalizers: Some(vec!["kubernetes".into()]),
            }),
            status: Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..NamespaceStatus::default()
            }),
        }
    }

    #[test]
    fn valid_namespace() {
        assert_valid(&validate_namespace(&ns("kube-system")));
    }

    #[test]
    fn name_is_a_dns_label() {
        assert_exactly(
            &validate_namespace(&ns("my.ns")),
            &[("metadata.name", Invalid)],
        );
        assert_exactly(
            &validate_namespace(&ns("My-NS")),
            &[("metadata.name", Invalid)],
        );
        assert_exactly(
            &validate_namespace(&ns(&"a".repeat(64))),
            &[("metadata.name", Invalid)],
        );
        let mut n = ns("a");
        n.metadata.namespace = Some("default".into());
        assert_exactly(
            &validate_namespace(&n),
            &[("metadata.namespace", Forbidden)],
        );
    }

    #[test]
    fn finalizers_and_phase() {
        let mut n = ns("a");
        n.spec = Some(NamespaceSpec {
            finalizers: Some(vec!["kubernetes".into(), "mine".into(), "a/b/c".into()]),
        });
        n.status = Some(NamespaceStatus {
            phase: Some("Gone".into()),
            ..NamespaceStatus::default()
        });
        assert_exactly(
            &validate_namespace(&n),
            &[
                ("spec.finalizers", Invalid),
                ("spec.finalizers", Invalid),
                ("status.phase", NotSupported),
            ],
        );
    }

    #[test]
    fn pod_security_labels_name_a_level() {
        let mut n = ns("a");
        n.metadata.labels = Some(
            [
                ("pod-security.kubernetes.io/enforce", "baseline"),
                ("pod-security.kubernetes.io/warn", "strict"),
                ("pod-security.kubernetes.io/enforce-version", "latest"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        assert_exactly(
            &validate_namespace(&n),
            &[("metadata.labels[pod-security.kubernetes.io/warn]", Invalid)],
        );
    }

    #[test]
    fn update_keeps_name() {
        let old = ns("a");
        assert_valid(&validate_namespace_update(&old, &old));
        assert_exactly(
            &validate_namespace_update(&ns("b"), &old),
            &[("metadata.name", Invalid)],
        );
    }
}
