//! Pods: spec (containers, ports, env, volumes, mounts, probes, resources,
//! policies), updates and status updates.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVarSource, ExecAction, GRPCAction, HTTPGetAction, KeyToPath, Lifecycle,
    LifecycleHandler, ObjectFieldSelector, ResourceFieldSelector, SleepAction, TCPSocketAction,
    Toleration,
};
use serde_json::Value;

use crate::status::FieldError;
use crate::v1::{
    Container, ContainerPort, EnvVar, IntOrString, Pod, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Volume, VolumeMount,
};

use super::meta::{validate_annotations, validate_labels, validate_object_labels};
use super::names::{
    inclusive_range_error, is_config_map_key, is_dns1123_label, is_dns1123_subdomain,
    is_env_var_name, is_http_header_name, is_qualified_name, is_valid_ip, is_valid_label_value,
    is_valid_port_name, is_valid_port_num, name_is_dns_subdomain, name_is_dns_subdomain_any_case,
};
use super::quantity::{quantity_error, ParsedQuantity};
use super::{
    child, index, key, push_invalid, unset, validate_nonnegative, validate_object_meta_update,
    validate_object_meta_with, validate_protocol, FieldErrors, IS_NEGATIVE_ERROR_MSG,
};

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const HTTP_SCHEMES: &[&str] = &["HTTP", "HTTPS"];
const MOUNT_PROPAGATIONS: &[&str] = &["Bidirectional", "HostToContainer", "None"];
const RECURSIVE_READ_ONLY: &[&str] = &["Disabled", "Enabled", "IfPossible"];
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];
const TAINT_EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "PreferNoSchedule"];
const TOLERATION_OPERATORS: &[&str] = &["Equal", "Exists"];
const POD_PHASES: &[&str] = &["Failed", "Pending", "Running", "Succeeded", "Unknown"];
const CONDITION_STATUSES: &[&str] = &["False", "True", "Unknown"];
const SYSTEM_POD_CONDITIONS: &[&str] = &[
    "ContainersReady",
    "DisruptionTarget",
    "Initialized",
    "PodReadyToStartContainers",
    "PodScheduled",
    "Ready",
];
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
/// Downward API fields a volume file may hold.
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
const RESOURCE_FIELD_REFS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];
const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "ephemeral-storage", "memory"];
const FILE_MODE_ERROR_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum ContainerKind {
    Regular,
    Init,
}

