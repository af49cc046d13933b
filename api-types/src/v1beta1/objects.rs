//! Services, replication controllers, minions, endpoints, events, bindings
//! and Status: v1beta1 ↔ v1.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::error::{ConversionError, Result};
use super::meta::{IntOrString, TypeMeta};
use super::paths::{field_path_to_v1beta1, replace_path};
use super::pod::{
    manifest_into_spec_at, meta_from_v1, meta_into_v1, non_empty, non_empty_map, non_empty_vec,
    or_empty, port_from_v1, port_into_v1, protocol_into_v1, spec_to_manifest,
};
use super::quantity;
use super::types::{
    Binding, Endpoints, Event, Minion, NodeCondition, NodeResources, NodeStatus, ObjectReference,
    PodState, PodTemplate, ReplicationController, ReplicationControllerState, Service, Status,
    StatusCause, StatusDetails,
};
use super::Versioned;
use crate::{kinds, v1};

// ---------------------------------------------------------------- services

impl Versioned for Service {
    type V1 = v1::Service;
    const KIND: &'static str = "Service";

    /// One v1 port from `port`/`protocol`/`containerPort` (`0` or `""`
    /// leaves `targetPort` unset, i.e. the same as `port`); `portalIP` →
    /// `clusterIP`, `publicIPs` → `externalIPs`,
    /// `createExternalLoadBalancer` → `type: LoadBalancer`. `proxyPort` is
    /// ignored.
    fn into_v1(self) -> Result<v1::Service> {
        let target_port = if self.container_port.is_zero() {
            None
        } else {
            Some(port_into_v1(self.container_port, "containerPort")?)
        };
        let spec = core::ServiceSpec {
            ports: Some(vec![core::ServicePort {
                port: self.port,
                protocol: protocol_into_v1(self.protocol),
                target_port,
                ..core::ServicePort::default()
            }]),
            selector: non_empty_map(self.selector),
            cluster_ip: non_empty(self.portal_ip),
            external_ips: non_empty_vec(self.public_ips),
            session_affinity: non_empty(self.session_affinity),
            type_: self
                .create_external_load_balancer
                .then(|| "LoadBalancer".to_string()),
            ..core::ServiceSpec::default()
        };
        Ok(v1::Service {
            metadata: meta_into_v1(self.type_meta, self.labels),
            spec: Some(spec),
            status: None,
        })
    }

    /// A v1 service with several ports shows its **first** port only: a
    /// v1beta1 service has one.
    fn from_v1(svc: &v1::Service) -> Self {
        let (type_meta, labels) = meta_from_v1(Self::KIND, &svc.metadata, true);
        let default_spec = core::ServiceSpec::default();
        let spec = svc.spec.as_ref().unwrap_or(&default_spec);
        let first = spec.ports.as_ref().and_then(|p| p.first());
        Service {
            type_meta,
            port: first.map_or(0, |p| p.port),
            protocol: or_empty(first.and_then(|p| p.protocol.as_ref())),
            labels,
            selector: spec.selector.clone().unwrap_or_default(),
            create_external_load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
            public_ips: spec.external_ips.clone().unwrap_or_default(),
            container_port: first
                .and_then(|p| p.target_port.as_ref())
                .map(port_from_v1)
                .unwrap_or_default(),
            portal_ip: or_empty(spec.cluster_ip.as_ref()),
            proxy_port: 0,
            session_affinity: or_empty(spec.session_affinity.as_ref()),
        }
    }

    fn type_meta(&self) -> &TypeMeta {
        &self.type_meta
    }

    fn type_meta_mut(&mut self) -> &mut TypeMeta {
        &mut self.type_meta
    }
}

// ---------------------------------------------------------------- controllers

impl Versioned for ReplicationController {
    type V1 = v1::ReplicationController;
    const KIND: &'static str = "ReplicationController";

