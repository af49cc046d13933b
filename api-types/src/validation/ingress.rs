//! `networking.k8s.io/v1` Ingresses and IngressClasses, as Kubernetes'
//! `pkg/apis/networking/validation` checks them.

use crate::status::FieldError;
use crate::v1::{Ingress, IngressBackend, IngressClass, IngressRule, IngressTLS};

use super::names::{
    is_dns1123_subdomain, is_valid_ip, is_valid_port_name, is_valid_port_num,
    name_is_dns1035_label, name_is_dns_subdomain,
};
use super::{
    child, index, push_invalid, validate_object_meta_update, validate_object_meta_with,
    FieldErrors, FIELD_IMMUTABLE_ERROR_MSG,
};

/// The `pathType`s an HTTP path may have.
pub const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

/// The annotation that named an Ingress's class before `ingressClassName`.
pub const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Sequences an `Exact` or `Prefix` path may not contain: they would let a
/// path mean something else after normalisation by the backend.
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];

/// Longest `spec.controller` of an IngressClass.
const MAX_CONTROLLER_LEN: usize = 250;

/// Kubernetes' `IsWildcardDNS1123Subdomain`: `*.` then a DNS subdomain.
pub fn is_wildcard_dns1123_subdomain(value: &str) -> Vec<String> {
    const MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    let mut msgs = Vec::new();
    if value.len() > 253 {
        msgs.push("must be no more than 253 characters".to_string());
    }
    match value.strip_prefix("*.") {
        Some(rest) if !rest.is_empty() && is_dns1123_subdomain(rest).is_empty() => {}
        _ => msgs.push(MSG.to_string()),
    }
    msgs
}

/// Kubernetes' `IsValidPathSegmentName`: not `.` or `..`, no `/` or `%`.
fn path_segment_errors(value: &str) -> Vec<String> {
    if value == "." || value == ".." {
        return vec![format!("may not be '{value}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| value.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// Validates an Ingress: metadata (namespaced, the name a DNS subdomain),
/// the spec (a default backend or rules; hosts DNS names or `*.` wildcards,
/// never IPs; every path with a `pathType` and, for `Exact` and `Prefix`,
/// absolute and normalised; each backend a service (name plus port name
/// xor number) xor a resource; TLS hosts and secret names), the class name
/// and its legacy annotation agreeing, and the status.
pub fn validate_ingress(ingress: &Ingress) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&ingress.metadata, true, name_is_dns_subdomain, "metadata");
    let spec = ingress.spec.clone().unwrap_or_default();
    let rules = spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && spec.default_backend.is_none() {
        errs.push(FieldError::invalid(
            "spec",
            "[]",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = &spec.default_backend {
        errs.extend(validate_backend(backend, "spec.defaultBackend"));
    }
    for (i, rule) in rules.iter().enumerate() {
        errs.extend(validate_rule(rule, &index("spec.rules", i)));
    }
    for (i, tls) in spec.tls.as_deref().unwrap_or_default().iter().enumerate() {
        errs.extend(validate_tls(tls, &index("spec.tls", i)));
    }
    if let Some(class) = &spec.ingress_class_name {
        push_invalid(
            &mut errs,
            "spec.ingressClassName",
            class,
            name_is_dns_subdomain(class, false),
        );
        let annotation = ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(INGRESS_CLASS_ANNOTATION));
        if let Some(annotation) = annotation.filter(|a| *a != class) {
            errs.push(FieldError::invalid(
                format!("annotations.{INGRESS_CLASS_ANNOTATION}"),
                annotation,
                "must match `ingressClassName` when both are specified",
            ));
        }
    }
    errs.extend(validate_status(ingress));
    errs
}

/// Validates an update: metadata immutables unchanged and the new Ingress
/// valid (every spec field may change).
pub fn validate_ingress_update(new: &Ingress, old: &Ingress) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_ingress(new));
    errs
}

/// Validates a `/status` write: metadata immutables and the load balancer
/// entries (an `ip` a valid IP; a `hostname` a DNS name, not an IP).
pub fn validate_ingress_status_update(new: &Ingress, old: &Ingress) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_status(new));
    errs
}

