//! Pods: spec (containers, ports, env, volumes, mounts, probes, resources,
//! policies), updates and status updates, a file per section of the spec.

mod containers;
mod env;
mod probes;
mod resources;
mod scheduling;
mod status;
mod update;
mod volumes;

use std::collections::BTreeSet;

use super::meta::{validate_annotations, validate_labels, validate_object_labels};
use super::names::{
    inclusive_range_error, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_ip,
    name_is_dns_subdomain, name_is_dns_subdomain_any_case,
};
use super::{
    child, index, push_invalid, validate_nonnegative, validate_object_meta_with, FieldErrors,
};
use crate::status::FieldError;
use crate::v1::{Pod, PodSpec, PodTemplateSpec};
use containers::{check_host_port_conflicts, validate_container, ContainerKind};
use scheduling::validate_tolerations;
use volumes::validate_volumes;

pub use resources::validate_resource_requirements;
pub use status::validate_pod_status_update;
pub use update::validate_pod_update;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];

fn s(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

/// Validates a pod for create: metadata (namespaced; the name a DNS
/// subdomain, upper case allowed for 2014 manifests) and spec.
pub fn validate_pod(pod: &Pod) -> FieldErrors {
    let mut errs = validate_object_meta_with(
        &pod.metadata,
        true,
        name_is_dns_subdomain_any_case,
        "metadata",
    );
    let empty = PodSpec::default();
    errs.extend(validate_pod_spec(
        pod.spec.as_ref().unwrap_or(&empty),
        "spec",
    ));
    errs
}

/// Validates a pod template (`spec.template` of a controller): its labels
/// and annotations, and its pod spec under `path.spec`.
pub fn validate_pod_template_spec(template: &PodTemplateSpec, path: &str) -> FieldErrors {
    let mut errs = Vec::new();
    if let Some(meta) = &template.metadata {
        let meta_path = child(path, "metadata");
        if let Some(labels) = &meta.labels {
            errs.extend(validate_object_labels(labels, &child(&meta_path, "labels")));
        }
        if let Some(annotations) = &meta.annotations {
            errs.extend(validate_annotations(
                annotations,
                &child(&meta_path, "annotations"),
            ));
        }
    }
    let empty = PodSpec::default();
    errs.extend(validate_pod_spec(
        template.spec.as_ref().unwrap_or(&empty),
        &child(path, "spec"),
    ));
    errs
}

/// Validates the pod template of a controller that keeps its pods running
/// (a replication controller, a daemon set): a valid template whose
/// `restartPolicy`, if set, is `Always`, since a pod that may stop for good
/// would leave the controller replacing it forever.
pub fn validate_controller_pod_template(template: &PodTemplateSpec, path: &str) -> FieldErrors {
    let mut errs = validate_pod_template_spec(template, path);
    let restart = template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("");
    if !restart.is_empty() && restart != "Always" {
        errs.push(FieldError::not_supported(
            child(&child(path, "spec"), "restartPolicy"),
            restart,
            &["Always"],
        ));
    }
    errs
}

/// Validates a pod spec; every error's path starts with `path` (`spec`, or
/// `spec.template.spec` for a controller's template).
pub fn validate_pod_spec(spec: &PodSpec, path: &str) -> FieldErrors {
    let mut errs = Vec::new();
    let volumes = validate_volumes(
        spec.volumes.as_deref().unwrap_or(&[]),
        &child(path, "volumes"),
        &mut errs,
    );

    let containers_path = child(path, "containers");
    if spec.containers.is_empty() {
        errs.push(FieldError::required(&containers_path, ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let p = index(&containers_path, i);
        validate_container(c, ContainerKind::Regular, &volumes, &p, &mut errs);
        if !c.name.is_empty() && !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(child(&p, "name"), &c.name));
        }
    }
    let init_path = child(path, "initContainers");
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    for (i, c) in init.iter().enumerate() {
        let p = index(&init_path, i);
        validate_container(c, ContainerKind::Init, &volumes, &p, &mut errs);
        if !c.name.is_empty() && !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(child(&p, "name"), &c.name));
        }
    }
    check_host_port_conflicts(&spec.containers, &containers_path, &mut errs);
    if spec.host_network == Some(true) {
        for (ci, c) in spec.containers.iter().chain(init).enumerate() {
            let base = if ci < spec.containers.len() {
                index(&containers_path, ci)
            } else {
                index(&init_path, ci - spec.containers.len())
            };
            for (pi, port) in c.ports.iter().flatten().enumerate() {
                if let Some(hp) = port.host_port.filter(|&hp| hp != 0) {
                    if hp != port.container_port {
                        errs.push(FieldError::invalid(
                            child(&index(&child(&base, "ports"), pi), "containerPort"),
                            port.container_port,
                            "must match `hostPort` when `hostNetwork` is true",
                        ));
                    }
                }
            }
        }
    }

    if let Some(policy) = spec.restart_policy.as_ref().filter(|p| !p.is_empty()) {
        if !RESTART_POLICIES.contains(&policy.as_str()) {
            errs.push(FieldError::not_supported(
                child(path, "restartPolicy"),
                policy,
                RESTART_POLICIES,
            ));
        }
    }
    if let Some(policy) = spec.dns_policy.as_ref().filter(|p| !p.is_empty()) {
        if !DNS_POLICIES.contains(&policy.as_str()) {
            errs.push(FieldError::not_supported(
                child(path, "dnsPolicy"),
                policy,
                DNS_POLICIES,
            ));
        } else if policy == "None" && spec.dns_config.is_none() {
            errs.push(FieldError::required(
                child(path, "dnsConfig"),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
        }
    }
    if let Some(config) = &spec.dns_config {
        let p = child(path, "dnsConfig");
        let servers = config.nameservers.as_deref().unwrap_or(&[]);
        if servers.len() > 3 {
            errs.push(FieldError::invalid(
                child(&p, "nameservers"),
                servers.join(","),
                "must not have more than 3 nameservers",
            ));
        }
        for (i, ns) in servers.iter().enumerate() {
            push_invalid(
                &mut errs,
                &index(&child(&p, "nameservers"), i),
                ns,
                is_valid_ip(ns),
            );
        }
        for (i, search) in config.searches.iter().flatten().enumerate() {
            let trimmed = search.strip_suffix('.').unwrap_or(search);
            push_invalid(
                &mut errs,
                &index(&child(&p, "searches"), i),
                search,
                is_dns1123_subdomain(trimmed),
            );
        }
    }
    if let Some(selector) = &spec.node_selector {
        errs.extend(validate_labels(selector, &child(path, "nodeSelector")));
    }
    for (field, value) in [
        ("nodeName", &spec.node_name),
        ("serviceAccountName", &spec.service_account_name),
        ("priorityClassName", &spec.priority_class_name),
        ("schedulerName", &spec.scheduler_name),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            push_invalid(
                &mut errs,
                &child(path, field),
                v,
                name_is_dns_subdomain(v, false),
            );
        }
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            push_invalid(&mut errs, &child(path, field), v, is_dns1123_label(v));
        }
    }
    if let Some(v) = spec.active_deadline_seconds {
        if v < 1 || v > i64::from(i32::MAX) {
            errs.push(FieldError::invalid(
                child(path, "activeDeadlineSeconds"),
                v,
                inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    validate_nonnegative(
        &mut errs,
        &child(path, "terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
    );
    if let Some(tolerations) = &spec.tolerations {
        validate_tolerations(tolerations, &child(path, "tolerations"), &mut errs);
    }
    for (i, secret) in spec.image_pull_secrets.iter().flatten().enumerate() {
        if secret.name.is_empty() {
            errs.push(FieldError::required(
                child(&index(&child(path, "imagePullSecrets"), i), "name"),
                "",
            ));
        }
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let p = index(&child(path, "hostAliases"), i);
        push_invalid(
            &mut errs,
            &child(&p, "ip"),
            &alias.ip,
            is_valid_ip(&alias.ip),
        );
        for (j, host) in alias.hostnames.iter().flatten().enumerate() {
            push_invalid(
                &mut errs,
                &index(&child(&p, "hostnames"), j),
                host,
                is_dns1123_subdomain(host),
            );
        }
    }
    for (i, gate) in spec.readiness_gates.iter().flatten().enumerate() {
        let p = child(&index(&child(path, "readinessGates"), i), "conditionType");
        push_invalid(
            &mut errs,
            &p,
            &gate.condition_type,
            is_qualified_name(&gate.condition_type),
        );
    }
    let mut gates = BTreeSet::new();
    for (i, gate) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = child(&index(&child(path, "schedulingGates"), i), "name");
        push_invalid(&mut errs, &p, &gate.name, is_qualified_name(&gate.name));
        if !gates.insert(gate.name.as_str()) {
            errs.push(FieldError::duplicate(p, &gate.name));
        }
    }
    errs
}

#[cfg(test)]
mod tests;
