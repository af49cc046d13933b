//! Containers: names, images, ports (and host-port conflicts across a pod),
//! pull and restart policies, and which probes and hooks each kind may carry.

use std::collections::BTreeSet;

use super::env::{validate_env, validate_env_from};
use super::probes::{validate_lifecycle, validate_probe};
use super::resources::validate_resource_requirements;
use super::s;
use super::volumes::validate_volume_mounts;
use crate::status::FieldError;
use crate::v1::{Container, ContainerPort};
use crate::validation::names::{
    is_dns1123_label, is_valid_ip, is_valid_port_name, is_valid_port_num,
};
use crate::validation::{child, index, push_invalid, unset, validate_protocol, FieldErrors};

const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ContainerKind {
    Regular,
    Init,
}

pub(super) fn validate_container(
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
pub(super) fn check_host_port_conflicts(
    containers: &[Container],
    path: &str,
    errs: &mut FieldErrors,
) {
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
