//! ConfigMaps and Secrets, as Kubernetes' `ValidateConfigMap` and
//! `ValidateSecret` check them: keys, total size, Secret types, and
//! `immutable`.

use std::collections::BTreeMap;

use crate::status::{FieldError, FieldErrorKind};
use crate::v1::{ConfigMap, Secret};

use super::names::{is_config_map_key, name_is_dns_subdomain};
use super::{
    validate_object_meta_update, validate_object_meta_with, FieldErrors, FIELD_IMMUTABLE_ERROR_MSG,
};

/// The most data a ConfigMap or Secret may hold (Kubernetes'
/// `MaxSecretSize`, used for both): etcd's values are meant to be small.
pub const MAX_CONFIG_SIZE_BYTES: usize = 1024 * 1024;

fn check_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &str, errs: &mut FieldErrors) {
    for key in keys {
        for message in is_config_map_key(key) {
            errs.push(FieldError::invalid(format!("{path}[{key}]"), key, message));
        }
    }
}

fn too_long(path: &str) -> FieldError {
    FieldError::new(
        FieldErrorKind::TooLong,
        path,
        None,
        format!("must have at most {MAX_CONFIG_SIZE_BYTES} bytes"),
    )
}

/// Validates a ConfigMap: metadata, keys of `data` and `binaryData`, no
/// key in both, and at most [`MAX_CONFIG_SIZE_BYTES`] in all.
pub fn validate_config_map(config_map: &ConfigMap) -> FieldErrors {
    let mut errs = validate_object_meta_with(
        &config_map.metadata,
        true,
        name_is_dns_subdomain,
        "metadata",
    );
    let empty = BTreeMap::new();
    let data = config_map.data.as_ref().unwrap_or(&empty);
    let binary = config_map.binary_data.as_ref();
    check_keys(data.keys(), "data", &mut errs);
    let mut size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if let Some(binary) = binary {
        check_keys(binary.keys(), "binaryData", &mut errs);
        for (key, value) in binary {
            if data.contains_key(key) {
                errs.push(FieldError::invalid(
                    format!("binaryData[{key}]"),
                    key,
                    "duplicate of key present in data",
                ));
            }
            size += key.len() + value.0.len();
        }
    }
    if size > MAX_CONFIG_SIZE_BYTES {
        errs.push(too_long(""));
    }
    errs
}

/// What an update of an `immutable` object may not do: unset `immutable`
/// or change any of `fields` (each with whether it changed).
fn frozen_changes(old: Option<bool>, new: Option<bool>, fields: &[(&str, bool)]) -> FieldErrors {
    if old != Some(true) {
        return Vec::new();
    }
    let frozen =
        |field: &str| FieldError::forbidden(field, "field is immutable when `immutable` is set");
    let mut errs: FieldErrors = fields
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(field, _)| frozen(field))
        .collect();
    if new != Some(true) {
        errs.insert(0, frozen("immutable"));
    }
    errs
}

/// Validates a ConfigMap update: the new one's own rules, and nothing of
/// an `immutable` one's data changed (nor `immutable` unset).
pub fn validate_config_map_update(new: &ConfigMap, old: &ConfigMap) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(frozen_changes(
        old.immutable,
        new.immutable,
        &[
            ("data", new.data != old.data),
            ("binaryData", new.binary_data != old.binary_data),
        ],
    ));
    errs.extend(validate_config_map(new));
    errs
}

/// The keys each built-in Secret type requires (Kubernetes'
/// `ValidateSecret`).
fn required_keys(secret_type: &str) -> &'static [&'static str] {
    match secret_type {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    }
}

/// Validates a Secret as stored (`stringData` already merged into
/// `data`): metadata, keys, size, and what its type requires.
pub fn validate_secret(secret: &Secret) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&secret.metadata, true, name_is_dns_subdomain, "metadata");
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    check_keys(data.keys(), "data", &mut errs);
    if let Some(string_data) = &secret.string_data {
        check_keys(string_data.keys(), "stringData", &mut errs);
    }
    let size: usize = data.iter().map(|(k, v)| k.len() + v.0.len()).sum();
    if size > MAX_CONFIG_SIZE_BYTES {
        errs.push(too_long("data"));
    }
    let secret_type = secret.type_.as_deref().unwrap_or("Opaque");
    for key in required_keys(secret_type) {
        if !data.contains_key(*key) {
            errs.push(FieldError::required(format!("data[{key}]"), ""));
        }
    }
    match secret_type {
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errs.push(FieldError::required(
                "data[username]",
                "either username or password is required",
            ));
        }
        "kubernetes.io/service-account-token"
            if !secret
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("kubernetes.io/service-account.name")) =>
        {
            errs.push(FieldError::required(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "",
            ));
        }
        _ => {}
    }
    errs
}

