//! Services: type, ports, selector, cluster IP, external IPs, affinity.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use crate::status::FieldError;
use crate::v1::{IntOrString, Service, ServicePort, ServiceSpec};

use super::meta::validate_labels;
use super::names::{
    is_dns1123_subdomain, is_non_special_ip, is_valid_ip, is_valid_port_name, is_valid_port_num,
    name_is_dns1035_label,
};
use super::{
    child, index, push_invalid, validate_object_meta_update, validate_object_meta_with,
    validate_port_name, validate_port_number_and_protocol, FieldErrors,
};

/// The ports a `nodePort` may use (Kubernetes' default
/// `--service-node-port-range`).
pub const NODE_PORT_RANGE: RangeInclusive<i32> = 30000..=32767;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const SESSION_AFFINITIES: &[&str] = &["ClientIP", "None"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
/// The kubelet's port, which a load balancer may not expose.
const KUBELET_PORT: i32 = 10250;
/// Longest ClientIP affinity timeout (a day).
const MAX_CLIENT_IP_TIMEOUT_SECONDS: i32 = 86400;

fn s(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

/// The service type, with an absent one read as the default `ClusterIP`.
fn service_type(spec: &ServiceSpec) -> &str {
    match s(&spec.type_) {
        "" => "ClusterIP",
        t => t,
    }
}

/// Validates a service for create: metadata (namespaced, the name a DNS-1035
/// label) and spec.
///
/// Ports are required unless the service is headless (`clusterIP: None`) or
/// `ExternalName`; names are required and unique when there is more than one
/// port; `nodePort`s (only for `NodePort` and `LoadBalancer`) lie in
/// [`NODE_PORT_RANGE`]; `clusterIP` is empty, `None` or an IP.
pub fn validate_service(svc: &Service) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&svc.metadata, true, name_is_dns1035_label, "metadata");
    let empty = ServiceSpec::default();
    let spec = svc.spec.as_ref().unwrap_or(&empty);
    let type_ = service_type(spec);
    if !SERVICE_TYPES.contains(&type_) {
        errs.push(FieldError::not_supported("spec.type", type_, SERVICE_TYPES));
    }
    let cluster_ip = s(&spec.cluster_ip);
    let headless = cluster_ip == "None";
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    if ports.is_empty() && !headless && type_ != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }

    match type_ {
        "LoadBalancer" | "NodePort" => {
            if headless {
                errs.push(FieldError::invalid(
                    "spec.clusterIP",
                    cluster_ip,
                    format!("may not be set to 'None' for {type_} services"),
                ));
            }
            if type_ == "LoadBalancer" {
                for (i, port) in ports.iter().enumerate() {
                    if port.port == KUBELET_PORT {
                        errs.push(FieldError::invalid(
                            index("spec.ports", i),
                            port.port,
                            format!(
                                "may not expose port {KUBELET_PORT} externally since it is used \
                                 by kubelet"
                            ),
                        ));
                    }
                }
            }
        }
        "ExternalName" => {
            if !cluster_ip.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIP",
                    "may not be set for ExternalName services",
                ));
            }
            let name = s(&spec.external_name);
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                push_invalid(
                    &mut errs,
                    "spec.externalName",
                    name,
                    is_dns1123_subdomain(cname),
                );
            }
        }
        _ => {}
    }

    if !cluster_ip.is_empty() && !headless && !is_valid_ip(cluster_ip).is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIP",
            cluster_ip,
            "must be empty, 'None', or a valid IP address",
        ));
    }
    for (i, ip) in spec.cluster_ips.iter().flatten().enumerate() {
        let p = index("spec.clusterIPs", i);
        if ip != "None" && !is_valid_ip(ip).is_empty() {
            errs.push(FieldError::invalid(
                &p,
                ip,
                "must be empty, 'None', or a valid IP address",
            ));
        } else if i == 0 && !cluster_ip.is_empty() && ip != cluster_ip {
            errs.push(FieldError::invalid(
                &p,
                ip,
                "must be same as `spec.clusterIP`",
            ));
        }
    }

    let mut names = BTreeSet::new();
    let mut port_keys = BTreeSet::new();
    let mut node_port_keys = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        validate_service_port(port, ports.len() > 1, &mut names, &p, &mut errs);
        let protocol = match s(&port.protocol) {
            "" => "TCP",
            proto => proto,
        };
        if !port_keys.insert((protocol, port.port)) {
            errs.push(FieldError::duplicate(
                &p,
                format!("{}/{protocol}", port.port),
            ));
        }
        if let Some(node_port) = port.node_port.filter(|&np| np != 0) {
            let np_path = child(&p, "nodePort");
            if type_ == "ClusterIP" || type_ == "ExternalName" {
                errs.push(FieldError::forbidden(
                    np_path,
                    format!("may not be used when `type` is '{type_}'"),
                ));
            } else if !NODE_PORT_RANGE.contains(&node_port) {
                errs.push(FieldError::invalid(
                    np_path,
                    node_port,
                    format!(
                        "provided port is not in the valid range. The range of valid ports is \
                         {}-{}",
                        NODE_PORT_RANGE.start(),
                        NODE_PORT_RANGE.end()
                    ),
                ));
            } else if !node_port_keys.insert((protocol, node_port)) {
                errs.push(FieldError::duplicate(np_path, node_port));
            }
        }
    }

    if let Some(selector) = &spec.selector {
        errs.extend(validate_labels(selector, "spec.selector"));
    }

    let affinity = s(&spec.session_affinity);
    match affinity {
        "" | "None" => {
            if spec.session_affinity_config.is_some() && affinity == "None" {
                errs.push(FieldError::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        "ClientIP" => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            if let Some(t) = timeout {
                if !(1..=MAX_CLIENT_IP_TIMEOUT_SECONDS).contains(&t) {
                    errs.push(FieldError::invalid(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                        t,
                        format!(
                            "must be greater than 0 and less than \
                             {MAX_CLIENT_IP_TIMEOUT_SECONDS}"
                        ),
                    ));
                }
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            SESSION_AFFINITIES,
        )),
    }

    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        let p = index("spec.externalIPs", i);
        let msgs = is_valid_ip(ip);
        if msgs.is_empty() {
            push_invalid(&mut errs, &p, ip, is_non_special_ip(ip));
        } else {
            push_invalid(&mut errs, &p, ip, msgs);
        }
    }
    for (field, value) in [
        ("externalTrafficPolicy", &spec.external_traffic_policy),
        ("internalTrafficPolicy", &spec.internal_traffic_policy),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            if !TRAFFIC_POLICIES.contains(&v.as_str()) {
                errs.push(FieldError::not_supported(
                    child("spec", field),
                    v,
                    TRAFFIC_POLICIES,
                ));
            }
        }
    }
    errs
}

