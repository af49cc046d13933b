//! Container resources: names, quantities and requests against limits.

use crate::status::FieldError;
use crate::v1::ResourceRequirements;
use crate::validation::names::is_qualified_name;
use crate::validation::quantity::{quantity_error, ParsedQuantity};
use crate::validation::{child, key, push_invalid, FieldErrors, IS_NEGATIVE_ERROR_MSG};

const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "ephemeral-storage", "memory"];

/// Validates a container's resources: names (`cpu`, `memory`,
/// `ephemeral-storage`, `hugepages-*` or a `domain/name` extended resource),
/// quantities (well-formed, not negative, whole for extended resources) and
/// requests ≤ limits (equal for hugepages and extended resources).
pub fn validate_resource_requirements(res: &ResourceRequirements, path: &str) -> FieldErrors {
    let mut errs = Vec::new();
    let limits_path = child(path, "limits");
    let requests_path = child(path, "requests");
    let mut limits = std::collections::BTreeMap::new();
    for (name, q) in res.limits.iter().flatten() {
        let p = key(&limits_path, name);
        validate_container_resource_name(name, &p, &mut errs);
        if let Some(parsed) = validate_quantity_value(name, &q.0, &p, &mut errs) {
            limits.insert(name.as_str(), (parsed, q.0.as_str()));
        }
    }
    for (name, q) in res.requests.iter().flatten() {
        let p = key(&requests_path, name);
        validate_container_resource_name(name, &p, &mut errs);
        let Some(request) = validate_quantity_value(name, &q.0, &p, &mut errs) else {
            continue;
        };
        let overcommit = overcommit_allowed(name);
        match limits.get(name.as_str()) {
            Some((limit, limit_text)) => {
                if !overcommit && request != *limit {
                    errs.push(FieldError::invalid(
                        &requests_path,
                        &q.0,
                        format!("must be equal to {name} limit of {limit_text}"),
                    ));
                } else if request > *limit {
                    errs.push(FieldError::invalid(
                        &requests_path,
                        &q.0,
                        format!("must be less than or equal to {name} limit of {limit_text}"),
                    ));
                }
            }
            None => {
                if !overcommit && res.limits.as_ref().is_none_or(|l| !l.contains_key(name)) {
                    errs.push(FieldError::required(
                        &limits_path,
                        "Limit must be set for non overcommitable resources",
                    ));
                }
            }
        }
    }
    errs
}

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !name.starts_with("hugepages-")
}

fn validate_container_resource_name(name: &str, path: &str, errs: &mut FieldErrors) {
    let msgs = is_qualified_name(name);
    if !msgs.is_empty() {
        push_invalid(errs, path, name, msgs);
        return;
    }
    if !name.contains('/') {
        if !STANDARD_CONTAINER_RESOURCES.contains(&name) && !name.starts_with("hugepages-") {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && name.starts_with("requests.") {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

/// Parses one quantity of a resource list; `None` (with an error) when it is
/// malformed.
fn validate_quantity_value(
    name: &str,
    text: &str,
    path: &str,
    errs: &mut FieldErrors,
) -> Option<ParsedQuantity> {
    let q = match ParsedQuantity::parse(text) {
        Ok(q) => q,
        Err(e) => {
            errs.push(quantity_error(path, text, &e));
            return None;
        }
    };
    if q.is_negative() {
        errs.push(FieldError::invalid(path, text, IS_NEGATIVE_ERROR_MSG));
    }
    if !is_native_resource(name) && !q.is_integer() {
        errs.push(FieldError::invalid(path, text, "must be an integer"));
    }
    Some(q)
}
