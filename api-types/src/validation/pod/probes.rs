//! Probes and lifecycle hooks: exactly one handler each, with its ports,
//! paths and headers safe to put in the kubelet's request line.

use k8s_openapi::api::core::v1::{
    ExecAction, GRPCAction, HTTPGetAction, Lifecycle, LifecycleHandler, SleepAction,
    TCPSocketAction,
};

use crate::status::FieldError;
use crate::v1::{IntOrString, Probe};
use crate::validation::names::{
    is_dns1123_subdomain, is_http_header_name, is_valid_ip, is_valid_port_name, is_valid_port_num,
};
use crate::validation::{child, index, push_invalid, validate_nonnegative, FieldErrors};

const HTTP_SCHEMES: &[&str] = &["HTTP", "HTTPS"];

/// The handlers of a probe or lifecycle hook, by kind.
struct Handler<'a> {
    exec: Option<&'a ExecAction>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_socket: Option<&'a TCPSocketAction>,
    grpc: Option<&'a GRPCAction>,
    sleep: Option<&'a SleepAction>,
}

fn validate_handler(h: &Handler<'_>, path: &str, errs: &mut FieldErrors) {
    let mut count = 0;
    let mut one = |field: &str, errs: &mut FieldErrors| -> bool {
        count += 1;
        if count > 1 {
            errs.push(FieldError::forbidden(
                child(path, field),
                "may not specify more than 1 handler type",
            ));
            false
        } else {
            true
        }
    };
    if let Some(exec) = h.exec {
        if one("exec", errs) && exec.command.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required(
                child(&child(path, "exec"), "command"),
                "",
            ));
        }
    }
    if let Some(http) = h.http_get {
        if one("httpGet", errs) {
            let p = child(path, "httpGet");
            validate_port_num_or_name(&http.port, &child(&p, "port"), errs);
            if let Some(scheme) = http.scheme.as_ref().filter(|v| !v.is_empty()) {
                if !HTTP_SCHEMES.contains(&scheme.as_str()) {
                    errs.push(FieldError::not_supported(
                        child(&p, "scheme"),
                        scheme,
                        HTTP_SCHEMES,
                    ));
                }
            }
            if let Some(path) = http.path.as_deref() {
                let shown = path.escape_default().to_string();
                push_invalid(errs, &child(&p, "path"), &shown, request_line_errors(path));
            }
            if let Some(host) = http.host.as_deref().filter(|h| !h.is_empty()) {
                let mut msgs = request_line_errors(host);
                if msgs.is_empty() && !is_valid_ip(host).is_empty() {
                    msgs = is_dns1123_subdomain(host)
                        .into_iter()
                        .map(|m| format!("must be an IP address or a DNS name: {m}"))
                        .collect();
                }
                push_invalid(
                    errs,
                    &child(&p, "host"),
                    &host.escape_default().to_string(),
                    msgs,
                );
            }
            for (i, header) in http.http_headers.iter().flatten().enumerate() {
                push_invalid(
                    errs,
                    &child(&p, "httpHeaders"),
                    &header.name,
                    is_http_header_name(&header.name),
                );
                if header.value.chars().any(char::is_control) {
                    errs.push(FieldError::invalid(
                        child(&index(&child(&p, "httpHeaders"), i), "value"),
                        header.value.escape_default(),
                        "must not contain control characters (line breaks would end the header)",
                    ));
                }
            }
        }
    }
    if let Some(tcp) = h.tcp_socket {
        if one("tcpSocket", errs) {
            validate_port_num_or_name(&tcp.port, &child(&child(path, "tcpSocket"), "port"), errs);
        }
    }
    if let Some(grpc) = h.grpc {
        if one("grpc", errs) {
            push_invalid(
                errs,
                &child(&child(path, "grpc"), "port"),
                &grpc.port.to_string(),
                is_valid_port_num(grpc.port),
            );
        }
    }
    if let Some(sleep) = h.sleep {
        if one("sleep", errs) && sleep.seconds < 0 {
            errs.push(FieldError::invalid(
                child(&child(path, "sleep"), "seconds"),
                sleep.seconds,
                "must be non-negative",
            ));
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
}

/// Why `value` cannot go into an HTTP request line as it is: the kubelet
/// writes a probe's path and host there, and a line break or space in them
/// smuggled a request of the pod's making to a service on the node.
fn request_line_errors(value: &str) -> Vec<String> {
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        vec!["must not contain spaces or control characters (it is sent in the probe's request line)".to_string()]
    } else {
        Vec::new()
    }
}

fn validate_port_num_or_name(port: &IntOrString, path: &str, errs: &mut FieldErrors) {
    match port {
        IntOrString::Int(n) => push_invalid(errs, path, &n.to_string(), is_valid_port_num(*n)),
        IntOrString::String(name) => push_invalid(errs, path, name, is_valid_port_name(name)),
    }
}

pub(super) fn validate_probe(
    probe: &Probe,
    path: &str,
    success_must_be_one: bool,
    errs: &mut FieldErrors,
) {
    validate_handler(
        &Handler {
            exec: probe.exec.as_ref(),
            http_get: probe.http_get.as_ref(),
            tcp_socket: probe.tcp_socket.as_ref(),
            grpc: probe.grpc.as_ref(),
            sleep: None,
        },
        path,
        errs,
    );
    for (field, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
    ] {
        validate_nonnegative(errs, &child(path, field), value.map(i64::from));
    }
    for (field, value) in [
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        if let Some(v) = value {
            if v < 1 {
                errs.push(FieldError::invalid(
                    child(path, field),
                    v,
                    "must be greater than or equal to 1",
                ));
            } else if success_must_be_one && field == "successThreshold" && v != 1 {
                errs.push(FieldError::invalid(child(path, field), v, "must be 1"));
            }
        }
    }
    if let Some(v) = probe.termination_grace_period_seconds {
        if v <= 0 {
            errs.push(FieldError::invalid(
                child(path, "terminationGracePeriodSeconds"),
                v,
                "must be greater than 0",
            ));
        }
    }
}

pub(super) fn validate_lifecycle(lifecycle: &Lifecycle, path: &str, errs: &mut FieldErrors) {
    for (field, handler) in [
        ("postStart", &lifecycle.post_start),
        ("preStop", &lifecycle.pre_stop),
    ] {
        if let Some(h) = handler {
            validate_lifecycle_handler(h, &child(path, field), errs);
        }
    }
}

fn validate_lifecycle_handler(h: &LifecycleHandler, path: &str, errs: &mut FieldErrors) {
    validate_handler(
        &Handler {
            exec: h.exec.as_ref(),
            http_get: h.http_get.as_ref(),
            tcp_socket: h.tcp_socket.as_ref(),
            grpc: None,
            sleep: h.sleep.as_ref(),
        },
        path,
        errs,
    );
}
