//! `apps/v1` DaemonSets: selector, template, update strategy, status counts
//! (Kubernetes' `ValidateDaemonSet*` in `pkg/apis/apps/validation`).

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::labels::Selector;
use crate::status::FieldError;
use crate::v1::IntOrString;

use super::meta::validate_labels;
use super::names::{is_qualified_name, is_valid_label_value, name_is_dns_subdomain};
use super::pod::validate_controller_pod_template;
use super::{
    child, index, push_invalid, validate_nonnegative, validate_object_meta_update,
    validate_object_meta_with, FieldErrors, FIELD_IMMUTABLE_ERROR_MSG,
};

/// The update strategies a DaemonSet may name.
pub const DAEMON_SET_UPDATE_STRATEGIES: &[&str] = &["RollingUpdate", "OnDelete"];

/// Validates a DaemonSet for create: metadata (namespaced, a DNS subdomain
/// name) and spec: a non-empty valid selector that the template's labels
/// match, a valid template whose `restartPolicy` is `Always` and that sets
/// no `activeDeadlineSeconds`, `minReadySeconds` and `revisionHistoryLimit`
/// not negative, and a valid update strategy.
pub fn validate_daemon_set(ds: &DaemonSet) -> FieldErrors {
    let mut errs = validate_object_meta_with(&ds.metadata, true, name_is_dns_subdomain, "metadata");
    let empty = DaemonSetSpec::default();
    errs.extend(validate_spec(ds.spec.as_ref().unwrap_or(&empty)));
    errs
}

/// Validates an update: metadata immutables, the selector unchanged (it is
/// immutable in `apps/v1`), and the new DaemonSet valid.
pub fn validate_daemon_set_update(new: &DaemonSet, old: &DaemonSet) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    let selector = |ds: &DaemonSet| ds.spec.as_ref().map(|s| s.selector.clone());
    if selector(new) != selector(old) {
        let shown = new
            .spec
            .as_ref()
            .map(|s| format!("{:?}", s.selector))
            .unwrap_or_default();
        errs.push(FieldError::invalid(
            "spec.selector",
            shown,
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    errs.extend(validate_daemon_set(new));
    errs
}

/// Validates a `/status` update: metadata immutables and every count not
/// negative.
pub fn validate_daemon_set_status_update(new: &DaemonSet, old: &DaemonSet) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    let Some(status) = &new.status else {
        return errs;
    };
    for (field, value) in [
        (
            "currentNumberScheduled",
            Some(status.current_number_scheduled),
        ),
        ("numberMisscheduled", Some(status.number_misscheduled)),
        (
            "desiredNumberScheduled",
            Some(status.desired_number_scheduled),
        ),
        ("numberReady", Some(status.number_ready)),
        ("updatedNumberScheduled", status.updated_number_scheduled),
        ("numberAvailable", status.number_available),
        ("numberUnavailable", status.number_unavailable),
        ("collisionCount", status.collision_count),
    ] {
        validate_nonnegative(&mut errs, &format!("status.{field}"), value.map(i64::from));
    }
    validate_nonnegative(
        &mut errs,
        "status.observedGeneration",
        status.observed_generation,
    );
    errs
}

fn validate_spec(spec: &DaemonSetSpec) -> FieldErrors {
    let mut errs = Vec::new();
    errs.extend(validate_label_selector(&spec.selector, "spec.selector"));
    let selector_empty = spec
        .selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.is_empty())
        && spec
            .selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    if selector_empty {
        errs.push(FieldError::invalid(
            "spec.selector",
            "",
            "empty selector is invalid for daemonset",
        ));
    } else if let Ok(selector) = Selector::try_from(&spec.selector) {
        let labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        if !selector.matches(&labels) {
            let shown = labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                shown,
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs.extend(validate_controller_pod_template(
        &spec.template,
        "spec.template",
    ));
    let pod_spec = spec.template.spec.as_ref();
    if pod_spec.and_then(|s| s.active_deadline_seconds).is_some() {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in DaemonSet is not Supported",
        ));
    }
    validate_nonnegative(
        &mut errs,
        "spec.minReadySeconds",
        spec.min_ready_seconds.map(i64::from),
    );
    validate_nonnegative(
        &mut errs,
        "spec.revisionHistoryLimit",
        spec.revision_history_limit.map(i64::from),
    );
    if let Some(strategy) = &spec.update_strategy {
        errs.extend(validate_update_strategy(strategy, "spec.updateStrategy"));
    }
    errs
}