    /// `desiredState.replicas`/`replicaSelector`/`podTemplate` →
    /// `spec.replicas`/`selector`/`template`; a non-zero
    /// `currentState.replicas` → `status.replicas`. The template's
    /// `manifest.id`/`uuid` are dropped.
    fn into_v1(self) -> Result<v1::ReplicationController> {
        let ReplicationControllerState {
            replicas,
            replica_selector,
            pod_template,
        } = self.desired_state;
        let PodTemplate {
            desired_state: template_state,
            labels: template_labels,
        } = pod_template;
        let mut template_spec = manifest_into_spec_at(
            template_state.manifest,
            "desiredState.podTemplate.desiredState.manifest",
        )?;
        template_spec.node_name = non_empty(template_state.host);
        let template = core::PodTemplateSpec {
            metadata: (!template_labels.is_empty()).then(|| ObjectMeta {
                labels: Some(template_labels),
                ..ObjectMeta::default()
            }),
            spec: Some(template_spec),
        };
        let current = self.current_state.replicas;
        Ok(v1::ReplicationController {
            metadata: meta_into_v1(self.type_meta, self.labels),
            spec: Some(core::ReplicationControllerSpec {
                replicas: Some(replicas),
                selector: non_empty_map(replica_selector),
                template: Some(template),
                ..core::ReplicationControllerSpec::default()
            }),
            status: (current != 0).then(|| core::ReplicationControllerStatus {
                replicas: current,
                ..core::ReplicationControllerStatus::default()
            }),
        })
    }

    /// Unset `spec.replicas` shows as 1 (v1's default). `currentState`
    /// carries only `replicas`, its other keys empty as in v0.5.
    fn from_v1(rc: &v1::ReplicationController) -> Self {
        let (type_meta, labels) = meta_from_v1(Self::KIND, &rc.metadata, true);
        let default_spec = core::ReplicationControllerSpec::default();
        let spec = rc.spec.as_ref().unwrap_or(&default_spec);
        let default_pod_spec = core::PodSpec::default();
        let template = spec.template.as_ref();
        let pod_spec = template
            .and_then(|t| t.spec.as_ref())
            .unwrap_or(&default_pod_spec);
        let pod_template = PodTemplate {
            desired_state: PodState {
                manifest: spec_to_manifest(pod_spec, "", ""),
                host: or_empty(pod_spec.node_name.as_ref()),
                ..PodState::default()
            },
            labels: template
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
        };
        ReplicationController {
            type_meta,
            desired_state: ReplicationControllerState {
                replicas: spec.replicas.unwrap_or(1),
                replica_selector: spec.selector.clone().unwrap_or_default(),
                pod_template,
            },
            current_state: ReplicationControllerState {
                replicas: rc.status.as_ref().map_or(0, |s| s.replicas),
                ..ReplicationControllerState::default()
            },
            labels,
        }
    }

    fn type_meta(&self) -> &TypeMeta {
        &self.type_meta
    }

    fn type_meta_mut(&mut self) -> &mut TypeMeta {
        &mut self.type_meta
    }
}

// ---------------------------------------------------------------- minions

/// v1beta1 condition statuses and their v1 spellings.
const CONDITION_STATUSES: [(&str, &str); 3] =
    [("Full", "True"), ("None", "False"), ("Unknown", "Unknown")];

impl Versioned for Minion {
    type V1 = v1::Node;
    const KIND: &'static str = "Minion";

