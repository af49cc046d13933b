//! Pod status updates (`pods/{name}/status`): phase, IPs, conditions and
//! container statuses, and no way back from a terminal phase.

use std::collections::BTreeSet;

use super::s;
use super::update::changed_paths;
use crate::status::FieldError;
use crate::v1::{Pod, PodSpec};
use crate::validation::meta::{validate_annotations, validate_object_labels};
use crate::validation::names::{is_qualified_name, is_valid_ip, name_is_dns_subdomain};
use crate::validation::{
    child, index, push_invalid, validate_object_meta_update, FieldErrors, IS_NEGATIVE_ERROR_MSG,
};

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
