//! Environment: `env` names and their sources (the downward API's fields and
//! resources, ConfigMap and Secret keys) and `envFrom`.

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVarSource, ObjectFieldSelector, ResourceFieldSelector,
};

use crate::status::FieldError;
use crate::v1::EnvVar;
use crate::validation::names::{
    is_config_map_key, is_env_var_name, is_qualified_name, name_is_dns_subdomain,
};
use crate::validation::quantity::{quantity_error, ParsedQuantity};
use crate::validation::{child, index, push_invalid, unset, FieldErrors};

/// Downward API fields an env var may read (besides subscripted labels and
/// annotations).
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_REFS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

pub(super) fn validate_env(env: &[EnvVar], path: &str, errs: &mut FieldErrors) {
    for (i, ev) in env.iter().enumerate() {
        let p = index(path, i);
        if ev.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else {
            push_invalid(
                errs,
                &child(&p, "name"),
                &ev.name,
                is_env_var_name(&ev.name),
            );
        }
        if let Some(source) = &ev.value_from {
            validate_env_var_source(
                source,
                !unset(ev.value.as_ref()),
                &child(&p, "valueFrom"),
                errs,
            );
        }
    }
}

fn validate_env_var_source(
    source: &EnvVarSource,
    has_value: bool,
    path: &str,
    errs: &mut FieldErrors,
) {
    let mut sources = 0;
    if let Some(field_ref) = &source.field_ref {
        sources += 1;
        validate_object_field_selector(field_ref, ENV_FIELD_PATHS, &child(path, "fieldRef"), errs);
    }
    if let Some(resource_ref) = &source.resource_field_ref {
        sources += 1;
        validate_resource_field_selector(
            resource_ref,
            false,
            &child(path, "resourceFieldRef"),
            errs,
        );
    }
    if let Some(r) = &source.config_map_key_ref {
        sources += 1;
        validate_key_selector(&r.name, &r.key, &child(path, "configMapKeyRef"), errs);
    }
    if let Some(r) = &source.secret_key_ref {
        sources += 1;
        validate_key_selector(&r.name, &r.key, &child(path, "secretKeyRef"), errs);
    }
    if sources == 0 {
        errs.push(FieldError::invalid(
            path,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or \
             `secretKeyRef`",
        ));
    } else if has_value {
        errs.push(FieldError::invalid(
            path,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if sources > 1 {
        errs.push(FieldError::invalid(
            path,
            "",
            "may not have more than one field specified at a time",
        ));
    }
}

fn validate_key_selector(name: &str, key: &str, path: &str, errs: &mut FieldErrors) {
    push_invalid(
        errs,
        &child(path, "name"),
        name,
        name_is_dns_subdomain(name, false),
    );
    if key.is_empty() {
        errs.push(FieldError::required(child(path, "key"), ""));
    } else {
        push_invalid(errs, &child(path, "key"), key, is_config_map_key(key));
    }
}

pub(super) fn validate_object_field_selector(
    selector: &ObjectFieldSelector,
    allowed: &[&str],
    path: &str,
    errs: &mut FieldErrors,
) {
    let fp_path = child(path, "fieldPath");
    let fp = selector.field_path.as_str();
    if let Some(version) = selector.api_version.as_ref().filter(|v| !v.is_empty()) {
        if version != "v1" {
            errs.push(FieldError::not_supported(
                child(path, "apiVersion"),
                version,
                &["v1"],
            ));
            return;
        }
    }
    if fp.is_empty() {
        errs.push(FieldError::required(fp_path, ""));
        return;
    }
    if allowed.contains(&fp) {
        return;
    }
    for (prefix, lowercase) in [("metadata.labels", false), ("metadata.annotations", true)] {
        if let Some(subscript) = fp
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
        {
            let subject = if lowercase {
                subscript.to_ascii_lowercase()
            } else {
                subscript.to_string()
            };
            push_invalid(errs, &fp_path, fp, is_qualified_name(&subject));
            return;
        }
    }
    errs.push(FieldError::not_supported(fp_path, fp, allowed));
}

pub(super) fn validate_resource_field_selector(
    selector: &ResourceFieldSelector,
    volume: bool,
    path: &str,
    errs: &mut FieldErrors,
) {
    if volume && unset(selector.container_name.as_ref()) {
        errs.push(FieldError::required(child(path, "containerName"), ""));
    }
    let resource = selector.resource.as_str();
    if resource.is_empty() {
        errs.push(FieldError::required(child(path, "resource"), ""));
    } else if !RESOURCE_FIELD_REFS.contains(&resource)
        && !resource.starts_with("limits.hugepages-")
        && !resource.starts_with("requests.hugepages-")
    {
        errs.push(FieldError::not_supported(
            child(path, "resource"),
            resource,
            RESOURCE_FIELD_REFS,
        ));
    }
    if let Some(divisor) = &selector.divisor {
        match ParsedQuantity::parse(&divisor.0) {
            Err(e) => errs.push(quantity_error(child(path, "divisor"), &divisor.0, &e)),
            Ok(q) if q.is_negative() || q.is_zero() => errs.push(FieldError::invalid(
                child(path, "divisor"),
                &divisor.0,
                "must be greater than 0",
            )),
            Ok(_) => {}
        }
    }
}

pub(super) fn validate_env_from(sources: &[EnvFromSource], path: &str, errs: &mut FieldErrors) {
    for (i, source) in sources.iter().enumerate() {
        let p = index(path, i);
        let mut count = 0;
        if let Some(r) = &source.config_map_ref {
            count += 1;
            let np = child(&child(&p, "configMapRef"), "name");
            push_invalid(errs, &np, &r.name, name_is_dns_subdomain(&r.name, false));
        }
        if let Some(r) = &source.secret_ref {
            count += 1;
            let np = child(&child(&p, "secretRef"), "name");
            push_invalid(errs, &np, &r.name, name_is_dns_subdomain(&r.name, false));
        }
        if count == 0 {
            errs.push(FieldError::invalid(
                &p,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if count > 1 {
            errs.push(FieldError::invalid(
                &p,
                "",
                "may not have more than one field specified at a time",
            ));
        }
        if let Some(prefix) = source.prefix.as_ref().filter(|p| !p.is_empty()) {
            push_invalid(errs, &child(&p, "prefix"), prefix, is_env_var_name(prefix));
        }
    }
}