    /// `hostIP` → one `InternalIP` address; capacity `cpu` (millicores)
    /// and `memory` (bytes) → quantities, other resources as given; a
    /// string capacity is taken as a v1 quantity. Condition `kind` →
    /// `type`, `Full`/`None`/`Unknown` → `True`/`False`/`Unknown` (v1
    /// spellings accepted too). The namespace is ignored.
    fn into_v1(self) -> Result<v1::Node> {
        let mut metadata = meta_into_v1(self.type_meta, self.labels);
        metadata.namespace = None;
        let capacity: BTreeMap<_, _> = self
            .resources
            .capacity
            .into_iter()
            .map(|(name, value)| {
                let q = match (name.as_str(), value) {
                    ("cpu", IntOrString::Int(m)) => quantity::from_millis(m),
                    (_, IntOrString::Int(n)) => quantity::from_units(n),
                    (_, IntOrString::String(s)) => v1::Quantity(s),
                };
                (name, q)
            })
            .collect();
        let conditions = self
            .status
            .conditions
            .into_iter()
            .enumerate()
            .map(|(i, c)| -> Result<core::NodeCondition> {
                let status = CONDITION_STATUSES
                    .iter()
                    .find(|(beta, v1)| c.status == *beta || c.status == *v1)
                    .map(|(_, v1)| (*v1).to_string())
                    .ok_or_else(|| {
                        ConversionError::not_supported(
                            format!("status.conditions[{i}].status"),
                            &c.status,
                            &["Full", "None", "Unknown"],
                        )
                    })?;
                Ok(core::NodeCondition {
                    type_: c.kind,
                    status,
                    last_heartbeat_time: c.last_probe_time.map(Time),
                    last_transition_time: c.last_transition_time.map(Time),
                    reason: non_empty(c.reason),
                    message: non_empty(c.message),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let status = core::NodeStatus {
            addresses: (!self.host_ip.is_empty()).then(|| {
                vec![core::NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.host_ip,
                }]
            }),
            capacity: non_empty_map(capacity),
            conditions: non_empty_vec(conditions),
            phase: non_empty(self.status.phase),
            ..core::NodeStatus::default()
        };
        Ok(v1::Node {
            metadata,
            spec: None,
            status: (status != core::NodeStatus::default()).then_some(status),
        })
    }

    /// `hostIP` is the first `InternalIP` address, else the first
    /// `ExternalIP`. Capacity `cpu` is shown in millicores and `memory`
    /// in bytes (rounded up, see the module docs); another resource is
    /// an integer when its quantity is a whole number, else its quantity
    /// string.
    fn from_v1(node: &v1::Node) -> Self {
        let (type_meta, labels) = meta_from_v1(Self::KIND, &node.metadata, false);
        let default_status = core::NodeStatus::default();
        let status = node.status.as_ref().unwrap_or(&default_status);
        let address_of = |kind: &str| {
            status
                .addresses
                .iter()
                .flatten()
                .find(|a| a.type_ == kind)
                .map(|a| a.address.clone())
        };
        let host_ip = address_of("InternalIP")
            .or_else(|| address_of("ExternalIP"))
            .unwrap_or_default();
        let capacity = status
            .capacity
            .iter()
            .flatten()
            .map(|(name, q)| {
                let value = match name.as_str() {
                    "cpu" => quantity::to_millis(q).map(IntOrString::Int),
                    "memory" => quantity::to_units(q).map(IntOrString::Int),
                    _ => quantity::to_exact_units(q).map(IntOrString::Int),
                };
                (
                    name.clone(),
                    value.unwrap_or_else(|| IntOrString::String(q.0.clone())),
                )
            })
            .collect();
        let conditions = status
            .conditions
            .iter()
            .flatten()
            .map(|c| NodeCondition {
                kind: c.type_.clone(),
                status: CONDITION_STATUSES
                    .iter()
                    .find(|(_, v1)| c.status == *v1)
                    .map_or_else(|| c.status.clone(), |(beta, _)| (*beta).to_string()),
                last_probe_time: c.last_heartbeat_time.as_ref().map(|t| t.0),
                last_transition_time: c.last_transition_time.as_ref().map(|t| t.0),
                reason: or_empty(c.reason.as_ref()),
                message: or_empty(c.message.as_ref()),
            })
            .collect();
        Minion {
            type_meta,
            host_ip,
            resources: NodeResources { capacity },
            labels,
            status: NodeStatus {
                phase: or_empty(status.phase.as_ref()),
                conditions,
            },
        }
    }

    fn type_meta(&self) -> &TypeMeta {
        &self.type_meta
    }

    fn type_meta_mut(&mut self) -> &mut TypeMeta {
        &mut self.type_meta
    }
}

// ---------------------------------------------------------------- endpoints

/// Splits `ip:port` or `[ipv6]:port`.
fn split_host_port(endpoint: &str) -> Option<(String, i32)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then(|| (host.to_string(), i32::from(port)))
}

/// `ip:port`, bracketing IPv6 addresses.
fn join_host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

impl Versioned for Endpoints {
    type V1 = v1::Endpoints;
    const KIND: &'static str = "Endpoints";

    /// The `ip:port` strings are repacked the way Kubernetes repacks
    /// subsets: each address collects its ports (duplicates dropped), and
    /// addresses with the same set of ports share one subset (in order of
    /// first appearance; ports in the order the subset's first address
    /// listed them). Ports are unnamed with no protocol. Fails on a string
    /// that is not `ip:port` with a port in 1..65535.
    fn into_v1(self) -> Result<v1::Endpoints> {
        let mut by_ip: Vec<(String, Vec<i32>)> = Vec::new();
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let (ip, port) = split_host_port(endpoint).ok_or_else(|| {
                ConversionError::invalid(format!("endpoints[{i}]"), endpoint, "must be ip:port")
            })?;
            match by_ip.iter_mut().find(|(known, _)| *known == ip) {
                Some((_, ports)) if ports.contains(&port) => {}
                Some((_, ports)) => ports.push(port),
                None => by_ip.push((ip, vec![port])),
            }
        }
        let sorted = |ports: &[i32]| {
            let mut ports = ports.to_vec();
            ports.sort_unstable();
            ports
        };
        let mut subsets: Vec<(Vec<i32>, Vec<String>)> = Vec::new();
        for (ip, ports) in by_ip {
            let key = sorted(&ports);
            match subsets
                .iter_mut()
                .find(|(s_ports, _)| sorted(s_ports) == key)
            {
                Some((_, ips)) => ips.push(ip),
                None => subsets.push((ports, vec![ip])),
            }
        }
        let subsets = subsets
            .into_iter()
            .map(|(ports, ips)| core::EndpointSubset {
                addresses: Some(
                    ips.into_iter()
                        .map(|ip| core::EndpointAddress {
                            ip,
                            ..core::EndpointAddress::default()
                        })
                        .collect(),
                ),
                ports: Some(
                    ports
                        .into_iter()
                        .map(|port| core::EndpointPort {
                            port,
                            ..core::EndpointPort::default()
                        })
                        .collect(),
                ),
                not_ready_addresses: None,
            })
            .collect();
        Ok(v1::Endpoints {
            metadata: meta_into_v1(self.type_meta, BTreeMap::new()),
            subsets: non_empty_vec(subsets),
        })
    }

    /// Flattened as subset by subset, port by port, address by address:
    /// `{addresses: [a, b], ports: [80, 443]}` becomes `a:80, b:80, a:443,
    /// b:443`. Not-ready addresses, port names and protocols are dropped,
    /// and so are the labels.
    fn from_v1(ep: &v1::Endpoints) -> Self {
        let (type_meta, _labels) = meta_from_v1(Self::KIND, &ep.metadata, true);
        let endpoints = ep
            .subsets
            .iter()
            .flatten()
            .flat_map(|subset| {
                subset.ports.iter().flatten().flat_map(move |port| {
                    subset
                        .addresses
                        .iter()
                        .flatten()
                        .map(move |a| join_host_port(&a.ip, port.port))
                })
            })
            .collect();
        Endpoints {
            type_meta,
            endpoints,
        }
    }

    fn type_meta(&self) -> &TypeMeta {
        &self.type_meta
    }

    fn type_meta_mut(&mut self) -> &mut TypeMeta {
        &mut self.type_meta
    }
}

// ---------------------------------------------------------------- events

impl Versioned for Event {
    type V1 = v1::Event;
    const KIND: &'static str = "Event";

