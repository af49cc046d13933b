//! Validation of v1 objects: every field error with its path.
//!
//! Each `validate_*` function returns *every* [`FieldError`] it finds (an
//! empty list means valid), each with its v1 field path
//! (`spec.containers[0].ports[1].containerPort`) and the kind and message
//! Kubernetes gives for it. The apiserver runs
//! [`defaults`](crate::defaults) first, then validation, then stores.
//!
//! # Rules followed
//!
//! Modern Kubernetes (`pkg/apis/core/validation`, `apimachinery`'s
//! `util/validation`), with these deliberate differences:
//!
//! - Fields that [`defaults`](crate::defaults) fills in (`restartPolicy`,
//!   `dnsPolicy`, port `protocol`, `imagePullPolicy`, probe thresholds,
//!   service `type`, `sessionAffinity`, replicas...) may be absent: absence is
//!   not an error, a bad value is. Kubernetes validates only defaulted objects
//!   and reports them as `Required`.
//! - What 2014 (`v1beta1`) manifests contain is accepted: pod, replication
//!   controller and event names may contain upper case letters
//!   (`frontendController`; v0.5 did not check those names at all), and label
//!   values in `metadata.labels` and template labels may be comma-separated
//!   lists of valid values (`uses: redisslave,redis-master`). Selectors and
//!   `nodeSelector` keep the strict rules.
//! - Endpoint addresses may be loopback addresses (the apiserver, bound to
//!   127.0.0.1 by default, advertises itself there for the `kubernetes`
//!   service); unspecified and link-local ones are still refused.
//! - The node port range is checked here ([`NODE_PORT_RANGE`]), where
//!   Kubernetes leaves it to its allocator.
//! - Each `validate_*_update` includes the full validation of the new
//!   object (as Kubernetes' do): call it instead of, not after,
//!   `validate_*`, or errors are reported twice.
//! - An update need not carry `resourceVersion` (an unconditional update, as
//!   `DESIGN.md` asks), `uid` or `creationTimestamp` (the apiserver keeps the
//!   stored ones); when it carries them they may not change.
//!
//! Name helpers ([`is_dns1123_label`] and friends) return the messages
//! Kubernetes returns, so error texts match what its users know.

mod config;
mod controller;
mod daemonset;
mod endpoints;
mod event;
mod ingress;
mod lease;
mod meta;
mod names;
mod namespace;
mod node;
mod pod;
pub mod quantity;
mod rbac;
mod service;

pub use config::{
    validate_config_map, validate_config_map_update, validate_secret, validate_secret_update,
    MAX_CONFIG_SIZE_BYTES,
};
pub use controller::{
    validate_replication_controller, validate_replication_controller_status_update,
    validate_replication_controller_update,
};
pub use daemonset::{
    validate_daemon_set, validate_daemon_set_status_update, validate_daemon_set_update,
    validate_label_selector, DAEMON_SET_UPDATE_STRATEGIES,
};
pub use endpoints::{validate_endpoints, validate_endpoints_update};
pub use event::{validate_binding, validate_event};
pub use ingress::{
    is_wildcard_dns1123_subdomain, validate_ingress, validate_ingress_class,
    validate_ingress_class_update, validate_ingress_status_update, validate_ingress_update,
    INGRESS_CLASS_ANNOTATION, PATH_TYPES,
};
pub use lease::{validate_lease, validate_lease_update};
pub use meta::{
    validate_annotations, validate_labels, validate_object_meta, validate_object_meta_update,
    validate_object_meta_with, NameValidator, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES,
};
pub use names::{
    generated_name, inclusive_range_error, is_config_map_key, is_dns1035_label, is_dns1123_label,
    is_dns1123_subdomain, is_env_var_name, is_http_header_name, is_legacy_label_value,
    is_non_special_ip, is_qualified_name, is_valid_ip, is_valid_label_value, is_valid_port_name,
    is_valid_port_num, name_is_dns1035_label, name_is_dns_label, name_is_dns_subdomain,
    name_is_dns_subdomain_any_case, DNS1035_LABEL_MAX_LENGTH, DNS1123_LABEL_MAX_LENGTH,
    DNS1123_SUBDOMAIN_MAX_LENGTH, LABEL_VALUE_MAX_LENGTH, PORT_NAME_MAX_LENGTH,
    QUALIFIED_NAME_MAX_LENGTH,
};
pub use namespace::{validate_namespace, validate_namespace_update};
pub use node::{validate_node, validate_node_update};
pub use pod::{
    validate_pod, validate_pod_spec, validate_pod_status_update, validate_pod_template_spec,
    validate_pod_update, validate_resource_requirements,
};
pub use rbac::{
    name_is_path_segment, validate_cluster_role, validate_cluster_role_binding,
    validate_cluster_role_binding_update, validate_cluster_role_update, validate_role,
    validate_role_binding, validate_role_binding_update, validate_role_update, RBAC_GROUP,
};
pub use service::{validate_service, validate_service_update, NODE_PORT_RANGE};

