//! What the proxy serves, derived from the API objects: one [`ServicePort`]
//! per port of every service that has a portal IP, with its ready endpoints.
//! Pure functions of the service and endpoints sets (no IO), so both modes
//! reconcile from the same picture.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};

/// Default ClientIP affinity timeout (Kubernetes' 3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10_800);

/// `namespace/name:port`: one port of one service (the port's name is empty
/// for a service's single unnamed port).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    /// The service's namespace.
    pub namespace: String,
    /// The service's name.
    pub name: String,
    /// The port's name (`spec.ports[].name`, empty when unnamed).
    pub port: String,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port.is_empty() {
            write!(f, "{}/{}", self.namespace, self.name)
        } else {
            write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
        }
    }
}

/// Transport protocol of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The spelling iptables uses (`tcp`, `udp`).
    pub fn as_iptables(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// One port of a service as the proxy forwards it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Which service port.
    pub name: ServicePortName,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The portal (cluster) IP.
    pub portal_ip: Ipv4Addr,
    /// The service port on the portal IP and on the public IPs.
    pub port: u16,
    /// `spec.externalIPs` (v1beta1 `publicIPs`), all of them; each mode
    /// keeps only the ones that are this node's addresses.
    pub public_ips: Vec<Ipv4Addr>,
    /// `Some(timeout)` for `sessionAffinity: ClientIP`.
    pub affinity: Option<Duration>,
    /// Ready endpoints, sorted (so the same set always renders the same rules).
    pub endpoints: Vec<SocketAddrV4>,
}

/// The service ports to serve, keyed and sorted by name and protocol.
/// Services without a portal IP (headless, `None`) or with IPv6 portals are
/// skipped; endpoint ports are matched to service ports by name (and
/// protocol), the way the endpoints controller writes them.
pub fn service_ports<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    endpoints: impl IntoIterator<Item = &'a Endpoints>,
) -> BTreeMap<(ServicePortName, Protocol), ServicePort> {
    let mut by_service: HashMap<(String, String), &Endpoints> = HashMap::new();
    for e in endpoints {
        let namespace = e.metadata.namespace.clone().unwrap_or_default();
        let name = e.metadata.name.clone().unwrap_or_default();
        by_service.insert((namespace, name), e);
    }
    let mut out = BTreeMap::new();
    for service in services {
        let Some(spec) = &service.spec else { continue };
        let Some(portal_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map_or(DEFAULT_AFFINITY_TIMEOUT, Duration::from_secs)
        });
        let public_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let service_endpoints = by_service.get(&(namespace.clone(), name.clone()));
        for port in spec.ports.iter().flatten() {
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            let protocol = match port.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("TCP") | None => Protocol::Tcp,
                Some(_) => continue,
            };
            let port_name = port.name.clone().unwrap_or_default();
            let mut targets: Vec<SocketAddrV4> = service_endpoints
                .map(|e| endpoint_addresses(e, &port_name, protocol))
                .unwrap_or_default();
            targets.sort_unstable();
            targets.dedup();
            let key = ServicePortName {
                namespace: namespace.clone(),
                name: name.clone(),
                port: port_name,
            };
            out.insert(
                (key.clone(), protocol),
                ServicePort {
                    name: key,
                    protocol,
                    portal_ip,
                    port: number,
                    public_ips: public_ips.clone(),
                    affinity,
                    endpoints: targets,
                },
            );
        }
    }
    out
}

/// The ready `ip:port` pairs of `endpoints` for the port named `port_name`.
fn endpoint_addresses(
    endpoints: &Endpoints,
    port_name: &str,
    protocol: Protocol,
) -> Vec<SocketAddrV4> {
    let mut out = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = subset.ports.iter().flatten().filter(|p| {
            p.name.as_deref().unwrap_or_default() == port_name
                && match p.protocol.as_deref() {
                    Some("UDP") => protocol == Protocol::Udp,
                    Some("TCP") | None => protocol == Protocol::Tcp,
                    Some(_) => false,
                }
        });
        for port in ports {
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            for address in subset.addresses.iter().flatten() {
                if let Ok(ip) = address.ip.parse::<Ipv4Addr>() {
                    out.push(SocketAddrV4::new(ip, number));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    fn endpoints(value: serde_json::Value) -> Endpoints {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn ports_are_matched_to_endpoints_by_name_and_protocol() {
        let svc = service(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.0.0.5", "externalIPs": ["10.245.1.2", "not-an-ip"],
                     "ports": [{"name": "http", "port": 80},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }));
        let eps = endpoints(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{
                "addresses": [{"ip": "10.244.1.11"}, {"ip": "10.244.1.10"}],
                "notReadyAddresses": [{"ip": "10.244.1.12"}],
                "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]
            }]
        }));
        let ports = service_ports([&svc], [&eps]);
        assert_eq!(ports.len(), 2);
        let http = ports.values().find(|p| p.name.port == "http").unwrap();
        assert_eq!(http.protocol, Protocol::Tcp);
        assert_eq!(http.portal_ip, Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(http.public_ips, [Ipv4Addr::new(10, 245, 1, 2)]);
        assert_eq!(
            http.endpoints,
            [
                "10.244.1.10:8080".parse().unwrap(),
                "10.244.1.11:8080".parse().unwrap()
            ]
        );
        let dns = ports.values().find(|p| p.name.port == "dns").unwrap();
        assert_eq!(dns.protocol, Protocol::Udp);
        assert_eq!(dns.endpoints.len(), 2);
        assert!(dns.endpoints.iter().all(|e| e.port() == 5353));
        assert_eq!(http.affinity, None);
    }

    #[test]
    fn headless_services_are_skipped_and_affinity_defaults() {
        let headless = service(json!({
            "metadata": {"name": "h", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}
        }));
        let sticky = service(json!({
            "metadata": {"name": "s", "namespace": "default"},
            "spec": {"clusterIP": "10.0.0.9", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}
        }));
        let timed = service(json!({
            "metadata": {"name": "t", "namespace": "default"},
            "spec": {"clusterIP": "10.0.0.10", "sessionAffinity": "ClientIP",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                     "ports": [{"port": 80}]}
        }));
        let ports = service_ports([&headless, &sticky, &timed], []);
        assert_eq!(ports.len(), 2);
        let by_name = |n: &str| ports.values().find(|p| p.name.name == n).unwrap();
        assert_eq!(by_name("s").affinity, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert_eq!(by_name("t").affinity, Some(Duration::from_secs(60)));
        assert!(by_name("s").endpoints.is_empty());
        assert_eq!(by_name("s").name.to_string(), "default/s");
    }
}