fn validate_container(
    c: &Container,
    kind: ContainerKind,
    volumes: &BTreeSet<String>,
    path: &str,
    errs: &mut FieldErrors,
) {
    let name_path = child(path, "name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        push_invalid(errs, &name_path, &c.name, is_dns1123_label(&c.name));
    }
    // Whitespace-only images pass, as in Kubernetes (some tools use " ").
    if unset(c.image.as_ref()) {
        errs.push(FieldError::required(child(path, "image"), ""));
    }
    if let Some(ports) = &c.ports {
        validate_container_ports(ports, &child(path, "ports"), errs);
    }
    if let Some(env) = &c.env {
        validate_env(env, &child(path, "env"), errs);
    }
    if let Some(env_from) = &c.env_from {
        validate_env_from(env_from, &child(path, "envFrom"), errs);
    }
    if let Some(mounts) = &c.volume_mounts {
        validate_volume_mounts(mounts, volumes, &child(path, "volumeMounts"), errs);
    }
    if let Some(policy) = c.image_pull_policy.as_ref().filter(|p| !p.is_empty()) {
        if !PULL_POLICIES.contains(&policy.as_str()) {
            errs.push(FieldError::not_supported(
                child(path, "imagePullPolicy"),
                policy,
                PULL_POLICIES,
            ));
        }
    }
    if let Some(policy) = c
        .termination_message_policy
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        if policy != "File" && policy != "FallbackToLogsOnError" {
            errs.push(FieldError::invalid(
                child(path, "terminationMessagePolicy"),
                policy,
                "must be 'File' or 'FallbackToLogsOnError'",
            ));
        }
    }
    if let Some(resources) = &c.resources {
        errs.extend(validate_resource_requirements(
            resources,
            &child(path, "resources"),
        ));
    }

    let restartable_init = kind == ContainerKind::Init && s(&c.restart_policy) == "Always";
    match (kind, &c.restart_policy) {
        (_, None) => {}
        (ContainerKind::Regular, Some(_)) => errs.push(FieldError::forbidden(
            child(path, "restartPolicy"),
            "may not be set for non-init containers",
        )),
        (ContainerKind::Init, Some(policy)) => {
            if policy != "Always" {
                errs.push(FieldError::not_supported(
                    child(path, "restartPolicy"),
                    policy,
                    &["Always"],
                ));
            }
        }
    }
    let probes_allowed = kind == ContainerKind::Regular || restartable_init;
    for (field, probe, success_must_be_one) in [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ] {
        let Some(probe) = probe else { continue };
        let p = child(path, field);
        if !probes_allowed {
            errs.push(FieldError::forbidden(
                p,
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        validate_probe(probe, &p, success_must_be_one, errs);
    }
    if let Some(lifecycle) = &c.lifecycle {
        let p = child(path, "lifecycle");
        if probes_allowed {
            validate_lifecycle(lifecycle, &p, errs);
        } else {
            errs.push(FieldError::forbidden(
                p,
                "may not be set for init containers without restartPolicy=Always",
            ));
        }
    }
}

fn validate_container_ports(ports: &[ContainerPort], path: &str, errs: &mut FieldErrors) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index(path, i);
        if let Some(name) = port.name.as_ref().filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                push_invalid(errs, &child(&p, "name"), name, msgs);
            } else if !names.insert(name.as_str()) {
                errs.push(FieldError::duplicate(child(&p, "name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(child(&p, "containerPort"), ""));
        } else {
            push_invalid(
                errs,
                &child(&p, "containerPort"),
                &port.container_port.to_string(),
                is_valid_port_num(port.container_port),
            );
        }
        if let Some(hp) = port.host_port.filter(|&hp| hp != 0) {
            push_invalid(
                errs,
                &child(&p, "hostPort"),
                &hp.to_string(),
                is_valid_port_num(hp),
            );
        }
        validate_protocol(errs, &child(&p, "protocol"), port.protocol.as_ref());
        if let Some(ip) = port.host_ip.as_ref().filter(|ip| !ip.is_empty()) {
            push_invalid(errs, &child(&p, "hostIP"), ip, is_valid_ip(ip));
        }
    }
}

/// Non-zero `hostPort`s are unique per protocol and host IP across the pod.
fn check_host_port_conflicts(containers: &[Container], path: &str, errs: &mut FieldErrors) {
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let Some(hp) = port.host_port.filter(|&hp| hp != 0) else {
                continue;
            };
            let protocol = match s(&port.protocol) {
                "" => "TCP",
                p => p,
            };
            let key = format!("{protocol}/{}/{hp}", s(&port.host_ip));
            if !seen.insert(key.clone()) {
                let p = index(&child(&index(path, ci), "ports"), pi);
                errs.push(FieldError::duplicate(child(&p, "hostPort"), key));
            }
        }
    }
}

