//! Nodes (minions): name, taints, pod CIDRs, capacity, addresses.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};

use crate::status::FieldError;
use crate::v1::Node;

use super::names::{is_qualified_name, is_valid_ip, is_valid_label_value, name_is_dns_subdomain};
use super::quantity::{quantity_error, ParsedQuantity};
use super::{
    child, index, key, push_invalid, validate_object_meta_update, validate_object_meta_with,
    FieldErrors, IS_NEGATIVE_ERROR_MSG,
};

const TAINT_EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "PreferNoSchedule"];
const CONDITION_STATUSES: &[&str] = &["False", "True", "Unknown"];

fn s(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

/// Validates a node for create: metadata (cluster-scoped, the name a DNS
/// subdomain), taints, pod CIDRs, and the status it may carry (capacity and
/// allocatable quantities, addresses, conditions).
pub fn validate_node(node: &Node) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&node.metadata, false, name_is_dns_subdomain, "metadata");
    let empty_spec = NodeSpec::default();
    let spec = node.spec.as_ref().unwrap_or(&empty_spec);
    validate_taints(spec, &mut errs);
    for (i, cidr) in spec.pod_cidrs.iter().flatten().enumerate() {
        validate_cidr(cidr, &index("spec.podCIDRs", i), &mut errs);
    }
    if let Some(cidr) = spec.pod_cidr.as_ref().filter(|c| !c.is_empty()) {
        validate_cidr(cidr, "spec.podCIDR", &mut errs);
    }
    if let Some(status) = &node.status {
        validate_status(status, &mut errs);
    }
    errs
}

fn validate_taints(spec: &NodeSpec, errs: &mut FieldErrors) {
    let mut seen = BTreeSet::new();
    for (i, taint) in spec.taints.iter().flatten().enumerate() {
        let p = index("spec.taints", i);
        if taint.key.is_empty() {
            errs.push(FieldError::required(child(&p, "key"), ""));
        } else {
            push_invalid(
                errs,
                &child(&p, "key"),
                &taint.key,
                is_qualified_name(&taint.key),
            );
        }
        let value = s(&taint.value);
        push_invalid(
            errs,
            &child(&p, "value"),
            value,
            is_valid_label_value(value),
        );
        if taint.effect.is_empty() {
            errs.push(FieldError::required(child(&p, "effect"), ""));
        } else if !TAINT_EFFECTS.contains(&taint.effect.as_str()) {
            errs.push(FieldError::not_supported(
                child(&p, "effect"),
                &taint.effect,
                TAINT_EFFECTS,
            ));
        }
        if !seen.insert((taint.key.as_str(), taint.effect.as_str())) {
            errs.push(FieldError::duplicate(
                &p,
                format!("{}:{}", taint.key, taint.effect),
            ));
        }
    }
}

