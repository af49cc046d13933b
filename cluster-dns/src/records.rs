//! The answers, as pure functions: a question (name and type) and the
//! cluster's services and endpoints in, the records of Kubernetes' DNS
//! specification (kubernetes/dns `docs/specification.md`, schema 1.1.0)
//! out. No IO here: [`Objects`] is the one way in to the caches, so the
//! tests hand in a map.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};

/// The schema version answered at `dns-version.<zone>` (TXT).
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The annotation that, before `publishNotReadyAddresses`, made a service's
/// not-ready endpoints count as ready for DNS.
const TOLERATE_UNREADY: &str = "service.alpha.kubernetes.io/tolerate-unready-endpoints";

/// Read access to the cluster's objects, as the answers need it.
pub trait Objects {
    /// The service `namespace/name`, if it exists.
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>>;
    /// The endpoints `namespace/name`, if they exist.
    fn endpoints(&self, namespace: &str, name: &str) -> Option<Arc<Endpoints>>;
    /// Whether any service lives in `namespace` (`<ns>.svc.<zone>` then
    /// exists as a name without records: NODATA rather than NXDOMAIN).
    fn has_namespace(&self, namespace: &str) -> bool;
}

/// The cluster domain this server is authoritative for, and its TTL.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: Name,
    ttl: u32,
    soa: Record,
}

/// The zone's name could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid cluster domain {domain:?}: {message}")]
pub struct InvalidDomain {
    domain: String,
    message: String,
}

impl Zone {
    /// The zone `domain` (e.g. `cluster.local`) answering with `ttl` seconds.
    ///
    /// # Errors
    ///
    /// [`InvalidDomain`] when `domain` is not a DNS name.
    pub fn new(domain: &str, ttl: u32) -> Result<Self, InvalidDomain> {
        let invalid = |message: String| InvalidDomain {
            domain: domain.to_string(),
            message,
        };
        let trimmed = domain.trim_end_matches('.');
        if trimmed.is_empty() {
            return Err(invalid("empty".into()));
        }
        let mut origin = Name::from_ascii(trimmed).map_err(|e| invalid(e.to_string()))?;
        origin.set_fqdn(true);
        let origin = origin.to_lowercase();
        let child = |label: &str| {
            Name::from_ascii(format!("{label}.{origin}")).map_err(|e| invalid(e.to_string()))
        };
        // CoreDNS's SOA for the cluster zone: the same names and timers, the
        // negative-answer TTL equal to the records' TTL.
        let soa = SOA::new(
            child("ns.dns")?,
            child("hostmaster")?,
            1,
            7200,
            1800,
            86400,
            ttl,
        );
        let soa = Record::from_rdata(origin.clone(), ttl, RData::SOA(soa));
        Ok(Self { origin, ttl, soa })
    }

    /// The zone's name, fully qualified and lowercase.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Whether `name` lies inside the zone.
    pub fn contains(&self, name: &Name) -> bool {
        self.origin.zone_of(name)
    }

    fn record(&self, name: &Name, rdata: RData) -> Record {
        Record::from_rdata(name.clone(), self.ttl, rdata)
    }

    fn name(&self, relative: &str) -> Option<Name> {
        Name::from_ascii(format!("{relative}.{}", self.origin)).ok()
    }
}

/// What a question gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// NoError (with or without answers), NXDomain or Refused.
    pub code: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section: the zone's SOA on an empty answer.
    pub authority: Vec<Record>,
    /// The additional section: the A records of SRV targets.
    pub additionals: Vec<Record>,
}

impl Answer {
    fn refused() -> Self {
        Self {
            code: ResponseCode::Refused,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        }
    }

    /// Whether this is NODATA: the name exists, no record of the type.
    pub fn is_nodata(&self) -> bool {
        self.code == ResponseCode::NoError && self.answers.is_empty()
    }
}

/// What a name inside the zone holds, before the question's type is applied.
enum Found {
    /// No such name (NXDOMAIN).
    Nothing,
    /// The name exists; these are its records of every type.
    Records {
        records: Vec<Record>,
        additionals: Vec<Record>,
    },
}