    /// `status` → `action`, `source` → `source.component`, `timestamp` →
    /// both `firstTimestamp` and `lastTimestamp`.
    fn into_v1(self) -> Result<v1::Event> {
        let r = self.involved_object;
        Ok(v1::Event {
            metadata: meta_into_v1(self.type_meta, BTreeMap::new()),
            involved_object: core::ObjectReference {
                kind: non_empty(r.kind),
                namespace: non_empty(r.namespace),
                name: non_empty(r.name),
                uid: non_empty(r.uid),
                api_version: non_empty(r.api_version),
                resource_version: non_empty(r.resource_version),
                field_path: non_empty(r.field_path),
            },
            action: non_empty(self.status),
            reason: non_empty(self.reason),
            message: non_empty(self.message),
            source: non_empty(self.source).map(|component| core::EventSource {
                component: Some(component),
                host: None,
            }),
            first_timestamp: self.timestamp.map(Time),
            last_timestamp: self.timestamp.map(Time),
            ..v1::Event::default()
        })
    }

    /// `timestamp` is `lastTimestamp`, else `firstTimestamp`, else
    /// `eventTime`.
    fn from_v1(ev: &v1::Event) -> Self {
        let (type_meta, _labels) = meta_from_v1(Self::KIND, &ev.metadata, true);
        let r = &ev.involved_object;
        Event {
            type_meta,
            involved_object: ObjectReference {
                kind: or_empty(r.kind.as_ref()),
                namespace: or_empty(r.namespace.as_ref()),
                name: or_empty(r.name.as_ref()),
                uid: or_empty(r.uid.as_ref()),
                api_version: or_empty(r.api_version.as_ref()),
                resource_version: or_empty(r.resource_version.as_ref()),
                field_path: or_empty(r.field_path.as_ref()),
            },
            status: or_empty(ev.action.as_ref()),
            reason: or_empty(ev.reason.as_ref()),
            message: or_empty(ev.message.as_ref()),
            source: or_empty(ev.source.as_ref().and_then(|s| s.component.as_ref())),
            timestamp: ev
                .last_timestamp
                .as_ref()
                .or(ev.first_timestamp.as_ref())
                .map(|t| t.0)
                .or_else(|| ev.event_time.as_ref().map(|t| t.0)),
        }
    }