use crate::status::FieldError;

/// The field errors of one validation; empty when the object is valid.
pub type FieldErrors = Vec<FieldError>;

/// `base.name` (or `name` at the root).
pub(crate) fn child(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

/// `base[i]`.
pub(crate) fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// `base[key]`, as Kubernetes writes map keys in paths (`limits[cpu]`).
pub(crate) fn key(base: &str, key: &str) -> String {
    format!("{base}[{key}]")
}

/// An optional string that is absent or empty (Go's zero value).
pub(crate) fn unset(value: Option<&String>) -> bool {
    value.is_none_or(|v| v.is_empty())
}

/// Pushes `Invalid(path, value, msg)` for each message.
pub(crate) fn push_invalid(errs: &mut FieldErrors, path: &str, value: &str, msgs: Vec<String>) {
    errs.extend(
        msgs.into_iter()
            .map(|msg| FieldError::invalid(path, value, msg)),
    );
}

/// The message for a negative value where Kubernetes wants `>= 0`.
pub(crate) const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";

/// The message Kubernetes gives for an immutable field that changed.
pub(crate) const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";

/// `Invalid` when `value < 0`.
pub(crate) fn validate_nonnegative(errs: &mut FieldErrors, path: &str, value: Option<i64>) {
    if let Some(v) = value {
        if v < 0 {
            errs.push(FieldError::invalid(path, v, IS_NEGATIVE_ERROR_MSG));
        }
    }
}

/// The protocols a port may use.
pub(crate) const SUPPORTED_PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// Checks an optional port protocol: absent is fine (defaults to TCP).
pub(crate) fn validate_protocol(errs: &mut FieldErrors, path: &str, protocol: Option<&String>) {
    if let Some(p) = protocol.filter(|p| !p.is_empty()) {
        if !SUPPORTED_PORT_PROTOCOLS.contains(&p.as_str()) {
            errs.push(FieldError::not_supported(path, p, SUPPORTED_PORT_PROTOCOLS));
        }
    }
}

/// A port's `name` (endpoints and service ports alike): a DNS label, and
/// required when `require_name` (there are several ports to tell apart).
pub(crate) fn validate_port_name(
    errs: &mut FieldErrors,
    path: &str,
    name: &str,
    require_name: bool,
) {
    let name_path = child(path, "name");
    if name.is_empty() {
        if require_name {
            errs.push(FieldError::required(name_path, ""));
        }
    } else {
        push_invalid(errs, &name_path, name, is_dns1123_label(name));
    }
}

/// A port's `port` (1 to 65535) and `protocol` (endpoints and service ports
/// alike).
pub(crate) fn validate_port_number_and_protocol(
    errs: &mut FieldErrors,
    path: &str,
    port: i32,
    protocol: Option<&String>,
) {
    push_invalid(
        errs,
        &child(path, "port"),
        &port.to_string(),
        is_valid_port_num(port),
    );
    validate_protocol(errs, &child(path, "protocol"), protocol);
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Assertions shared by the validation tests.
    use crate::status::{FieldError, FieldErrorKind};

    /// Asserts that `errs` holds an error of `kind` at exactly `field`.
    #[track_caller]
    pub fn assert_has(errs: &[FieldError], field: &str, kind: FieldErrorKind) {
        assert!(
            errs.iter().any(|e| e.field == field && e.kind == kind),
            "expected {kind:?} at {field}, got:\n{}",
            render(errs)
        );
    }

    /// Asserts that `errs` is exactly the given (field, kind) pairs, in any order.
    #[track_caller]
    pub fn assert_exactly(errs: &[FieldError], expected: &[(&str, FieldErrorKind)]) {
        let mut got: Vec<(String, FieldErrorKind)> =
            errs.iter().map(|e| (e.field.clone(), e.kind)).collect();
        let mut want: Vec<(String, FieldErrorKind)> = expected
            .iter()
            .map(|(f, k)| ((*f).to_string(), *k))
            .collect();
        got.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(format!("{:?}", a.1).cmp(&format!("{:?}", b.1)))
        });
        want.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(format!("{:?}", a.1).cmp(&format!("{:?}", b.1)))
        });
        assert_eq!(got, want, "errors were:\n{}", render(errs));
    }

    /// Asserts there are no errors.
    #[track_caller]
    pub fn assert_valid(errs: &[FieldError]) {
        assert!(
            errs.is_empty(),
            "expected no errors, got:\n{}",
            render(errs)
        );
    }

    fn render(errs: &[FieldError]) -> String {
        errs.iter().map(|e| format!("  {e}\n")).collect::<String>()
    }
}