fn validate_env(env: &[EnvVar], path: &str, errs: &mut FieldErrors) {
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

fn validate_object_field_selector(
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

fn validate_resource_field_selector(
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

fn validate_env_from(sources: &[EnvFromSource], path: &str, errs: &mut FieldErrors) {
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

fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeSet<String>,
    path: &str,
    errs: &mut FieldErrors,
) {
    let mut mount_points = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = index(path, i);
        if m.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(child(&p, "name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(child(&p, "mountPath"), ""));
        } else if m.mount_path.contains(':') {
            // Docker reads a bind as `source:target:options`, so a colon
            // here would add options (or a path) of the pod's choosing.
            errs.push(FieldError::invalid(
                child(&p, "mountPath"),
                &m.mount_path,
                "must not contain ':'",
            ));
        } else if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                child(&p, "mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if let Some(sub) = m.sub_path.as_ref().filter(|v| !v.is_empty()) {
            validate_local_descending_path(sub, &child(&p, "subPath"), errs);
        }
        if let Some(expr) = m.sub_path_expr.as_ref().filter(|v| !v.is_empty()) {
            if !unset(m.sub_path.as_ref()) {
                errs.push(FieldError::invalid(
                    child(&p, "subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
        }
        if let Some(prop) = m.mount_propagation.as_ref().filter(|v| !v.is_empty()) {
            if !MOUNT_PROPAGATIONS.contains(&prop.as_str()) {
                errs.push(FieldError::not_supported(
                    child(&p, "mountPropagation"),
                    prop,
                    MOUNT_PROPAGATIONS,
                ));
            }
        }
        if let Some(rro) = m.recursive_read_only.as_ref().filter(|v| !v.is_empty()) {
            if !RECURSIVE_READ_ONLY.contains(&rro.as_str()) {
                errs.push(FieldError::not_supported(
                    child(&p, "recursiveReadOnly"),
                    rro,
                    RECURSIVE_READ_ONLY,
                ));
            }
        }
    }
}

/// A relative path without `..` segments (subPath, gitRepo directory, items).
fn validate_local_descending_path(value: &str, path: &str, errs: &mut FieldErrors) {
    if value.starts_with('/') {
        errs.push(FieldError::invalid(path, value, "must be a relative path"));
    }
    validate_path_no_backsteps(value, path, errs);
}

fn validate_path_no_backsteps(value: &str, path: &str, errs: &mut FieldErrors) {
    if value.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid(path, value, "must not contain '..'"));
    }
}

fn validate_file_mode(mode: Option<i32>, path: &str, errs: &mut FieldErrors) {
    if let Some(m) = mode {
        if !(0..=0o777).contains(&m) {
            errs.push(FieldError::invalid(path, m, FILE_MODE_ERROR_MSG));
        }
    }
}

fn validate_key_to_paths(items: &[KeyToPath], path: &str, errs: &mut FieldErrors) {
    for (i, item) in items.iter().enumerate() {
        let p = index(path, i);
        if item.key.is_empty() {
            errs.push(FieldError::required(child(&p, "key"), ""));
        }
        if item.path.is_empty() {
            errs.push(FieldError::required(child(&p, "path"), ""));
        } else {
            validate_local_non_reserved_path(&item.path, &child(&p, "path"), errs);
        }
        validate_file_mode(item.mode, &child(&p, "mode"), errs);
    }
}

/// A descending path that also may not start with `..` (Kubernetes keeps
/// `..data` and friends for itself).
fn validate_local_non_reserved_path(value: &str, path: &str, errs: &mut FieldErrors) {
    let before = errs.len();
    validate_local_descending_path(value, path, errs);
    if errs.len() == before && value.starts_with("..") {
        errs.push(FieldError::invalid(path, value, "must not start with '..'"));
    }
}

/// Validates volumes and returns the names they declare.
fn validate_volumes(volumes: &[Volume], path: &str, errs: &mut FieldErrors) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = index(path, i);
        validate_volume_source(v, &p, errs);
        let name_path = child(&p, "name");
        if v.name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
            continue;
        }
        push_invalid(errs, &name_path, &v.name, is_dns1123_label(&v.name));
        if !names.insert(v.name.clone()) {
            errs.push(FieldError::duplicate(&name_path, &v.name));
        }
    }
    names
}

fn validate_volume_source(v: &Volume, path: &str, errs: &mut FieldErrors) {
    // In Kubernetes' order, so the second and later sources are the ones
    // reported.
    let present = [
        ("hostPath", v.host_path.is_some()),
        ("emptyDir", v.empty_dir.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("configMap", v.config_map.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ];
    let mut count = 0;
    for (name, is_set) in present {
        if is_set {
            if count > 0 {
                errs.push(FieldError::forbidden(
                    child(path, name),
                    "may not specify more than 1 volume type",
                ));
            }
            count += 1;
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }

    if let Some(host_path) = &v.host_path {
        let p = child(path, "hostPath");
        if host_path.path.is_empty() {
            errs.push(FieldError::required(child(&p, "path"), ""));
        } else {
            validate_path_no_backsteps(&host_path.path, &child(&p, "path"), errs);
        }
        if let Some(t) = &host_path.type_ {
            if !HOST_PATH_TYPES.contains(&t.as_str()) {
                errs.push(FieldError::not_supported(
                    child(&p, "type"),
                    t,
                    HOST_PATH_TYPES,
                ));
            }
        }
    }
    if let Some(empty_dir) = &v.empty_dir {
        let p = child(path, "emptyDir");
        if let Some(medium) = empty_dir.medium.as_ref().filter(|m| !m.is_empty()) {
            if medium != "Memory" && medium != "HugePages" && !medium.starts_with("HugePages-") {
                errs.push(FieldError::not_supported(
                    child(&p, "medium"),
                    medium,
                    &["", "Memory", "HugePages"],
                ));
            }
        }
        if let Some(limit) = &empty_dir.size_limit {
            match ParsedQuantity::parse(&limit.0) {
                Err(e) => errs.push(quantity_error(child(&p, "sizeLimit"), &limit.0, &e)),
                Ok(q) if q.is_negative() => errs.push(FieldError::forbidden(
                    child(&p, "sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                )),
                Ok(_) => {}
            }
        }
    }
    if let Some(git) = &v.git_repo {
        let p = child(path, "gitRepo");
        if git.repository.is_empty() {
            errs.push(FieldError::required(child(&p, "repository"), ""));
        }
        if let Some(dir) = git.directory.as_ref().filter(|d| !d.is_empty()) {
            validate_local_descending_path(dir, &child(&p, "directory"), errs);
        }
    }
    if let Some(pd) = &v.gce_persistent_disk {
        let p = child(path, "gcePersistentDisk");
        if pd.pd_name.is_empty() {
            errs.push(FieldError::required(child(&p, "pdName"), ""));
        }
        if let Some(partition) = pd.partition {
            if !(0..=255).contains(&partition) {
                errs.push(FieldError::invalid(
                    child(&p, "partition"),
                    partition,
                    inclusive_range_error(1, 255),
                ));
            }
        }
    }
    if let Some(secret) = &v.secret {
        let p = child(path, "secret");
        if unset(secret.secret_name.as_ref()) {
            errs.push(FieldError::required(child(&p, "secretName"), ""));
        }
        validate_file_mode(secret.default_mode, &child(&p, "defaultMode"), errs);
        validate_key_to_paths(
            secret.items.as_deref().unwrap_or(&[]),
            &child(&p, "items"),
            errs,
        );
    }
    if let Some(nfs) = &v.nfs {
        let p = child(path, "nfs");
        if nfs.server.is_empty() {
            errs.push(FieldError::required(child(&p, "server"), ""));
        }
        if nfs.path.is_empty() {
            errs.push(FieldError::required(child(&p, "path"), ""));
        } else if !nfs.path.starts_with('/') {
            errs.push(FieldError::invalid(
                child(&p, "path"),
                &nfs.path,
                "must be an absolute path",
            ));
        }
    }
    if let Some(pvc) = &v.persistent_volume_claim {
        if pvc.claim_name.is_empty() {
            errs.push(FieldError::required(
                child(&child(path, "persistentVolumeClaim"), "claimName"),
                "",
            ));
        }
    }
    if let Some(downward) = &v.downward_api {
        let p = child(path, "downwardAPI");
        validate_file_mode(downward.default_mode, &child(&p, "defaultMode"), errs);
        for (i, item) in downward.items.iter().flatten().enumerate() {
            let ip = index(&child(&p, "items"), i);
            if item.path.is_empty() {
                errs.push(FieldError::required(child(&ip, "path"), ""));
            } else {
                validate_local_non_reserved_path(&item.path, &child(&ip, "path"), errs);
            }
            validate_file_mode(item.mode, &child(&ip, "mode"), errs);
            match (&item.field_ref, &item.resource_field_ref) {
                (Some(f), None) => validate_object_field_selector(
                    f,
                    VOLUME_FIELD_PATHS,
                    &child(&ip, "fieldRef"),
                    errs,
                ),
                (None, Some(r)) => {
                    validate_resource_field_selector(r, true, &child(&ip, "resourceFieldRef"), errs)
                }
                (Some(_), Some(_)) => errs.push(FieldError::invalid(
                    &ip,
                    "",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )),
                (None, None) => errs.push(FieldError::required(
                    &ip,
                    "one of fieldRef and resourceFieldRef is required",
                )),
            }
        }
    }
    if let Some(config_map) = &v.config_map {
        let p = child(path, "configMap");
        if config_map.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else {
            push_invalid(
                errs,
                &child(&p, "name"),
                &config_map.name,
                name_is_dns_subdomain(&config_map.name, false),
            );
        }
        validate_file_mode(config_map.default_mode, &child(&p, "defaultMode"), errs);
        validate_key_to_paths(
            config_map.items.as_deref().unwrap_or(&[]),
            &child(&p, "items"),
            errs,
        );
    }
    if let Some(projected) = &v.projected {
        validate_file_mode(
            projected.default_mode,
            &child(&child(path, "projected"), "defaultMode"),
            errs,
        );
    }
}

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

fn validate_probe(probe: &Probe, path: &str, success_must_be_one: bool, errs: &mut FieldErrors) {
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

fn validate_lifecycle(lifecycle: &Lifecycle, path: &str, errs: &mut FieldErrors) {
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

fn validate_tolerations(tolerations: &[Toleration], path: &str, errs: &mut FieldErrors) {
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

/// Validates an update of a pod: the new pod must be valid, metadata
/// immutables unchanged, and the spec unchanged except
/// `containers[*].image`, `initContainers[*].image`,
/// `activeDeadlineSeconds` (set, or lowered), `tolerations` (additions),
/// `schedulingGates` (removals) and `nodeName` while it is unset (once set it
/// may not change). Anything else is one `Forbidden` at `spec` naming the
/// changed fields.
pub fn validate_pod_update(new: &Pod, old: &Pod) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_pod(new));
    let empty = PodSpec::default();
    let ns = new.spec.as_ref().unwrap_or(&empty);
    let os = old.spec.as_ref().unwrap_or(&empty);

    let new_init = ns.init_containers.as_deref().unwrap_or(&[]);
    let old_init = os.init_containers.as_deref().unwrap_or(&[]);
    if ns.containers.len() != os.containers.len() {
        errs.push(FieldError::forbidden(
            "spec.containers",
            "pod updates may not add or remove containers",
        ));
        return errs;
    }
    if new_init.len() != old_init.len() {
        errs.push(FieldError::forbidden(
            "spec.initContainers",
            "pod updates may not add or remove containers",
        ));
        return errs;
    }

    validate_only_added_tolerations(
        ns.tolerations.as_deref().unwrap_or(&[]),
        os.tolerations.as_deref().unwrap_or(&[]),
        "spec.tolerations",
        &mut errs,
    );
    match (ns.active_deadline_seconds, os.active_deadline_seconds) {
        (Some(n), Some(o)) if n > o => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            n,
            "must be less than or equal to previous value",
        )),
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            "nil",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    let old_node = s(&os.node_name);
    if !old_node.is_empty() && s(&ns.node_name) != old_node {
        errs.push(FieldError::forbidden(
            "spec.nodeName",
            format!("may not be changed once set (the pod is bound to node \"{old_node}\")"),
        ));
    }
    let old_gates: BTreeSet<&str> = os
        .scheduling_gates
        .iter()
        .flatten()
        .map(|g| g.name.as_str())
        .collect();
    for (i, gate) in ns.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(gate.name.as_str()) {
            errs.push(FieldError::forbidden(
                index("spec.schedulingGates", i),
                format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    gate.name
                ),
            ));
        }
    }

    // What may change is copied from the old spec; any other difference is
    // forbidden.
    let mut munged = ns.clone();
    for (m, o) in munged.containers.iter_mut().zip(&os.containers) {
        m.image.clone_from(&o.image);
    }
    if let Some(init) = munged.init_containers.as_mut() {
        for (m, o) in init.iter_mut().zip(old_init) {
            m.image.clone_from(&o.image);
        }
    }
    munged.active_deadline_seconds = os.active_deadline_seconds;
    munged.tolerations.clone_from(&os.tolerations);
    munged.scheduling_gates.clone_from(&os.scheduling_gates);
    // An unset nodeName may be set (binding); a set one was checked above.
    munged.node_name.clone_from(&os.node_name);
    let changed = changed_paths(&munged, os, "spec");
    if !changed.is_empty() {
        let shown: Vec<&str> = changed.iter().take(10).map(String::as_str).collect();
        let more = changed.len().saturating_sub(shown.len());
        let mut list = shown.join(", ");
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        errs.push(FieldError::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than `spec.containers[*].image`, \
                 `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, \
                 `spec.tolerations` (only additions to existing tolerations), \
                 `spec.schedulingGates` (only removals) and an unset `spec.nodeName`; \
                 changed: {list}"
            ),
        ));
    }
    errs
}

/// Existing tolerations may not be removed or changed (other than their
/// `tolerationSeconds`); new ones may be added.
fn validate_only_added_tolerations(
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

/// The JSON paths under `base` where `a` and `b` differ, treating absent,
/// `null` and empty lists or maps as equal (Kubernetes' semantic equality).
fn changed_paths<T: serde::Serialize + PartialEq>(a: &T, b: &T, base: &str) -> Vec<String> {
    let mut out = Vec::new();
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(va), Ok(vb)) => diff_values(&normalize(va), &normalize(vb), base, &mut out),
        _ => {
            if a != b {
                out.push(base.to_string());
            }
        }
    }
    out
}

fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalize(v)))
                .filter(|(_, v)| !is_empty_value(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn diff_values(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            let keys: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
            for k in keys {
                let p = child(path, k);
                match (ma.get(k), mb.get(k)) {
                    (Some(x), Some(y)) => diff_values(x, y, &p, out),
                    _ => out.push(p),
                }
            }
        }
        (Value::Array(xa), Value::Array(xb)) if xa.len() == xb.len() => {
            for (i, (x, y)) in xa.iter().zip(xb).enumerate() {
                diff_values(x, y, &index(path, i), out);
            }
        }
        _ => {
            if a != b {
                out.push(path.to_string());
            }
        }
    }
}

/// Validates a status update of a pod (`pods/{name}/status`): metadata
/// immutables and labels, a spec left alone (`spec.nodeName` may not be
/// changed directly), and the new status: phase, IPs, conditions, container
/// statuses (a terminated container may not come back unless the restart
/// policy allows it) and no way back from a terminal phase.
pub fn validate_pod_status_update(new: &Pod, old: &Pod) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    if let Some(labels) = &new.metadata.labels {
        errs.extend(validate_object_labels(labels, "metadata.labels"));
    }
    if let Some(annotations) = &new.metadata.annotations {
        errs.extend(validate_annotations(annotations, "metadata.annotations"));
    }
    let empty_spec = PodSpec::default();
    let ns = new.spec.as_ref().unwrap_or(&empty_spec);
    let os = old.spec.as_ref().unwrap_or(&empty_spec);
    if ns.node_name != os.node_name {
        errs.push(FieldError::forbidden(
            "spec.nodeName",
            "may not be changed directly",
        ));
    } else if !changed_paths(ns, os, "spec").is_empty() {
        errs.push(FieldError::forbidden(
            "spec",
            "may not be changed by a status update",
        ));
    }

    let empty_status = k8s_openapi::api::core::v1::PodStatus::default();
    let st = new.status.as_ref().unwrap_or(&empty_status);
    let old_st = old.status.as_ref().unwrap_or(&empty_status);
    let phase = s(&st.phase);
    let old_phase = s(&old_st.phase);
    if !phase.is_empty() && !POD_PHASES.contains(&phase) {
        errs.push(FieldError::not_supported("status.phase", phase, POD_PHASES));
    }
    if (old_phase == "Succeeded" || old_phase == "Failed") && phase != old_phase {
        errs.push(FieldError::forbidden(
            "status.phase",
            format!("may not transition from terminal phase {old_phase} to {phase:?}"),
        ));
    }
    for (field, value) in [("podIP", &st.pod_ip), ("hostIP", &st.host_ip)] {
        if let Some(ip) = value.as_ref().filter(|ip| !ip.is_empty()) {
            push_invalid(&mut errs, &child("status", field), ip, is_valid_ip(ip));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, ip) in st.pod_ips.iter().flatten().enumerate() {
        let p = child(&index("status.podIPs", i), "ip");
        push_invalid(&mut errs, &p, &ip.ip, is_valid_ip(&ip.ip));
        if !seen.insert(ip.ip.as_str()) {
            errs.push(FieldError::duplicate(p, &ip.ip));
        }
    }
    for (i, ip) in st.host_ips.iter().flatten().enumerate() {
        let p = child(&index("status.hostIPs", i), "ip");
        push_invalid(&mut errs, &p, &ip.ip, is_valid_ip(&ip.ip));
    }
    if let Some(nominated) = st
        .nominated_node_name
        .as_ref()
        .filter(|n| !n.is_empty() && st.nominated_node_name != old_st.nominated_node_name)
    {
        push_invalid(
            &mut errs,
            "status.nominatedNodeName",
            nominated,
            name_is_dns_subdomain(nominated, false),
        );
    }
    for (i, condition) in st.conditions.iter().flatten().enumerate() {
        let p = index("status.conditions", i);
        if condition.type_.is_empty() {
            errs.push(FieldError::required(child(&p, "type"), ""));
        } else if !SYSTEM_POD_CONDITIONS.contains(&condition.type_.as_str()) {
            push_invalid(
                &mut errs,
                &child(&p, "type"),
                &condition.type_,
                is_qualified_name(&condition.type_),
            );
        }
        if !CONDITION_STATUSES.contains(&condition.status.as_str()) {
            errs.push(FieldError::not_supported(
                child(&p, "status"),
                &condition.status,
                CONDITION_STATUSES,
            ));
        }
    }
    let restart_policy = match s(&os.restart_policy) {
        "" => "Always",
        p => p,
    };
    for (field, new_statuses, old_statuses) in [
        (
            "containerStatuses",
            &st.container_statuses,
            &old_st.container_statuses,
        ),
        (
            "initContainerStatuses",
            &st.init_container_statuses,
            &old_st.init_container_statuses,
        ),
    ] {
        let path = child("status", field);
        for (i, cs) in new_statuses.iter().flatten().enumerate() {
            let p = index(&path, i);
            if cs.name.is_empty() {
                errs.push(FieldError::required(child(&p, "name"), ""));
            }
            if cs.restart_count < 0 {
                errs.push(FieldError::invalid(
                    child(&p, "restartCount"),
                    cs.restart_count,
                    IS_NEGATIVE_ERROR_MSG,
                ));
            }
            if restart_policy == "Always" || field == "initContainerStatuses" {
                continue;
            }
            let terminated_before = old_statuses
                .iter()
                .flatten()
                .find(|o| o.name == cs.name)
                .and_then(|o| o.state.as_ref()?.terminated.as_ref());
            let Some(before) = terminated_before else {
                continue;
            };
            if before.exit_code != 0 && restart_policy == "OnFailure" {
                continue;
            }
            if cs.state.as_ref().is_none_or(|st| st.terminated.is_none()) {
                errs.push(FieldError::forbidden(
                    child(&p, "state"),
                    format!(
                        "terminated container {} attempted illegal transition to \
                         non-terminated state",
                        cs.name
                    ),
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests;