    fn type_meta(&self) -> &TypeMeta {
        &self.type_meta
    }

    fn type_meta_mut(&mut self) -> &mut TypeMeta {
        &mut self.type_meta
    }
}

// ---------------------------------------------------------------- bindings

impl Versioned for Binding {
    type V1 = v1::Binding;
    const KIND: &'static str = "Binding";

    /// `metadata.name` = `podID` (else the binding's `id`), `target` =
    /// `{kind: Node, name: host}`.
    fn into_v1(self) -> Result<v1::Binding> {
        let mut tm = self.type_meta;
        if !self.pod_id.is_empty() {
            tm.id = self.pod_id;
        }
        Ok(v1::Binding {
            metadata: meta_into_v1(tm, BTreeMap::new()),
            target: core::ObjectReference {
                kind: Some("Node".into()),
                name: non_empty(self.host),
                ..core::ObjectReference::default()
            },
        })
    }

    fn from_v1(b: &v1::Binding) -> Self {
        let (type_meta, _labels) = meta_from_v1(Self::KIND, &b.metadata, true);
        Binding {
            pod_id: type_meta.id.clone(),
            host: or_empty(b.target.name.as_ref()),
            type_meta,
        }
    }

    fn type_meta(&self) -> &TypeMeta {
        &self.type_meta
    }