fn validate_status(ingress: &Ingress) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let entries = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default();
    for (i, entry) in entries.iter().enumerate() {
        let path = index("status.loadBalancer.ingress", i);
        if let Some(ip) = entry.ip.as_deref().filter(|ip| !ip.is_empty()) {
            push_invalid(&mut errs, &child(&path, "ip"), ip, is_valid_ip(ip));
        }
        if let Some(host) = entry.hostname.as_deref().filter(|h| !h.is_empty()) {
            let field = child(&path, "hostname");
            if host.parse::<std::net::IpAddr>().is_ok() {
                errs.push(FieldError::invalid(
                    &field,
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            push_invalid(&mut errs, &field, host, is_dns1123_subdomain(host));
        }
    }
    errs
}

fn validate_rule(rule: &IngressRule, path: &str) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
        let field = child(path, "host");
        if host.parse::<std::net::IpAddr>().is_ok() {
            errs.push(FieldError::invalid(
                &field,
                host,
                "must be a DNS name, not an IP address",
            ));
        }
        let msgs = if host.contains('*') {
            is_wildcard_dns1123_subdomain(host)
        } else {
            is_dns1123_subdomain(host)
        };
        push_invalid(&mut errs, &field, host, msgs);
    }
    if let Some(http) = &rule.http {
        let paths_field = child(&child(path, "http"), "paths");
        if http.paths.is_empty() {
            errs.push(FieldError::required(&paths_field, ""));
        }
        for (i, p) in http.paths.iter().enumerate() {
            let field = index(&paths_field, i);
            let value = p.path.as_deref().unwrap_or_default();
            let path_field = child(&field, "path");
            match p.path_type.as_str() {
                "" => errs.push(FieldError::required(
                    child(&field, "pathType"),
                    "pathType must be specified",
                )),
                "Exact" | "Prefix" => {
                    if !value.starts_with('/') {
                        errs.push(FieldError::invalid(
                            &path_field,
                            value,
                            "must be an absolute path",
                        ));
                    }
                    for bad in INVALID_PATH_SEQUENCES
                        .iter()
                        .filter(|s| value.contains(**s))
                    {
                        errs.push(FieldError::invalid(
                            &path_field,
                            value,
                            format!("must not contain '{bad}'"),
                        ));
                    }
                    for bad in INVALID_PATH_SUFFIXES
                        .iter()
                        .filter(|s| value.ends_with(**s))
                    {
                        errs.push(FieldError::invalid(
                            &path_field,
                            value,
                            format!("cannot end with '{bad}'"),
                        ));
                    }
                }
                "ImplementationSpecific" => {
                    if !value.is_empty() && !value.starts_with('/') {
                        errs.push(FieldError::invalid(
                            &path_field,
                            value,
                            "must be an absolute path",
                        ));
                    }
                }
                other => errs.push(FieldError::not_supported(
                    child(&field, "pathType"),
                    other,
                    PATH_TYPES,
                )),
            }
            errs.extend(validate_backend(&p.backend, &child(&field, "backend")));
        }
    }
    errs
}