/// Kubernetes' `ValidateLabelSelector`: `matchLabels` as labels, each
/// expression's key a qualified name, `In`/`NotIn` with values,
/// `Exists`/`DoesNotExist` without.
pub fn validate_label_selector(selector: &LabelSelector, path: &str) -> FieldErrors {
    let mut errs = Vec::new();
    if let Some(labels) = &selector.match_labels {
        errs.extend(validate_labels(labels, &child(path, "matchLabels")));
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let at = index(&child(path, "matchExpressions"), i);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                child(&at, "values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                child(&at, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                child(&at, "operator"),
                other,
                "not a valid selector operator",
            )),
        }
        push_invalid(
            &mut errs,
            &child(&at, "key"),
            &e.key,
            is_qualified_name(&e.key),
        );
        for (j, v) in values.iter().enumerate() {
            push_invalid(
                &mut errs,
                &index(&child(&at, "values"), j),
                v,
                is_valid_label_value(v),
            );
        }
    }
    errs
}

fn validate_update_strategy(strategy: &DaemonSetUpdateStrategy, path: &str) -> FieldErrors {
    let mut errs = Vec::new();
    match strategy.type_.as_deref().unwrap_or("") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(rolling) = &strategy.rolling_update else {
                errs.push(FieldError::required(child(path, "rollingUpdate"), ""));
                return errs;
            };
            let at = child(path, "rollingUpdate");
            let unavailable = rolling.max_unavailable.as_ref();
            let surge = rolling.max_surge.as_ref();
            let has_unavailable = unavailable.is_some_and(|v| !is_zero(v));
            let has_surge = surge.is_some_and(|v| !is_zero(v));
            if let Some(v) = unavailable.filter(|_| has_unavailable) {
                errs.extend(validate_int_or_percent(v, &child(&at, "maxUnavailable")));
            }
            if let Some(v) = surge.filter(|_| has_surge) {
                errs.extend(validate_int_or_percent(v, &child(&at, "maxSurge")));
            }
            if has_unavailable && has_surge {
                errs.push(FieldError::invalid(
                    child(&at, "maxSurge"),
                    shown(surge),
                    "may not be set when maxUnavailable is non-zero",
                ));
            } else if !has_unavailable && !has_surge {
                errs.push(FieldError::invalid(
                    child(&at, "maxUnavailable"),
                    shown(unavailable),
                    "cannot be 0 when maxSurge is 0",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            path,
            other,
            DAEMON_SET_UPDATE_STRATEGIES,
        )),
    }
    errs
}

fn shown(value: Option<&IntOrString>) -> String {
    match value {
        Some(IntOrString::Int(i)) => i.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => "nil".into(),
    }
}

/// Whether an int-or-percent is zero (`0` or `"0%"`); a malformed string
/// is not (it is reported as malformed).
fn is_zero(value: &IntOrString) -> bool {
    match value {
        IntOrString::Int(i) => *i == 0,
        IntOrString::String(s) => {
            s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) == Some(0)
        }
    }
}

