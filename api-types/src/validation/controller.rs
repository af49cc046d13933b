//! Replication controllers: replicas, selector, template.

use crate::status::FieldError;
use crate::v1::{ReplicationController, ReplicationControllerSpec};

use super::meta::validate_labels;
use super::names::name_is_dns_subdomain_any_case;
use super::pod::validate_controller_pod_template;
use super::{
    validate_nonnegative, validate_object_meta_update, validate_object_meta_with, FieldErrors,
};

/// Validates a replication controller for create: metadata (namespaced; the
/// name a DNS subdomain, upper case allowed for 2014 manifests such as
/// `frontendController`) and spec: `replicas >= 0`, a non-empty valid
/// selector, a template whose labels match the selector, whose pod spec is
/// valid (paths under `spec.template.spec`) and whose `restartPolicy` is
/// `Always`.
pub fn validate_replication_controller(rc: &ReplicationController) -> FieldErrors {
    let mut errs = validate_object_meta_with(
        &rc.metadata,
        true,
        name_is_dns_subdomain_any_case,
        "metadata",
    );
    let empty = ReplicationControllerSpec::default();
    errs.extend(validate_spec(rc.spec.as_ref().unwrap_or(&empty)));
    errs
}

fn validate_spec(spec: &ReplicationControllerSpec) -> FieldErrors {
    let mut errs = Vec::new();
    validate_nonnegative(
        &mut errs,
        "spec.minReadySeconds",
        spec.min_ready_seconds.map(i64::from),
    );
    validate_nonnegative(&mut errs, "spec.replicas", spec.replicas.map(i64::from));
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => errs.extend(validate_labels(sel, "spec.selector")),
    }
    let Some(template) = &spec.template else {
        errs.push(FieldError::required("spec.template", ""));
        return errs;
    };
    if let Some(sel) = selector {
        let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        let matches = sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if !matches {
            let shown = labels
                .map(|l| {
                    l.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                shown,
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs.extend(validate_controller_pod_template(template, "spec.template"));
    let pod_spec = template.spec.as_ref();
    if let Some(deadline) = pod_spec.and_then(|s| s.active_deadline_seconds) {
        errs.push(FieldError::invalid(
            "spec.template.spec.activeDeadlineSeconds",
            deadline,
            "activeDeadlineSeconds in ReplicationController is not Supported",
        ));
    }
    errs
}

/// Validates an update of a replication controller: metadata immutables
/// unchanged and the new controller valid (its spec may change freely, as in
/// Kubernetes).
pub fn validate_replication_controller_update(
    new: &ReplicationController,
    old: &ReplicationController,
) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_replication_controller(new));
    errs
}

/// Validates a status update of a replication controller: metadata
/// immutables unchanged and counts that make sense (none negative;
/// `fullyLabeledReplicas`, `readyReplicas`, `availableReplicas` at most
/// `replicas`; `availableReplicas` at most `readyReplicas`).
pub fn validate_replication_controller_status_update(
    new: &ReplicationController,
    old: &ReplicationController,
) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    let Some(status) = &new.status else {
        return errs;
    };
    validate_nonnegative(
        &mut errs,
        "status.replicas",
        Some(i64::from(status.replicas)),
    );
    validate_nonnegative(
        &mut errs,
        "status.observedGeneration",
        status.observed_generation,
    );
    for (field, value) in [
        ("fullyLabeledReplicas", status.fully_labeled_replicas),
        ("readyReplicas", status.ready_replicas),
        ("availableReplicas", status.available_replicas),
    ] {
        let path = format!("status.{field}");
        validate_nonnegative(&mut errs, &path, value.map(i64::from));
        if let Some(v) = value {
            if v > status.replicas {
                errs.push(FieldError::invalid(
                    &path,
                    v,
                    "cannot be greater than status.replicas",
                ));
            }
        }
    }
    if let (Some(available), Some(ready)) = (status.available_replicas, status.ready_replicas) {
        if available > ready {
            errs.push(FieldError::invalid(
                "status.availableReplicas",
                available,
                "cannot be greater than readyReplicas",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::FieldErrorKind::*;
    use crate::v1::{Container, ObjectMeta, PodSpec, PodTemplateSpec, ReplicationControllerStatus};
    use crate::validation::testutil::{assert_exactly, assert_valid};
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn rc() -> ReplicationController {
        ReplicationController {
            metadata: ObjectMeta {
                name: Some("frontendController".into()),
                namespace: Some("default".into()),
                labels: Some(labels(&[("name", "frontend")])),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicationControllerSpec {
                replicas: Some(3),
                selector: Some(labels(&[("name", "frontend")])),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&[
                            ("name", "frontend"),
                            ("uses", "redisslave,redis-master"),
                        ])),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "php-redis".into(),
                            image: Some("kubernetes/example-guestbook-php-redis".into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                }),
                ..ReplicationControllerSpec::default()
            }),
            status: None,
        }
    }

    fn spec_mut(rc: &mut ReplicationController) -> &mut ReplicationControllerSpec {
        rc.spec.as_mut().expect("test rc has a spec")
    }

    #[test]
    fn the_2014_guestbook_controller_is_valid() {
        assert_valid(&validate_replication_controller(&rc()));
    }

    #[test]
    fn replicas_selector_and_template() {
        let mut c = rc();
        spec_mut(&mut c).replicas = Some(-1);
        spec_mut(&mut c).selector = None;
        spec_mut(&mut c).template = None;
        assert_exactly(
            &validate_replication_controller(&c),
            &[
                ("spec.replicas", Invalid),
                ("spec.selector", Required),
                ("spec.template", Required),
            ],
        );
        let mut c = rc();
        c.spec = None;
        assert_exactly(
            &validate_replication_controller(&c),
            &[("spec.selector", Required), ("spec.template", Required)],
        );
        let mut c = rc();
        spec_mut(&mut c).selector = Some(BTreeMap::new());
        assert_exactly(
            &validate_replication_controller(&c),
            &[("spec.selector", Required)],
        );
    }

    #[test]
    fn selector_must_be_valid_and_match_template_labels() {
        let mut c = rc();
        spec_mut(&mut c).selector = Some(labels(&[("name", "backend")]));
        let errs = validate_replication_controller(&c);
        assert_exactly(&errs, &[("spec.template.metadata.labels", Invalid)]);
        assert_eq!(
            errs[0].detail,
            "`selector` does not match template `labels`"
        );
        let mut c = rc();
        spec_mut(&mut c).selector = Some(labels(&[("bad key", "frontend")]));
        assert_exactly(
            &validate_replication_controller(&c),
            &[
                ("spec.selector", Invalid),
                ("spec.template.metadata.labels", Invalid),
            ],
        );
    }

    #[test]
    fn template_pod_spec_paths_and_restart_policy() {
        let mut c = rc();
        let template = spec_mut(&mut c).template.as_mut().expect("template");
        let pod = template.spec.as_mut().expect("spec");
        pod.containers[0].name = "Bad_Name".into();
        pod.containers[0].image = None;
        pod.restart_policy = Some("Never".into());
        pod.active_deadline_seconds = Some(10);
        assert_exactly(
            &validate_replication_controller(&c),
            &[
                ("spec.template.spec.containers[0].name", Invalid),
                ("spec.template.spec.containers[0].image", Required),
                ("spec.template.spec.restartPolicy", NotSupported),
                ("spec.template.spec.activeDeadlineSeconds", Invalid),
            ],
        );
        let mut c = rc();
        let template = spec_mut(&mut c).template.as_mut().expect("template");
        template.spec = None;
        assert_exactly(
            &validate_replication_controller(&c),
            &[("spec.template.spec.containers", Required)],
        );
    }

    #[test]
    fn update_keeps_name_and_validates_new() {
        let old = rc();
        let mut new = rc();
        spec_mut(&mut new).replicas = Some(5);
        assert_valid(&validate_replication_controller_update(&new, &old));
        new.metadata.name = Some("other".into());
        spec_mut(&mut new).replicas = Some(-5);
        assert_exactly(
            &validate_replication_controller_update(&new, &old),
            &[("metadata.name", Invalid), ("spec.replicas", Invalid)],
        );
    }

    #[test]
    fn status_update_counts() {
        let old = rc();
        let mut new = rc();
        new.status = Some(ReplicationControllerStatus {
            replicas: 3,
            ready_replicas: Some(2),
            available_replicas: Some(2),
            ..ReplicationControllerStatus::default()
        });
        assert_valid(&validate_replication_controller_status_update(&new, &old));
        new.status = Some(ReplicationControllerStatus {
            replicas: -1,
            ready_replicas: Some(1),
            available_replicas: Some(2),
            ..ReplicationControllerStatus::default()
        });
        assert_exactly(
            &validate_replication_controller_status_update(&new, &old),
            &[
                ("status.replicas", Invalid),
                ("status.readyReplicas", Invalid),
                ("status.availableReplicas", Invalid),
                ("status.availableReplicas", Invalid),
            ],
        );
    }
}
