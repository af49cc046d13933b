//! Endpoints: addresses and ports of a service's backends.

use crate::status::FieldError;
use crate::v1::{EndpointAddress, EndpointPort, Endpoints};

use super::names::{is_dns1123_label, is_non_special_ip, is_valid_ip, name_is_dns_subdomain};
use super::{
    child, index, push_invalid, validate_object_meta_update, validate_object_meta_with,
    validate_port_name, validate_port_number_and_protocol, FieldErrors,
};

/// Validates endpoints: metadata (namespaced, the name a DNS subdomain, in
/// practice the service's name) and each subset: at least one address, every
/// address a valid IP that is not unspecified, loopback, link-local or
/// link-local multicast (Kubernetes' `validateNonSpecialIP`: a proxy would
/// dial the node's own 127.0.0.1, where etcd listens), optional hostname a
/// DNS label, ports valid and named when more than one.
pub fn validate_endpoints(endpoints: &Endpoints) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&endpoints.metadata, true, name_is_dns_subdomain, "metadata");
    for (i, subset) in endpoints.subsets.iter().flatten().enumerate() {
        let p = index("subsets", i);
        let addresses = subset.addresses.as_deref().unwrap_or(&[]);
        let not_ready = subset.not_ready_addresses.as_deref().unwrap_or(&[]);
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (field, list) in [("addresses", addresses), ("notReadyAddresses", not_ready)] {
            for (j, address) in list.iter().enumerate() {
                validate_address(address, &index(&child(&p, field), j), &mut errs);
            }
        }
        let ports = subset.ports.as_deref().unwrap_or(&[]);
        for (j, port) in ports.iter().enumerate() {
            validate_port(
                port,
                ports.len() > 1,
                &index(&child(&p, "ports"), j),
                &mut errs,
            );
        }
    }
    errs
}

fn validate_address(address: &EndpointAddress, path: &str, errs: &mut FieldErrors) {
    let ip_path = child(path, "ip");
    let msgs = is_valid_ip(&address.ip);
    if msgs.is_empty() {
        push_invalid(errs, &ip_path, &address.ip, is_non_special_ip(&address.ip));
    } else {
        push_invalid(errs, &ip_path, &address.ip, msgs);
    }
    if let Some(hostname) = address.hostname.as_ref().filter(|h| !h.is_empty()) {
        push_invalid(
            errs,
            &child(path, "hostname"),
            hostname,
            is_dns1123_label(hostname),
        );
    }
    if let Some(node) = &address.node_name {
        push_invalid(
            errs,
            &child(path, "nodeName"),
            node,
            name_is_dns_subdomain(node, false),
        );
    }
}

fn validate_port(port: &EndpointPort, require_name: bool, path: &str, errs: &mut FieldErrors) {
    let name = port.name.as_deref().unwrap_or("");
    validate_port_name(errs, path, name, require_name);
    validate_port_number_and_protocol(errs, path, port.port, port.protocol.as_ref());
}

/// Validates an update of endpoints: metadata immutables unchanged and the
/// new endpoints valid (the subsets are replaced whole).
pub fn validate_endpoints_update(new: &Endpoints, old: &Endpoints) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_endpoints(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::FieldErrorKind::*;
    use crate::v1::{EndpointSubset, ObjectMeta};
    use crate::validation::testutil::{assert_exactly, assert_valid};

    fn address(ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            ..EndpointAddress::default()
        }
    }

    fn port(name: Option<&str>, port: i32) -> EndpointPort {
        EndpointPort {
            name: name.map(Into::into),
            port,
            protocol: Some("TCP".into()),
            ..EndpointPort::default()
        }
    }

    fn endpoints(subsets: Vec<EndpointSubset>) -> Endpoints {
        Endpoints {
            metadata: ObjectMeta {
                name: Some("redis-master".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            subsets: Some(subsets),
        }
    }

    #[test]
    fn valid_endpoints() {
        assert_valid(&validate_endpoints(&endpoints(vec![EndpointSubset {
            addresses: Some(vec![address("10.244.1.5")]),
            not_ready_addresses: Some(vec![address("10.244.3.2")]),
            ports: Some(vec![port(None, 6379)]),
        }])));
        assert_valid(&validate_endpoints(&endpoints(Vec::new())));
    }

    #[test]
    fn special_addresses_are_refused() {
        let on = |ip: &str| {
            endpoints(vec![EndpointSubset {
                addresses: Some(vec![address(ip)]),
                not_ready_addresses: None,
                ports: Some(vec![port(None, 6443)]),
            }])
        };
        for special in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "0.0.0.0",
            "::",
            "169.254.169.254",
            "224.0.0.251",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
        ] {
            assert_exactly(
                &validate_endpoints(&on(special)),
                &[("subsets[0].addresses[0].ip", Invalid)],
            );
        }
        assert_valid(&validate_endpoints(&on("10.245.1.1")));
    }

    #[test]
    fn faults_at_their_paths() {
        let errs = validate_endpoints(&endpoints(vec![
            EndpointSubset {
                addresses: Some(vec![
                    address("10.244.1.5"),
                    address("not-an-ip"),
                    address("169.254.0.1"),
                    EndpointAddress {
                        hostname: Some("Bad_Host".into()),
                        ..address("10.244.1.6")
                    },
                ]),
                not_ready_addresses: None,
                ports: Some(vec![
                    port(Some("redis"), 0),
                    EndpointPort {
                        protocol: Some("ICMP".into()),
                        ..port(None, 80)
                    },
                ]),
            },
            EndpointSubset::default(),
        ]));
        assert_exactly(
            &errs,
            &[
                ("subsets[0].addresses[1].ip", Invalid),
                ("subsets[0].addresses[2].ip", Invalid),
                ("subsets[0].addresses[3].hostname", Invalid),
                ("subsets[0].ports[0].port", Invalid),
                ("subsets[0].ports[1].name", Required),
                ("subsets[0].ports[1].protocol", NotSupported),
                ("subsets[1]", Required),
            ],
        );
    }
}
