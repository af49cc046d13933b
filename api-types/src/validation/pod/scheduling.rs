//! Tolerations: keys, operators and effects on create, and on update only
//! additions (and `tolerationSeconds` changes) of the existing ones.

use k8s_openapi::api::core::v1::Toleration;

use super::s;
use crate::status::FieldError;
use crate::validation::names::{is_qualified_name, is_valid_label_value};
use crate::validation::{child, index, push_invalid, FieldErrors};

const TAINT_EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "PreferNoSchedule"];
const TOLERATION_OPERATORS: &[&str] = &["Equal", "Exists"];

pub(super) fn validate_tolerations(tolerations: &[Toleration], path: &str, errs: &mut FieldErrors) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = index(path, i);
        let key = s(&t.key);
        let operator = s(&t.operator);
        let effect = s(&t.effect);
        if !key.is_empty() {
            push_invalid(errs, &child(&p, "key"), key, is_qualified_name(key));
        } else if operator != "Exists" {
            errs.push(FieldError::invalid(
                child(&p, "operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values \
                 and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "" | "Equal" => {
                let msgs = is_valid_label_value(s(&t.value));
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, "operator"),
                        s(&t.value),
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !s(&t.value).is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, "operator"),
                        s(&t.value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(&p, "operator"),
                other,
                TOLERATION_OPERATORS,
            )),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                child(&p, "effect"),
                effect,
                TAINT_EFFECTS,
            ));
        }
    }
}

/// Existing tolerations may not be removed or changed (other than their
/// `tolerationSeconds`); new ones may be added.
pub(super) fn validate_only_added_tolerations(
    new: &[Toleration],
    old: &[Toleration],
    path: &str,
    errs: &mut FieldErrors,
) {
    for o in old {
        let found = new.iter().any(|n| {
            let mut o = o.clone();
            o.toleration_seconds = n.toleration_seconds;
            o == *n
        });
        if !found {
            errs.push(FieldError::forbidden(
                path,
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            return;
        }
    }
}