/// A backend is a service (name, and a port name xor number) xor a
/// resource (kind and name).
fn validate_backend(backend: &IngressBackend, path: &str) -> FieldErrors {
    let mut errs = FieldErrors::new();
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (None, Some(resource)) => {
            let field = child(path, "resource");
            if let Some(group) = resource.api_group.as_deref() {
                push_invalid(
                    &mut errs,
                    &child(&field, "apiGroup"),
                    group,
                    is_dns1123_subdomain(group),
                );
            }
            for (name, value) in [("kind", &resource.kind), ("name", &resource.name)] {
                if value.is_empty() {
                    errs.push(FieldError::required(
                        child(&field, name),
                        format!("{name} is required"),
                    ));
                } else {
                    push_invalid(
                        &mut errs,
                        &child(&field, name),
                        value,
                        path_segment_errors(value),
                    );
                }
            }
        }
        (Some(service), None) => {
            let field = child(path, "service");
            if service.name.is_empty() {
                errs.push(FieldError::required(child(&field, "name"), ""));
            } else {
                push_invalid(
                    &mut errs,
                    &child(&field, "name"),
                    &service.name,
                    name_is_dns1035_label(&service.name, false),
                );
            }
            let port = service.port.clone().unwrap_or_default();
            let name = port.name.as_deref().filter(|n| !n.is_empty());
            let number = port.number.filter(|n| *n != 0);
            let port_field = child(&field, "port");
            match (name, number) {
                (Some(_), Some(_)) => errs.push(FieldError::invalid(
                    path,
                    "",
                    "cannot set both port name & port number",
                )),
                (Some(name), None) => push_invalid(
                    &mut errs,
                    &child(&port_field, "name"),
                    name,
                    is_valid_port_name(name),
                ),
                (None, Some(number)) => push_invalid(
                    &mut errs,
                    &child(&port_field, "number"),
                    &number.to_string(),
                    is_valid_port_num(number),
                ),
                (None, None) => errs.push(FieldError::required(
                    port_field,
                    "port name or number is required",
                )),
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
    errs
}

fn validate_tls(tls: &IngressTLS, path: &str) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for (j, host) in tls.hosts.as_deref().unwrap_or_default().iter().enumerate() {
        let msgs = if host.contains('*') {
            is_wildcard_dns1123_subdomain(host)
        } else {
            is_dns1123_subdomain(host)
        };
        push_invalid(&mut errs, &index(&child(path, "hosts"), j), host, msgs);
    }
    if let Some(secret) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
        push_invalid(
            &mut errs,
            &child(path, "secretName"),
            secret,
            name_is_dns_subdomain(secret, false),
        );
    }
    errs
}