/// Kubernetes' `ValidatePositiveIntOrPercent` and
/// `IsNotMoreThan100Percent`.
fn validate_int_or_percent(value: &IntOrString, path: &str) -> FieldErrors {
    let mut errs = Vec::new();
    match value {
        IntOrString::Int(i) => validate_nonnegative(&mut errs, path, Some(i64::from(*i))),
        IntOrString::String(s) => {
            match s
                .strip_suffix('%')
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
            {
                None => errs.push(FieldError::invalid(
                    path,
                    s,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )),
                Some(n) if n > 100 => errs.push(FieldError::invalid(
                    path,
                    s,
                    "must not be greater than 100%",
                )),
                Some(_) => {}
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_exactly, assert_valid};
    use super::*;
    use crate::defaults::default_daemon_set;
    use crate::status::FieldErrorKind::{Forbidden, Invalid, NotSupported, Required};
    use serde_json::json;

    fn ds(patch: serde_json::Value) -> DaemonSet {
        let mut base = json!({
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
            },
        });
        crate::patch::apply_merge_patch(&mut base, &patch);
        let mut ds: DaemonSet = serde_json::from_value(base).unwrap();
        default_daemon_set(&mut ds);
        ds
    }

    #[test]
    fn a_defaulted_daemon_set_is_valid() {
        assert_valid(&validate_daemon_set(&ds(json!({}))));
    }

    #[test]
    fn the_selector_is_required_and_must_match_the_template() {
        assert_exactly(
            &validate_daemon_set(&ds(json!({"spec": {"selector": {"matchLabels": null}}}))),
            &[("spec.selector", Invalid)],
        );
        assert_exactly(
            &validate_daemon_set(&ds(
                json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}),
            )),
            &[("spec.template.metadata.labels", Invalid)],
        );
        assert_exactly(
            &validate_daemon_set(&ds(json!({"spec": {"selector": {"matchExpressions": [
                {"key": "app", "operator": "In"},
                {"key": "b", "operator": "Exists", "values": ["x"]},
                {"key": "c", "operator": "Near", "values": ["x"]},
            ]}}}))),
            &[
                ("spec.selector.matchExpressions[0].values", Required),
                ("spec.selector.matchExpressions[1].values", Forbidden),
                ("spec.selector.matchExpressions[2].operator", Invalid),
            ],
        );
    }

    #[test]
    fn the_template_restarts_always_and_has_no_deadline() {
        assert_exactly(
            &validate_daemon_set(&ds(json!({"spec": {"template": {"spec": {
                "restartPolicy": "Never", "activeDeadlineSeconds": 5}}}}))),
            &[
                ("spec.template.spec.restartPolicy", NotSupported),
                ("spec.template.spec.activeDeadlineSeconds", Forbidden),
            ],
        );
    }

    #[test]
    fn update_strategies_follow_kubernetes_rules() {
        let with = |strategy: serde_json::Value| {
            let mut d = ds(json!({}));
            d.spec.as_mut().unwrap().update_strategy =
                Some(serde_json::from_value(strategy).unwrap());
            validate_daemon_set(&d)
        };
        assert_valid(&with(json!({"type": "OnDelete"})));
        assert_valid(&with(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}}),
        ));
        assert_valid(&with(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
        ));
        assert_exactly(
            &with(json!({"type": "Recreate"})),
            &[("spec.updateStrategy", NotSupported)],
        );
        assert_exactly(
            &with(json!({"type": "RollingUpdate"})),
            &[("spec.updateStrategy.rollingUpdate", Required)],
        );
        assert_exactly(
            &with(
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}),
            ),
            &[("spec.updateStrategy.rollingUpdate.maxUnavailable", Invalid)],
        );
        assert_exactly(
            &with(
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}),
            ),
            &[("spec.updateStrategy.rollingUpdate.maxSurge", Invalid)],
        );
        assert_exactly(
            &with(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "120%"}})),
            &[("spec.updateStrategy.rollingUpdate.maxUnavailable", Invalid)],
        );
        assert_exactly(
            &with(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "x"}})),
            &[("spec.updateStrategy.rollingUpdate.maxUnavailable", Invalid)],
        );
        assert_exactly(
            &with(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": -1}})),
            &[("spec.updateStrategy.rollingUpdate.maxUnavailable", Invalid)],
        );
    }

    #[test]
    fn the_selector_is_immutable_and_counts_not_negative() {
        let old = ds(json!({}));
        let mut new = ds(json!({"spec": {"selector": {"matchLabels": {"tier": "x"}},
            "template": {"metadata": {"labels": {"tier": "x"}}}}}));
        new.metadata.resource_version = old.metadata.resource_version.clone();
        assert_exactly(
            &validate_daemon_set_update(&new, &old),
            &[("spec.selector", Invalid)],
        );
        let mut status = old.clone();
        status.status = Some(
            serde_json::from_value(json!({
            "currentNumberScheduled": 1, "numberMisscheduled": -1,
            "desiredNumberScheduled": 1, "numberReady": 0}))
            .unwrap(),
        );
        assert_exactly(
            &validate_daemon_set_status_update(&status, &old),
            &[("status.numberMisscheduled", Invalid)],
        );
    }
}