/// Validates a Secret update: the new one's own rules, `type` unchanged,
/// and nothing of an `immutable` one's data changed.
pub fn validate_secret_update(new: &Secret, old: &Secret) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    let kind = |s: &Secret| s.type_.clone().unwrap_or_else(|| "Opaque".into());
    if kind(new) != kind(old) {
        errs.push(FieldError::invalid(
            "type",
            kind(new),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    errs.extend(frozen_changes(
        old.immutable,
        new.immutable,
        &[("data", new.data != old.data)],
    ));
    errs.extend(validate_secret(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config_map(value: serde_json::Value) -> ConfigMap {
        serde_json::from_value(value).expect("a config map")
    }

    fn secret(value: serde_json::Value) -> Secret {
        serde_json::from_value(value).expect("a secret")
    }

    fn fields(errs: &FieldErrors) -> Vec<&str> {
        errs.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn config_map_keys_are_file_names() {
        use super::is_config_map_key;
        assert!(is_config_map_key("app.properties").is_empty());
        assert!(is_config_map_key("KEY_NAME-1").is_empty());
        assert!(!is_config_map_key("a/b").is_empty());
        assert!(!is_config_map_key("..data").is_empty());
        assert!(!is_config_map_key(".").is_empty());
        assert!(!is_config_map_key("").is_empty());
        assert!(!is_config_map_key(&"k".repeat(254)).is_empty());
    }

    #[test]
    fn a_config_map_is_checked_for_keys_duplicates_and_size() {
        let ok = config_map(json!({"metadata": {"name": "c", "namespace": "d"},
            "data": {"a": "1"}, "binaryData": {"b": "AAE="}}));
        assert!(validate_config_map(&ok).is_empty());
        let bad = config_map(json!({"metadata": {"name": "c", "namespace": "d"},
            "data": {"a/b": "1", "x": "y"}, "binaryData": {"x": "AAE="}}));
        assert_eq!(
            fields(&validate_config_map(&bad)),
            ["data[a/b]", "binaryData[x]"]
        );
        let big = config_map(json!({"metadata": {"name": "c", "namespace": "d"},
            "data": {"a": "x".repeat(MAX_CONFIG_SIZE_BYTES)}}));
        let errs = validate_config_map(&big);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].kind, FieldErrorKind::TooLong);
    }

    #[test]
    fn an_immutable_config_map_keeps_its_data() {
        let old = config_map(json!({"metadata": {"name": "c", "namespace": "d"},
            "data": {"a": "1"}, "immutable": true}));
        let mut new = old.clone();
        new.data = Some([("a".to_string(), "2".to_string())].into());
        assert_eq!(fields(&validate_config_map_update(&new, &old)), ["data"]);
        let mut unset = old.clone();
        unset.immutable = Some(false);
        assert_eq!(
            fields(&validate_config_map_update(&unset, &old)),
            ["immutable"]
        );
        assert!(validate_config_map_update(&old, &old).is_empty());
    }

    #[test]
    fn a_secret_has_what_its_type_requires_and_keeps_its_type() {
        let tls = secret(json!({"metadata": {"name": "s", "namespace": "d"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "AA=="}}));
        assert_eq!(fields(&validate_secret(&tls)), ["data[tls.key]"]);
        let opaque = secret(json!({"metadata": {"name": "s", "namespace": "d"},
            "type": "Opaque", "data": {"a": "AA=="}}));
        assert!(validate_secret(&opaque).is_empty());
        let mut retyped = opaque.clone();
        retyped.type_ = Some("kubernetes.io/basic-auth".into());
        retyped.data = Some(
            [(
                "username".to_string(),
                k8s_openapi::ByteString(b"u".to_vec()),
            )]
            .into(),
        );
        assert_eq!(fields(&validate_secret_update(&retyped, &opaque)), ["type"]);
    }
}