/// Validates an IngressClass: cluster-scoped, a DNS subdomain name,
/// `spec.controller` a domain-prefixed path (`example.com/ingress`) of at
/// most 250 characters, and `parameters` naming a kind and a name, with a
/// namespace exactly when their scope is `Namespace`.
pub fn validate_ingress_class(class: &IngressClass) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&class.metadata, false, name_is_dns_subdomain, "metadata");
    let spec = class.spec.clone().unwrap_or_default();
    let controller = spec.controller.as_deref().unwrap_or_default();
    if controller.is_empty() {
        errs.push(FieldError::required("spec.controller", ""));
    } else {
        if controller.len() > MAX_CONTROLLER_LEN {
            errs.push(FieldError::new(
                crate::status::FieldErrorKind::TooLong,
                "spec.controller",
                None,
                format!("may not be more than {MAX_CONTROLLER_LEN} bytes"),
            ));
        }
        match controller.split_once('/') {
            Some((domain, _)) => push_invalid(
                &mut errs,
                "spec.controller",
                controller,
                is_dns1123_subdomain(domain),
            ),
            None => errs.push(FieldError::invalid(
                "spec.controller",
                controller,
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            )),
        }
    }
    if let Some(params) = &spec.parameters {
        let field = "spec.parameters";
        if params.kind.is_empty() {
            errs.push(FieldError::required(
                child(field, "kind"),
                "kind is required",
            ));
        }
        if params.name.is_empty() {
            errs.push(FieldError::required(
                child(field, "name"),
                "name is required",
            ));
        }
        let namespace = params.namespace.as_deref().filter(|n| !n.is_empty());
        match params.scope.as_deref().unwrap_or("Cluster") {
            "Cluster" => {
                if namespace.is_some() {
                    errs.push(FieldError::forbidden(
                        child(field, "namespace"),
                        "`parameters.scope` is set to 'Cluster'",
                    ));
                }
            }
            "Namespace" => {
                if namespace.is_none() {
                    errs.push(FieldError::required(
                        child(field, "namespace"),
                        "`parameters.scope` is set to 'Namespace'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(field, "scope"),
                other,
                &["Cluster", "Namespace"],
            )),
        }
    }
    errs
}

/// Validates an IngressClass update: `spec.controller` may not change.
pub fn validate_ingress_class_update(new: &IngressClass, old: &IngressClass) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    let controller = |c: &IngressClass| c.spec.as_ref().and_then(|s| s.controller.clone());
    if controller(new) != controller(old) {
        errs.push(FieldError::invalid(
            "spec.controller",
            controller(new).unwrap_or_default(),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    errs.extend(validate_ingress_class(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::FieldErrorKind::*;
    use crate::validation::testutil::{assert_exactly, assert_valid};
    use serde_json::json;

    fn ingress(spec: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn svc(name: &str, port: serde_json::Value) -> serde_json::Value {
        json!({"service": {"name": name, "port": port}})
    }

    fn one_path(path: serde_json::Value) -> Ingress {
        ingress(json!({"rules": [{"host": "a.example", "http": {"paths": [path]}}]}))
    }

    #[test]
    fn a_full_ingress_is_valid() {
        assert_valid(&validate_ingress(&ingress(json!({
            "ingressClassName": "mini",
            "defaultBackend": svc("fallback", json!({"number": 80})),
            "rules": [
                {"host": "a.example", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": svc("a", json!({"name": "http"}))},
                    {"path": "/exact", "pathType": "Exact", "backend": svc("a", json!({"number": 8080}))},
                ]}},
                {"host": "*.b.example", "http": {"paths": [
                    {"pathType": "ImplementationSpecific", "backend": svc("b", json!({"number": 80}))},
                ]}},
            ],
            "tls": [{"hosts": ["a.example", "*.b.example"], "secretName": "a-tls"}],
        }))));
    }

    #[test]
    fn rules_or_a_default_backend() {
        assert_exactly(&validate_ingress(&ingress(json!({}))), &[("spec", Invalid)]);
        assert_valid(&validate_ingress(&ingress(
            json!({"defaultBackend": svc("x", json!({"number": 80}))}),
        )));
    }

    #[test]
    fn hosts_are_dns_names_or_wildcards_never_ips() {
        for (host, ok) in [
            ("a.example", true),
            ("*.example", true),
            ("*", false),
            ("a.*.example", false),
            ("*.", false),
            ("A.example", false),
            ("10.0.0.1", false),
        ] {
            let errs = validate_ingress(&ingress(json!({"rules": [{"host": host}],
                "defaultBackend": svc("x", json!({"number": 80}))})));
            if ok {
                assert_valid(&errs);
            } else {
                assert_exactly(&errs, &[("spec.rules[0].host", Invalid)]);
            }
        }
    }

    #[test]
    fn path_types_and_paths() {
        let b = svc("a", json!({"number": 80}));
        let field = "spec.rules[0].http.paths[0]";
        assert_exactly(
            &validate_ingress(&one_path(json!({"path": "/", "backend": b}))),
            &[(&format!("{field}.pathType"), Required)],
        );
        assert_exactly(
            &validate_ingress(&one_path(
                json!({"path": "/", "pathType": "Regex", "backend": b}),
            )),
            &[(&format!("{field}.pathType"), NotSupported)],
        );
        for bad in ["relative", "", "/a//b", "/a/../b", "/a%2Fb", "/a/.."] {
            assert_exactly(
                &validate_ingress(&one_path(
                    json!({"path": bad, "pathType": "Prefix", "backend": b}),
                )),
                &[(&format!("{field}.path"), Invalid)],
            );
        }
        assert_exactly(
            &validate_ingress(&one_path(
                json!({"path": "x", "pathType": "ImplementationSpecific", "backend": b}),
            )),
            &[(&format!("{field}.path"), Invalid)],
        );
        assert_exactly(
            &validate_ingress(&ingress(json!({"rules": [{"http": {"paths": []}}]}))),
            &[("spec.rules[0].http.paths", Required)],
        );
    }

    #[test]
    fn backends_are_a_service_xor_a_resource() {
        let field = "spec.rules[0].http.paths[0].backend";
        let with = |backend: serde_json::Value| {
            validate_ingress(&one_path(
                json!({"path": "/", "pathType": "Prefix", "backend": backend}),
            ))
        };
        assert_exactly(&with(json!({})), &[(field, Invalid)]);
        assert_exactly(
            &with(json!({"service": {"name": "a", "port": {"number": 80}},
                "resource": {"kind": "Bucket", "name": "b"}})),
            &[(field, Invalid)],
        );
        assert_exactly(
            &with(svc("a", json!({}))),
            &[(&format!("{field}.service.port"), Required)],
        );
        assert_exactly(
            &with(svc("a", json!({"name": "http", "number": 80}))),
            &[(field, Invalid)],
        );
        assert_exactly(
            &with(svc("a", json!({"number": 70000}))),
            &[(&format!("{field}.service.port.number"), Invalid)],
        );
        assert_exactly(
            &with(svc("a", json!({"name": "no_underscores"}))),
            &[(&format!("{field}.service.port.name"), Invalid)],
        );
        assert_exactly(
            &with(svc("Not-DNS", json!({"number": 80}))),
            &[(&format!("{field}.service.name"), Invalid)],
        );
        assert_exactly(
            &with(json!({"resource": {"apiGroup": "x.io", "kind": "", "name": "a/b"}})),
            &[
                (&format!("{field}.resource.kind"), Required),
                (&format!("{field}.resource.name"), Invalid),
            ],
        );
    }

    #[test]
    fn tls_and_class() {
        let mut ing = ingress(json!({
            "ingressClassName": "a",
            "defaultBackend": svc("x", json!({"number": 80})),
            "tls": [{"hosts": ["ok.example", "*", "Bad"], "secretName": "Not_A_Name"}],
        }));
        ing.metadata.annotations =
            Some([(INGRESS_CLASS_ANNOTATION.to_string(), "b".to_string())].into());
        assert_exactly(
            &validate_ingress(&ing),
            &[
                ("spec.tls[0].hosts[1]", Invalid),
                ("spec.tls[0].hosts[2]", Invalid),
                ("spec.tls[0].secretName", Invalid),
                ("annotations.kubernetes.io/ingress.class", Invalid),
            ],
        );
    }

    #[test]
    fn status_addresses() {
        let mut ing = ingress(json!({"defaultBackend": svc("x", json!({"number": 80}))}));
        let old = ing.clone();
        ing.status = Some(
            serde_json::from_value(json!({"loadBalancer": {"ingress": [
                {"ip": "10.245.1.2"}, {"ip": "nope"}, {"hostname": "10.0.0.1"}
            ]}}))
            .unwrap(),
        );
        assert_exactly(
            &validate_ingress_status_update(&ing, &old),
            &[
                ("status.loadBalancer.ingress[1].ip", Invalid),
                ("status.loadBalancer.ingress[2].hostname", Invalid),
            ],
        );
    }

    #[test]
    fn ingress_classes() {
        let class = |spec: serde_json::Value| -> IngressClass {
            serde_json::from_value(json!({"metadata": {"name": "mini"}, "spec": spec})).unwrap()
        };
        assert_valid(&validate_ingress_class(&class(
            json!({"controller": "mini-k8s.io/ingress-proxy"}),
        )));
        assert_exactly(
            &validate_ingress_class(&class(json!({}))),
            &[("spec.controller", Required)],
        );
        assert_exactly(
            &validate_ingress_class(&class(json!({"controller": "nodomain"}))),
            &[("spec.controller", Invalid)],
        );
        assert_exactly(
            &validate_ingress_class(&class(json!({"controller": "a.io/x",
                "parameters": {"kind": "K", "name": "n", "scope": "Namespace"}}))),
            &[("spec.parameters.namespace", Required)],
        );
        assert_exactly(
            &validate_ingress_class_update(
                &class(json!({"controller": "a.io/x"})),
                &class(json!({"controller": "b.io/x"})),
            ),
            &[("spec.controller", Invalid)],
        );
    }
}