/// `a.b.c.d/n` or `v6/n` with a prefix length that fits the address.
fn validate_cidr(value: &str, path: &str, errs: &mut FieldErrors) {
    let ok = value.split_once('/').is_some_and(|(ip, bits)| {
        let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
            return false;
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        !bits.is_empty()
            && bits.bytes().all(|b| b.is_ascii_digit())
            && bits.parse::<u32>().is_ok_and(|b| b <= max)
    });
    if !ok {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
}

fn validate_status(status: &NodeStatus, errs: &mut FieldErrors) {
    for (field, list) in [
        ("capacity", &status.capacity),
        ("allocatable", &status.allocatable),
    ] {
        for (name, q) in list.iter().flatten() {
            let p = key(&child("status", field), name);
            push_invalid(errs, &p, name, is_qualified_name(name));
            match ParsedQuantity::parse(&q.0) {
                Err(e) => errs.push(quantity_error(&p, &q.0, &e)),
                Ok(v) if v.is_negative() => {
                    errs.push(FieldError::invalid(&p, &q.0, IS_NEGATIVE_ERROR_MSG));
                }
                Ok(_) => {}
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, address) in status.addresses.iter().flatten().enumerate() {
        let p = index("status.addresses", i);
        if address.address.is_empty() {
            errs.push(FieldError::required(child(&p, "address"), ""));
        } else if matches!(address.type_.as_str(), "InternalIP" | "ExternalIP") {
            push_invalid(
                errs,
                &child(&p, "address"),
                &address.address,
                is_valid_ip(&address.address),
            );
        }
        if address.type_.is_empty() {
            errs.push(FieldError::required(child(&p, "type"), ""));
        }
        if !seen.insert((address.type_.as_str(), address.address.as_str())) {
            errs.push(FieldError::duplicate(
                &p,
                format!("{}: {}", address.type_, address.address),
            ));
        }
    }
    for (i, condition) in status.conditions.iter().flatten().enumerate() {
        let p = index("status.conditions", i);
        if condition.type_.is_empty() {
            errs.push(FieldError::required(child(&p, "type"), ""));
        }
        if !CONDITION_STATUSES.contains(&condition.status.as_str()) {
            errs.push(FieldError::not_supported(
                child(&p, "status"),
                &condition.status,
                CONDITION_STATUSES,
            ));
        }
    }
}

/// Validates an update of a node (also for `nodes/{name}/status`): metadata
/// immutables unchanged, the new node valid, and in the spec only labels
/// (metadata), taints, `unschedulable`, and a pod CIDR or provider ID that
/// was unset may change. Status may change freely.
pub fn validate_node_update(new: &Node, old: &Node) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_node(new));
    let empty = NodeSpec::default();
    let ns = new.spec.as_ref().unwrap_or(&empty);
    let os = old.spec.as_ref().unwrap_or(&empty);

    let old_cidrs = os.pod_cidrs.as_deref().unwrap_or(&[]);
    if !old_cidrs.is_empty() && ns.pod_cidrs.as_deref().unwrap_or(&[]) != old_cidrs {
        errs.push(FieldError::forbidden(
            "spec.podCIDRs",
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    if !s(&os.pod_cidr).is_empty() && s(&ns.pod_cidr) != s(&os.pod_cidr) {
        errs.push(FieldError::forbidden(
            "spec.podCIDR",
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    if !s(&os.provider_id).is_empty() && s(&ns.provider_id) != s(&os.provider_id) {
        errs.push(FieldError::forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        ));
    }

    let mut munged = ns.clone();
    munged.taints.clone_from(&os.taints);
    munged.unschedulable = os.unschedulable;
    munged.pod_cidrs.clone_from(&os.pod_cidrs);
    munged.pod_cidr.clone_from(&os.pod_cidr);
    munged.provider_id.clone_from(&os.provider_id);
    munged.config_source.clone_from(&os.config_source);
    if munged != *os {
        errs.push(FieldError::forbidden(
            "spec",
            "node updates may only change labels, taints, unschedulable, or an unset podCIDR \
             or providerID",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::FieldErrorKind::*;
    use crate::v1::{NodeAddress, NodeCondition, ObjectMeta, Quantity};
    use crate::validation::testutil::{assert_exactly, assert_valid};
    use k8s_openapi::api::core::v1::Taint;
    use std::collections::BTreeMap;

    fn node() -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("10.245.1.3".into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                capacity: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity("1".into())),
                    ("memory".to_string(), Quantity("3221225472".into())),
                    ("pods".to_string(), Quantity("110".into())),
                ])),
                addresses: Some(vec![
                    NodeAddress {
                        address: "10.245.1.3".into(),
                        type_: "InternalIP".into(),
                    },
                    NodeAddress {
                        address: "minion-1".into(),
                        type_: "Hostname".into(),
                    },
                ]),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
        }
    }

    #[test]
    fn valid_node() {
        assert_valid(&validate_node(&node()));
    }

    #[test]
    fn name_and_namespace() {
        let mut n = node();
        n.metadata.name = Some("Minion_1".into());
        n.metadata.namespace = Some("default".into());
        assert_exactly(
            &validate_node(&n),
            &[
                ("metadata.name", Invalid),
                ("metadata.namespace", Forbidden),
            ],
        );
    }

    #[test]
    fn spec_and_status_faults() {
        let mut n = node();
        n.spec = Some(NodeSpec {
            taints: Some(vec![
                Taint {
                    key: "dedicated".into(),
                    value: Some("gpu".into()),
                    effect: "NoSchedule".into(),
                    ..Taint::default()
                },
                Taint {
                    key: "dedicated".into(),
                    effect: "NoSchedule".into(),
                    ..Taint::default()
                },
                Taint {
                    key: String::new(),
                    effect: "Sometimes".into(),
                    ..Taint::default()
                },
            ]),
            pod_cidrs: Some(vec!["10.244.1.0/24".into(), "10.244.1.0/33".into()]),
            ..NodeSpec::default()
        });
        let status = n.status.as_mut().expect("status");
        status
            .capacity
            .as_mut()
            .expect("capacity")
            .insert("memory".into(), Quantity("lots".into()));
        status
            .addresses
            .as_mut()
            .expect("addresses")
            .push(NodeAddress {
                address: "not-an-ip".into(),
                type_: "InternalIP".into(),
            });
        status.conditions.as_mut().expect("conditions")[0].status = "Maybe".into();
        assert_exactly(
            &validate_node(&n),
            &[
                ("spec.taints[1]", Duplicate),
                ("spec.taints[2].key", Required),
                ("spec.taints[2].effect", NotSupported),
                ("spec.podCIDRs[1]", Invalid),
                ("status.capacity[memory]", Invalid),
                ("status.addresses[2].address", Invalid),
                ("status.conditions[0].status", NotSupported),
            ],
        );
    }

    #[test]
    fn update_rules() {
        let old = node();
        let mut new = node();
        new.metadata.labels = Some(BTreeMap::from([("zone".to_string(), "a".to_string())]));
        new.spec = Some(NodeSpec {
            unschedulable: Some(true),
            pod_cidr: Some("10.244.1.0/24".into()),
            ..NodeSpec::default()
        });
        assert_valid(&validate_node_update(&new, &old));

        let mut old = node();
        old.spec = Some(NodeSpec {
            pod_cidr: Some("10.244.1.0/24".into()),
            provider_id: Some("local://1".into()),
            ..NodeSpec::default()
        });
        let mut new = node();
        new.spec = Some(NodeSpec {
            pod_cidr: Some("10.244.2.0/24".into()),
            provider_id: Some("local://2".into()),
            external_id: Some("x".into()),
            ..NodeSpec::default()
        });
        assert_exactly(
            &validate_node_update(&new, &old),
            &[
                ("spec.podCIDR", Forbidden),
                ("spec.providerID", Forbidden),
                ("spec", Forbidden),
            ],
        );
    }
}