    fn type_meta_mut(&mut self) -> &mut TypeMeta {
        &mut self.type_meta
    }
}

// ---------------------------------------------------------------- status

/// The lower-camel kind v0.5 put in `details.kind` (`pod`,
/// `replicationController`, `minion`).
fn detail_kind(resource: &kinds::ResourceKind) -> String {
    let beta = resource.v1beta1_kind;
    let mut chars = beta.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

impl Status {
    /// A v1 Status in v1beta1 terms: `details.name` → `details.id`, and
    /// when `details.kind` names a known resource (`pods`, `Pod`...) the
    /// kind becomes v0.5's (`pod`), each cause's field path and the
    /// messages are rewritten with [`field_path_to_v1beta1`], and a
    /// message starting with `<kind> "` is made to start with `pod "`.
    pub fn from_v1(status: &v1::Status) -> Self {
        let mut out = Status {
            type_meta: TypeMeta::top_level("Status"),
            status: or_empty(status.status.as_ref()),
            message: or_empty(status.message.as_ref()),
            reason: or_empty(status.reason.as_ref()),
            details: None,
            code: status.code.unwrap_or(0),
        };
        let Some(details) = &status.details else {
            return out;
        };
        let v1_kind = or_empty(details.kind.as_ref());
        let resource = kinds::lookup(&v1_kind);
        let translate = |field: &str| match resource {
            Some(r) => field_path_to_v1beta1(r.kind, field),
            None if v1_kind.eq_ignore_ascii_case("binding")
                || v1_kind.eq_ignore_ascii_case("bindings") =>
            {
                field_path_to_v1beta1("Binding", field)
            }
            None => field.to_string(),
        };
        let mut renames: Vec<(String, String)> = Vec::new();
        let causes = details
            .causes
            .iter()
            .flatten()
            .map(|c| {
                let field = or_empty(c.field.as_ref());
                let beta = translate(&field);
                let mut message = or_empty(c.message.as_ref());
                if !field.is_empty() && beta != field {
                    message = replace_path(&message, &field, &beta);
                    renames.push((field, beta.clone()));
                }
                StatusCause {
                    reason: or_empty(c.reason.as_ref()),
                    message,
                    field: beta,
                }
            })
            .collect();
        // Longest first, so a path is never rewritten through a prefix.
        renames.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.cmp(b)));
        renames.dedup();
        for (from, to) in &renames {
            out.message = replace_path(&out.message, from, to);
        }
        let kind = match resource {
            Some(r) => {
                let beta_kind = detail_kind(r);
                if !v1_kind.is_empty() {
                    if let Some(rest) = out.message.strip_prefix(&format!("{v1_kind} \"")) {
                        out.message = format!("{beta_kind} \"{rest}");
                    }
                }
                beta_kind
            }
            None => v1_kind,
        };
        out.details = Some(StatusDetails {
            id: or_empty(details.name.as_ref()),
            kind,
            causes,
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::pod::join;
    use super::*;

    #[test]
    fn host_ports_split_and_join() {
        assert_eq!(
            split_host_port("10.0.0.1:80"),
            Some(("10.0.0.1".into(), 80))
        );
        assert_eq!(split_host_port("[::1]:443"), Some(("::1".into(), 443)));
        assert_eq!(split_host_port("10.0.0.1"), None);
        assert_eq!(split_host_port("10.0.0.1:0"), None);
        assert_eq!(split_host_port("10.0.0.1:70000"), None);
        assert_eq!(split_host_port(":80"), None);
        assert_eq!(join_host_port("::1", 443), "[::1]:443");
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
    }

    #[test]
    fn detail_kinds_are_lower_camel() {
        assert_eq!(detail_kind(&kinds::PODS), "pod");
        assert_eq!(
            detail_kind(&kinds::REPLICATION_CONTROLLERS),
            "replicationController"
        );
        assert_eq!(detail_kind(&kinds::NODES), "minion");
        assert_eq!(detail_kind(&kinds::ENDPOINTS), "endpoints");
    }

    #[test]
    fn join_skips_empty_prefix() {
        assert_eq!(join("", "version"), "version");
        assert_eq!(
            join("desiredState.manifest", "version"),
            "desiredState.manifest.version"
        );
    }
}