impl Found {
    fn empty() -> Self {
        Self::Records {
            records: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn of(records: Vec<Record>) -> Self {
        Self::Records {
            records,
            additionals: Vec::new(),
        }
    }
}

/// The answer to `qname` `qtype` (no recursion: outside the zone is
/// REFUSED). Comparisons are case-insensitive, as the specification asks;
/// answers carry the question's spelling.
pub fn answer(zone: &Zone, objects: &dyn Objects, qname: &Name, qtype: RecordType) -> Answer {
    if !zone.contains(qname) {
        return Answer::refused();
    }
    let depth = usize::from(qname.num_labels() - zone.origin.num_labels());
    // Labels nearest the zone first: `db.default.svc` → [svc, default, db].
    let labels: Vec<String> = qname
        .iter()
        .take(depth)
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .rev()
        .collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let found = match labels.as_slice() {
        [] => apex(zone, qname),
        ["dns-version"] => Found::of(vec![zone.record(
            qname,
            RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
        )]),
        ["svc"] | ["pod"] => Found::empty(),
        ["svc", namespace] => {
            if objects.has_namespace(namespace) {
                Found::empty()
            } else {
                Found::Nothing
            }
        }
        ["svc", namespace, service] => service_name(zone, objects, qname, namespace, service),
        ["svc", namespace, service, hostname] => {
            endpoint_name(zone, objects, qname, namespace, service, hostname)
        }
        ["svc", namespace, service, proto, port] => {
            match (port.strip_prefix('_'), proto.strip_prefix('_')) {
                (Some(port), Some(proto)) => srv(
                    zone,
                    objects,
                    qname,
                    namespace,
                    service,
                    Some((port, proto)),
                ),
                _ => Found::Nothing,
            }
        }
        ["pod", _namespace, dashed] => pod_name(zone, qname, dashed),
        _ => Found::Nothing,
    };
    match found {
        Found::Nothing => Answer {
            code: ResponseCode::NXDomain,
            answers: Vec::new(),
            authority: vec![zone.soa.clone()],
            additionals: Vec::new(),
        },
        Found::Records {
            records,
            additionals,
        } => {
            // A CNAME stands for every type of its name (RFC 1034 3.6.2).
            let answers: Vec<Record> = records
                .into_iter()
                .filter(|r| {
                    qtype == RecordType::ANY
                        || r.record_type() == qtype
                        || r.record_type() == RecordType::CNAME
                })
                .collect();
            let authority = if answers.is_empty() {
                vec![zone.soa.clone()]
            } else {
                Vec::new()
            };
            let additionals = if answers.is_empty() {
                Vec::new()
            } else {
                additionals
            };
            Answer {
                code: ResponseCode::NoError,
                answers,
                authority,
                additionals,
            }
        }
    }
}

fn apex(zone: &Zone, qname: &Name) -> Found {
    let mut records = vec![Record::from_rdata(
        qname.clone(),
        zone.ttl,
        zone.soa.data().clone(),
    )];
    if let Some(ns) = zone.name("ns.dns") {
        records.push(zone.record(qname, RData::NS(NS(ns))));
    }
    Found::of(records)
}

/// `<service>.<ns>.svc.<zone>`: the portal IP, the ready endpoints of a
/// headless service, or the CNAME of an ExternalName one; SRV of every
/// named port too, as CoreDNS answers.
fn service_name(
    zone: &Zone,
    objects: &dyn Objects,
    qname: &Name,
    namespace: &str,
    name: &str,
) -> Found {
    let Some(service) = objects.service(namespace, name) else {
        return Found::Nothing;
    };
    let spec = service.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec
            .external_name
            .as_deref()
            .and_then(|t| Name::from_ascii(format!("{}.", t.trim_end_matches('.'))).ok());
        return match target {
            Some(target) => Found::of(vec![zone.record(qname, RData::CNAME(CNAME(target)))]),
            None => Found::empty(),
        };
    }
    let mut records = Vec::new();
    match cluster_ip(&service) {
        Some(ip) => records.push(address(zone, qname, ip)),
        None => {
            let mut seen = Vec::new();
            for (address_, _) in ready_addresses(&service, objects, namespace, name) {
                if let Ok(ip) = address_.ip.parse::<IpAddr>() {
                    if !seen.contains(&ip) {
                        seen.push(ip);
                        records.push(address(zone, qname, ip));
                    }
                }
            }
        }
    }
    if let Found::Records {
        records: srvs,
        additionals,
    } = srv(zone, objects, qname, namespace, name, None)
    {
        records.extend(srvs);
        return Found::Records {
            records,
            additionals,
        };
    }
    Found::of(records)
}

/// `<hostname>.<service>.<ns>.svc.<zone>`: the ready endpoints of a
/// headless service with that hostname (or, without one, that dashed IP).
fn endpoint_name(
    zone: &Zone,
    objects: &dyn Objects,
    qname: &Name,
    namespace: &str,
    service_name: &str,
    hostname: &str,
) -> Found {
    let Some(service) = objects.service(namespace, service_name) else {
        return Found::Nothing;
    };
    if cluster_ip(&service).is_some() {
        return Found::Nothing;
    }
    let records: Vec<Record> = ready_addresses(&service, objects, namespace, service_name)
        .into_iter()
        .filter(|(a, _)| endpoint_hostname(a) == hostname)
        .filter_map(|(a, _)| a.ip.parse::<IpAddr>().ok())
        .map(|ip| address(zone, qname, ip))
        .collect();
    if records.is_empty() {
        Found::Nothing
    } else {
        Found::of(records)
    }
}

/// SRV records of `service`'s named ports: `port` = (name, protocol) picks
/// one, `None` means all. A service with a portal IP points at its own
/// name; a headless one at each ready endpoint's name. The targets' A
/// records go in the additional section.
fn srv(
    zone: &Zone,
    objects: &dyn Objects,
    qname: &Name,
    namespace: &str,
    name: &str,
    port: Option<(&str, &str)>,
) -> Found {
    let Some(service) = objects.service(namespace, name) else {
        return Found::Nothing;
    };
    let matches = |port_name: Option<&str>, protocol: Option<&str>| match port_name {
        None | Some("") => false,
        Some(port_name) => port.is_none_or(|(want, proto)| {
            port_name.eq_ignore_ascii_case(want)
                && protocol.unwrap_or("TCP").eq_ignore_ascii_case(proto)
        }),
    };
    let service_fqdn = format!("{name}.{namespace}.svc");
    // (port, target, target's address)
    let mut targets: Vec<(u16, Name, IpAddr)> = Vec::new();
    if let Some(ip) = cluster_ip(&service) {
        let Some(target) = zone.name(&service_fqdn) else {
            return Found::Nothing;
        };
        for p in service
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
        {
            if matches(p.name.as_deref(), p.protocol.as_deref()) {
                if let Ok(number) = u16::try_from(p.port) {
                    targets.push((number, target.clone(), ip));
                }
            }
        }
    } else {
        for (a, ports) in ready_addresses(&service, objects, namespace, name) {
            let Ok(ip) = a.ip.parse::<IpAddr>() else {
                continue;
            };
            let Some(target) = zone.name(&format!("{}.{service_fqdn}", endpoint_hostname(&a)))
            else {
                continue;
            };
            for p in ports {
                if matches(p.name.as_deref(), p.protocol.as_deref()) {
                    if let Ok(number) = u16::try_from(p.port) {
                        targets.push((number, target.clone(), ip));
                    }
                }
            }
        }
    }
    if targets.is_empty() && port.is_some() {
        // A port or protocol the service does not have: no such name.
        return Found::Nothing;
    }
    // CoreDNS's weights: the answers share 100 equally.
    let weight = u16::try_from(100 / targets.len().max(1))
        .unwrap_or(100)
        .max(1);
    let mut records = Vec::new();
    let mut additionals: BTreeMap<(String, IpAddr), Record> = BTreeMap::new();
    for (number, target, ip) in targets {
        records.push(zone.record(
            qname,
            RData::SRV(SRV::new(0, weight, number, target.clone())),
        ));
        additionals
            .entry((target.to_ascii(), ip))
            .or_insert_with(|| address(zone, &target, ip));
    }
    Found::Records {
        records,
        additionals: additionals.into_values().collect(),
    }
}

/// `<a>-<b>-<c>-<d>.<ns>.pod.<zone>`: the deprecated pod records, answered
/// as CoreDNS's `pods insecure` (kubeadm's default) does: any dashed IPv4.
fn pod_name(zone: &Zone, qname: &Name, dashed: &str) -> Found {
    match dashed.replace('-', ".").parse::<Ipv4Addr>() {
        Ok(ip) if dashed.split('-').count() == 4 => {
            Found::of(vec![address(zone, qname, IpAddr::V4(ip))])
        }
        _ => Found::Nothing,
    }
}

fn address(zone: &Zone, name: &Name, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => zone.record(name, RData::A(A(v4))),
        IpAddr::V6(v6) => zone.record(name, RData::AAAA(AAAA(v6))),
    }
}