fn validate_service_port<'a>(
    port: &'a ServicePort,
    require_name: bool,
    names: &mut BTreeSet<&'a str>,
    path: &str,
    errs: &mut FieldErrors,
) {
    let name = s(&port.name);
    validate_port_name(errs, path, name, require_name);
    if !name.is_empty() && !names.insert(name) {
        errs.push(FieldError::duplicate(child(path, "name"), name));
    }
    validate_port_number_and_protocol(errs, path, port.port, port.protocol.as_ref());
    // An unset target port (absent, 0 or "") defaults to `port`.
    match &port.target_port {
        None => {}
        Some(IntOrString::Int(0)) => {}
        Some(IntOrString::Int(n)) => push_invalid(
            errs,
            &child(path, "targetPort"),
            &n.to_string(),
            is_valid_port_num(*n),
        ),
        Some(IntOrString::String(name)) if name.is_empty() => {}
        Some(IntOrString::String(name)) => push_invalid(
            errs,
            &child(path, "targetPort"),
            name,
            is_valid_port_name(name),
        ),
    }
}

/// Validates an update of a service: the new service must be valid, metadata
/// immutables unchanged, and `spec.clusterIP` may not change once set
/// (`Forbidden`), unless the service changes to or from `ExternalName`.
///
/// Call [`default_service_update`](crate::defaults::default_service_update)
/// first so that an update which leaves `clusterIP` out keeps the allocated
/// one.
pub fn validate_service_update(new: &Service, old: &Service) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    let empty = ServiceSpec::default();
    let ns = new.spec.as_ref().unwrap_or(&empty);
    let os = old.spec.as_ref().unwrap_or(&empty);
    let old_ip = s(&os.cluster_ip);
    let new_ip = s(&ns.cluster_ip);
    let external_name = service_type(ns) == "ExternalName" || service_type(os) == "ExternalName";
    if !old_ip.is_empty() && new_ip != old_ip && !external_name {
        errs.push(FieldError::forbidden(
            "spec.clusterIP",
            format!(
                "may not change once set (it is \"{old_ip}\", the update asks for \
                 \"{new_ip}\"); delete and recreate the service to change it"
            ),
        ));
    }
    errs.extend(validate_service(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::FieldErrorKind::*;
    use crate::v1::ObjectMeta;
    use crate::validation::testutil::{assert_exactly, assert_valid};
    use k8s_openapi::api::core::v1::{ClientIPConfig, SessionAffinityConfig};
    use std::collections::BTreeMap;

    fn port(name: Option<&str>, port: i32) -> ServicePort {
        ServicePort {
            name: name.map(Into::into),
            port,
            ..ServicePort::default()
        }
    }

    fn svc(spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("redis-master".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn basic() -> ServiceSpec {
        ServiceSpec {
            ports: Some(vec![port(None, 6379)]),
            selector: Some(BTreeMap::from([(
                "name".to_string(),
                "redis-master".to_string(),
            )])),
            ..ServiceSpec::default()
        }
    }

    #[test]
    fn valid_services() {
        assert_valid(&validate_service(&svc(basic())));
        let mut spec = basic();
        spec.type_ = Some("NodePort".into());
        spec.cluster_ip = Some("10.0.0.12".into());
        spec.session_affinity = Some("ClientIP".into());
        spec.external_ips = Some(vec!["10.245.1.3".into()]);
        spec.ports = Some(vec![
            ServicePort {
                node_port: Some(30080),
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::String("http".into())),
                ..port(Some("http"), 80)
            },
            ServicePort {
                protocol: Some("UDP".into()),
                target_port: Some(IntOrString::Int(5353)),
                ..port(Some("dns"), 53)
            },
        ]);
        assert_valid(&validate_service(&svc(spec)));
        let headless = ServiceSpec {
            cluster_ip: Some("None".into()),
            ..ServiceSpec::default()
        };
        assert_valid(&validate_service(&svc(headless)));
        let external = ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some("db.example.com.".into()),
            ..ServiceSpec::default()
        };
        assert_valid(&validate_service(&svc(external)));
    }

    #[test]
    fn name_is_dns1035() {
        let mut s = svc(basic());
        s.metadata.name = Some("1redis".into());
        assert_exactly(&validate_service(&s), &[("metadata.name", Invalid)]);
        s.metadata.name = Some("a.b".into());
        assert_exactly(&validate_service(&s), &[("metadata.name", Invalid)]);
    }

    #[test]
    fn type_and_ports_required() {
        let mut spec = basic();
        spec.type_ = Some("Magic".into());
        spec.ports = None;
        assert_exactly(
            &validate_service(&svc(spec)),
            &[("spec.type", NotSupported), ("spec.ports", Required)],
        );
        let external = ServiceSpec {
            type_: Some("ExternalName".into()),
            ..ServiceSpec::default()
        };
        assert_exactly(
            &validate_service(&svc(external)),
            &[("spec.externalName", Required)],
        );
        let external = ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some("Bad_Name".into()),
            cluster_ip: Some("10.0.0.1".into()),
            ..ServiceSpec::default()
        };
        assert_exactly(
            &validate_service(&svc(external)),
            &[
                ("spec.externalName", Invalid),
                ("spec.clusterIP", Forbidden),
            ],
        );
    }

    #[test]
    fn port_rules() {
        let mut spec = basic();
        spec.ports = Some(vec![
            ServicePort {
                protocol: Some("HTTP".into()),
                target_port: Some(IntOrString::Int(70000)),
                ..port(Some("web"), 0)
            },
            ServicePort {
                target_port: Some(IntOrString::String("Not_A_Name".into())),
                ..port(None, 81)
            },
            ServicePort {
                target_port: Some(IntOrString::String("http".into())),
                ..port(Some("web"), 82)
            },
            port(Some("Bad.Name"), 82),
        ]);
        assert_exactly(
            &validate_service(&svc(spec)),
            &[
                ("spec.ports[0].port", Invalid),
                ("spec.ports[0].protocol", NotSupported),
                ("spec.ports[0].targetPort", Invalid),
                ("spec.ports[1].name", Required),
                ("spec.ports[1].targetPort", Invalid),
                ("spec.ports[2].name", Duplicate),
                ("spec.ports[3].name", Invalid),
                ("spec.ports[3]", Duplicate),
            ],
        );
    }

    #[test]
    fn one_unnamed_port_is_fine_and_target_zero_means_unset() {
        let mut spec = basic();
        spec.ports = Some(vec![ServicePort {
            target_port: Some(IntOrString::Int(0)),
            ..port(None, 80)
        }]);
        assert_valid(&validate_service(&svc(spec)));
    }

    #[test]
    fn node_ports() {
        let mut spec = basic();
        spec.ports = Some(vec![ServicePort {
            node_port: Some(30001),
            ..port(None, 80)
        }]);
        assert_exactly(
            &validate_service(&svc(spec.clone())),
            &[("spec.ports[0].nodePort", Forbidden)],
        );
        spec.type_ = Some("NodePort".into());
        spec.ports = Some(vec![
            ServicePort {
                node_port: Some(80),
                ..port(Some("a"), 80)
            },
            ServicePort {
                node_port: Some(30001),
                ..port(Some("b"), 81)
            },
            ServicePort {
                node_port: Some(30001),
                ..port(Some("c"), 82)
            },
        ]);
        let errs = validate_service(&svc(spec));
        assert_exactly(
            &errs,
            &[
                ("spec.ports[0].nodePort", Invalid),
                ("spec.ports[2].nodePort", Duplicate),
            ],
        );
        assert!(errs[0].detail.contains("30000-32767"));
    }

    #[test]
    fn load_balancer_rules() {
        let mut spec = basic();
        spec.type_ = Some("LoadBalancer".into());
        spec.cluster_ip = Some("None".into());
        spec.ports = Some(vec![port(None, 10250)]);
        assert_exactly(
            &validate_service(&svc(spec)),
            &[("spec.clusterIP", Invalid), ("spec.ports[0]", Invalid)],
        );
    }

    #[test]
    fn ips_selector_and_affinity() {
        let mut spec = basic();
        spec.cluster_ip = Some("10.0.0.300".into());
        spec.external_ips = Some(vec!["1.2.3.4".into(), "nope".into(), "127.0.0.1".into()]);
        spec.selector = Some(BTreeMap::from([("bad key".to_string(), "v".to_string())]));
        spec.session_affinity = Some("Sticky".into());
        assert_exactly(
            &validate_service(&svc(spec)),
            &[
                ("spec.clusterIP", Invalid),
                ("spec.externalIPs[1]", Invalid),
                ("spec.externalIPs[2]", Invalid),
                ("spec.selector", Invalid),
                ("spec.sessionAffinity", NotSupported),
            ],
        );
        let mut spec = basic();
        spec.session_affinity = Some("None".into());
        spec.session_affinity_config = Some(SessionAffinityConfig::default());
        assert_exactly(
            &validate_service(&svc(spec)),
            &[("spec.sessionAffinityConfig", Forbidden)],
        );
        let mut spec = basic();
        spec.session_affinity = Some("ClientIP".into());
        spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIPConfig {
                timeout_seconds: Some(0),
            }),
        });
        assert_exactly(
            &validate_service(&svc(spec)),
            &[(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                Invalid,
            )],
        );
    }

    #[test]
    fn cluster_ip_is_immutable_once_set() {
        let mut old_spec = basic();
        old_spec.cluster_ip = Some("10.0.0.10".into());
        let old = svc(old_spec.clone());
        assert_valid(&validate_service_update(&old, &old));
        let mut new_spec = old_spec.clone();
        new_spec.cluster_ip = Some("10.0.0.11".into());
        let errs = validate_service_update(&svc(new_spec.clone()), &old);
        assert_exactly(&errs, &[("spec.clusterIP", Forbidden)]);
        assert!(errs[0].detail.contains("may not change once set"));
        new_spec.cluster_ip = None;
        assert_exactly(
            &validate_service_update(&svc(new_spec), &old),
            &[("spec.clusterIP", Forbidden)],
        );
        // Unset before: may be set.
        let unset_old = svc(basic());
        assert_valid(&validate_service_update(&old, &unset_old));
        // To ExternalName: the IP goes away.
        let external = ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some("db.example.com".into()),
            ..ServiceSpec::default()
        };
        assert_valid(&validate_service_update(&svc(external), &old));
    }
}