/// The portal IP, or `None` for a headless service (`None` or no IP).
fn cluster_ip(service: &Service) -> Option<IpAddr> {
    service
        .spec
        .as_ref()?
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")?
        .parse()
        .ok()
}

/// The endpoint's name under its service: its `hostname`, or its IP with
/// dashes (CoreDNS's choice of the "unique, system-assigned identifier").
fn endpoint_hostname(address: &EndpointAddress) -> String {
    match address.hostname.as_deref() {
        Some(h) if !h.is_empty() => h.to_ascii_lowercase(),
        _ => address.ip.replace(['.', ':'], "-"),
    }
}

/// Each ready address of the service's endpoints with its subset's ports;
/// not-ready ones too when the service publishes them.
fn ready_addresses(
    service: &Service,
    objects: &dyn Objects,
    namespace: &str,
    name: &str,
) -> Vec<(
    EndpointAddress,
    Vec<k8s_openapi::api::core::v1::EndpointPort>,
)> {
    let Some(endpoints) = objects.endpoints(namespace, name) else {
        return Vec::new();
    };
    let publish_unready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
        || service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TOLERATE_UNREADY))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut out = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = subset.ports.clone().unwrap_or_default();
        let unready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .filter(|_| publish_unready);
        for a in subset.addresses.iter().flatten().chain(unready) {
            out.push((a.clone(), ports.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{EndpointPort, EndpointSubset, ServicePort, ServiceSpec};
    use kube::api::ObjectMeta;

    use super::*;

    #[derive(Default)]
    struct Fixed {
        services: BTreeMap<(String, String), Arc<Service>>,
        endpoints: BTreeMap<(String, String), Arc<Endpoints>>,
    }

    impl Objects for Fixed {
        fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
            self.services.get(&(namespace.into(), name.into())).cloned()
        }
        fn endpoints(&self, namespace: &str, name: &str) -> Option<Arc<Endpoints>> {
            self.endpoints
                .get(&(namespace.into(), name.into()))
                .cloned()
        }
        fn has_namespace(&self, namespace: &str) -> bool {
            self.services.keys().any(|(ns, _)| ns == namespace)
        }
    }

    fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    fn port(name: &str, number: i32, protocol: &str) -> ServicePort {
        ServicePort {
            name: Some(name.into()),
            port: number,
            protocol: Some(protocol.into()),
            ..ServicePort::default()
        }
    }

    impl Fixed {
        fn service(mut self, ns: &str, name: &str, ip: &str, ports: Vec<ServicePort>) -> Self {
            self.services.insert(
                (ns.into(), name.into()),
                Arc::new(Service {
                    metadata: meta(ns, name),
                    spec: Some(ServiceSpec {
                        cluster_ip: Some(ip.into()),
                        ports: Some(ports),
                        ..ServiceSpec::default()
                    }),
                    ..Service::default()
                }),
            );
            self
        }

        fn external(mut self, ns: &str, name: &str, target: &str) -> Self {
            self.services.insert(
                (ns.into(), name.into()),
                Arc::new(Service {
                    metadata: meta(ns, name),
                    spec: Some(ServiceSpec {
                        type_: Some("ExternalName".into()),
                        external_name: Some(target.into()),
                        ..ServiceSpec::default()
                    }),
                    ..Service::default()
                }),
            );
            self
        }

        /// Endpoints: (ip, hostname) ready, then not ready, one subset.
        fn endpoints(
            mut self,
            ns: &str,
            name: &str,
            ready: &[(&str, Option<&str>)],
            unready: &[&str],
            ports: Vec<EndpointPort>,
        ) -> Self {
            let address = |(ip, hostname): &(&str, Option<&str>)| EndpointAddress {
                ip: (*ip).into(),
                hostname: hostname.map(Into::into),
                ..EndpointAddress::default()
            };
            self.endpoints.insert(
                (ns.into(), name.into()),
                Arc::new(Endpoints {
                    metadata: meta(ns, name),
                    subsets: Some(vec![EndpointSubset {
                        addresses: Some(ready.iter().map(address).collect()),
                        not_ready_addresses: Some(
                            unready.iter().map(|ip| address(&(*ip, None))).collect(),
                        ),
                        ports: Some(ports),
                    }]),
                }),
            );
            self
        }
    }

    fn ep_port(name: &str, number: i32) -> EndpointPort {
        EndpointPort {
            name: Some(name.into()),
            port: number,
            protocol: Some("TCP".into()),
            ..EndpointPort::default()
        }
    }

    fn cluster() -> Fixed {
        Fixed::default()
            .service(
                "default",
                "db",
                "10.0.0.5",
                vec![port("mysql", 3306, "TCP"), port("", 9, "UDP")],
            )
            .service("default", "web", "None", vec![port("http", 80, "TCP")])
            .endpoints(
                "default",
                "web",
                &[("10.244.1.2", Some("web-0")), ("10.244.2.3", None)],
                &["10.244.3.4"],
                vec![ep_port("http", 8080)],
            )
            .service("default", "empty", "None", vec![])
            .external("default", "ext", "db.example.com")
    }

    fn ask(name: &str, qtype: RecordType) -> Answer {
        let zone = Zone::new("cluster.local", 5).unwrap();
        answer(&zone, &cluster(), &Name::from_ascii(name).unwrap(), qtype)
    }

    fn rdata(answer: &Answer) -> Vec<String> {
        answer
            .answers
            .iter()
            .map(|r| r.data().to_string())
            .collect()
    }

    #[test]
    fn a_service_with_a_portal_ip_answers_it_with_the_ttl() {
        let a = ask("db.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.code, ResponseCode::NoError);
        assert_eq!(rdata(&a), ["10.0.0.5"]);
        assert_eq!(a.answers[0].ttl(), 5);
        assert!(a.authority.is_empty());
    }

    #[test]
    fn names_are_compared_without_case_and_answered_as_asked() {
        let a = ask("DB.Default.SVC.Cluster.Local.", RecordType::A);
        assert_eq!(rdata(&a), ["10.0.0.5"]);
        assert_eq!(
            a.answers[0].name().to_ascii(),
            "DB.Default.SVC.Cluster.Local."
        );
    }

    #[test]
    fn a_headless_service_answers_its_ready_endpoints_only() {
        let a = ask("web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&a), ["10.244.1.2", "10.244.2.3"]);
    }

    #[test]
    fn a_headless_service_publishing_unready_addresses_answers_them_too() {
        let mut objects = cluster();
        let key = ("default".to_string(), "web".to_string());
        let mut web = (*objects.services[&key]).clone();
        if let Some(spec) = web.spec.as_mut() {
            spec.publish_not_ready_addresses = Some(true);
        }
        objects.services.insert(key, Arc::new(web));
        let zone = Zone::new("cluster.local", 5).unwrap();
        let a = answer(
            &zone,
            &objects,
            &Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        );
        assert_eq!(rdata(&a), ["10.244.1.2", "10.244.2.3", "10.244.3.4"]);
    }

    #[test]
    fn a_headless_service_without_ready_endpoints_is_nodata_not_nxdomain() {
        let a = ask("empty.default.svc.cluster.local.", RecordType::A);
        assert!(a.is_nodata());
        assert_eq!(a.authority[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn endpoint_hostnames_and_dashed_ips_name_headless_endpoints() {
        let a = ask("web-0.web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&a), ["10.244.1.2"]);
        let a = ask("10-244-2-3.web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdata(&a), ["10.244.2.3"]);
        let a = ask("web-9.web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.code, ResponseCode::NXDomain);
        // Not for a service with a portal IP.
        let a = ask("x.db.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.code, ResponseCode::NXDomain);
    }

    #[test]
    fn srv_of_a_named_port_points_at_the_service_with_its_address_added() {
        let a = ask("_mysql._tcp.db.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(rdata(&a), ["0 100 3306 db.default.svc.cluster.local."]);
        assert_eq!(a.additionals.len(), 1);
        assert_eq!(a.additionals[0].data().to_string(), "10.0.0.5");
        // Wrong protocol or unnamed port: no such name.
        let a = ask("_mysql._udp.db.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(a.code, ResponseCode::NXDomain);
    }

    #[test]
    fn srv_of_a_headless_service_names_each_ready_endpoint() {
        let a = ask("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(
            rdata(&a),
            [
                "0 50 8080 web-0.web.default.svc.cluster.local.",
                "0 50 8080 10-244-2-3.web.default.svc.cluster.local."
            ]
        );
        assert_eq!(a.additionals.len(), 2);
    }

    #[test]
    fn external_name_is_a_cname_for_every_type() {
        for qtype in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
            let a = ask("ext.default.svc.cluster.local.", qtype);
            assert_eq!(rdata(&a), ["db.example.com."], "{qtype}");
            assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
        }
    }

    #[test]
    fn nxdomain_and_nodata_are_told_apart_with_the_soa_in_authority() {
        let missing = ask("nope.default.svc.cluster.local.", RecordType::A);
        assert_eq!(missing.code, ResponseCode::NXDomain);
        assert_eq!(missing.authority[0].record_type(), RecordType::SOA);
        assert_eq!(missing.authority[0].ttl(), 5);
        // The service exists but has no IPv6 address.
        let aaaa = ask("db.default.svc.cluster.local.", RecordType::AAAA);
        assert!(aaaa.is_nodata());
        assert_eq!(aaaa.authority[0].record_type(), RecordType::SOA);
        // Intermediate names exist.
        for name in [
            "cluster.local.",
            "svc.cluster.local.",
            "default.svc.cluster.local.",
        ] {
            assert!(ask(name, RecordType::A).is_nodata(), "{name}");
        }
        assert_eq!(
            ask("other.svc.cluster.local.", RecordType::A).code,
            ResponseCode::NXDomain
        );
        assert_eq!(
            ask("a.b.c.d.e.svc.cluster.local.", RecordType::A).code,
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn names_outside_the_zone_are_refused() {
        for name in ["example.com.", "local.", "cluster.local.evil."] {
            let a = ask(name, RecordType::A);
            assert_eq!(a.code, ResponseCode::Refused, "{name}");
            assert!(a.answers.is_empty() && a.authority.is_empty());
        }
    }

    #[test]
    fn the_apex_answers_soa_and_ns_and_the_schema_version() {
        assert_eq!(
            ask("cluster.local.", RecordType::SOA).answers[0].record_type(),
            RecordType::SOA
        );
        assert_eq!(
            rdata(&ask("cluster.local.", RecordType::NS)),
            ["ns.dns.cluster.local."]
        );
        assert_eq!(
            rdata(&ask("dns-version.cluster.local.", RecordType::TXT)),
            ["1.1.0"]
        );
    }

    #[test]
    fn dashed_pod_names_answer_their_ip() {
        assert_eq!(
            rdata(&ask("10-244-1-2.default.pod.cluster.local.", RecordType::A)),
            ["10.244.1.2"]
        );
        assert_eq!(
            ask("10-244-1.default.pod.cluster.local.", RecordType::A).code,
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn another_cluster_domain_is_its_own_zone() {
        let zone = Zone::new("corp.internal.", 30).unwrap();
        let a = answer(
            &zone,
            &cluster(),
            &Name::from_ascii("db.default.svc.corp.internal.").unwrap(),
            RecordType::A,
        );
        assert_eq!(rdata(&a), ["10.0.0.5"]);
        assert_eq!(a.answers[0].ttl(), 30);
        let a = answer(
            &zone,
            &cluster(),
            &Name::from_ascii("db.default.svc.cluster.local.").unwrap(),
            RecordType::A,
        );
        assert_eq!(a.code, ResponseCode::Refused);
    }
}
