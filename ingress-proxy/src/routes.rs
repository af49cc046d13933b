//! The routing table, pure: Ingresses, Services and Endpoints → a [`Table`]
//! of hosts, paths and backends, and a request's host and path → a
//! [`Route`].
//!
//! The rules are Kubernetes' (`networking.k8s.io/v1` `Ingress` docs):
//!
//! - A host is matched exactly first, then as a `*.suffix` wildcard, which
//!   covers exactly one more DNS label (`*.foo.com` matches `bar.foo.com`,
//!   not `foo.com` nor `baz.bar.foo.com`), then the rules without a host.
//!   The first of these with a matching path decides.
//! - `Exact` matches the path as is (case-sensitive). `Prefix` matches by
//!   path elements split on `/`: `/foo/bar` matches `/foo/bar` and
//!   `/foo/bar/baz`, not `/foo/barbaz`; a trailing `/` is ignored; `/`
//!   matches everything. `ImplementationSpecific` is `Prefix` here.
//! - Among matching paths the longest wins; at equal length `Exact` beats
//!   `Prefix`. Left over ties go to the oldest Ingress (by creation time,
//!   then namespace and name), as controllers resolve conflicts.
//! - Nothing matches: the `spec.defaultBackend` of the oldest Ingress that
//!   has one, else 404.
//!
//! A backend is a service port resolved once per table: its port number or
//! name chosen in the Service, the Endpoints' port of the same name, and
//! the Endpoints' ready addresses (never `notReadyAddresses`). A backend
//! with none is kept as [`Route::Unavailable`] (503), not dropped, so that a
//! request is told why rather than falling through to another rule.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::uri::Authority;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

/// The annotation that named an Ingress's class before `ingressClassName`.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// One service port's ready endpoints, chosen round robin.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/service:port`, for logs and error bodies.
    pub name: String,
    /// The ready endpoint addresses.
    pub addrs: Vec<SocketAddr>,
    /// Each address as a URI authority, made once per table rather than
    /// once per request.
    authorities: Vec<Authority>,
    next: AtomicUsize,
}

impl Backend {
    fn new(name: String, addrs: Vec<SocketAddr>) -> Self {
        let authorities = addrs
            .iter()
            .filter_map(|a| Authority::try_from(a.to_string()).ok())
            .collect();
        Self {
            name,
            addrs,
            authorities,
            next: AtomicUsize::new(0),
        }
    }

    /// The next address and its authority, round robin (`None` only if
    /// there are none).
    pub fn pick(&self) -> Option<(SocketAddr, &Authority)> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        Some((*self.addrs.get(i)?, self.authorities.get(i)?))
    }
}

/// Where a rule sends its requests.
#[derive(Clone, Debug)]
pub enum Target {
    /// A service port with at least one ready endpoint.
    Ready(Arc<Backend>),
    /// A backend that cannot take requests now, and why (no such service
    /// or port, no ready endpoints, a resource backend).
    Unavailable(Arc<str>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Match {
    Exact,
    Prefix,
}

#[derive(Clone, Debug)]
struct PathRule {
    kind: Match,
    /// For `Prefix`, without a trailing `/` (except the root `/`).
    path: String,
    target: Target,
}

impl PathRule {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            Match::Exact => path == self.path,
            Match::Prefix => {
                self.path == "/"
                    || path
                        .strip_prefix(self.path.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

/// What a request gets.
#[derive(Clone, Debug)]
pub enum Route {
    /// Proxy to this backend.
    Backend(Arc<Backend>),
    /// 503, with the reason.
    Unavailable(Arc<str>),
    /// 404: no rule and no default backend.
    NotFound,
}

/// The routing table of one moment; rebuilt whole on every change and
/// swapped in, never edited.
#[derive(Debug, Default)]
pub struct Table {
    exact: HashMap<String, Vec<PathRule>>,
    /// Keyed by what follows `*.`.
    wildcard: HashMap<String, Vec<PathRule>>,
    any_host: Vec<PathRule>,
    default_backend: Option<Target>,
    /// The Ingresses served, `namespace/name`.
    pub ingresses: Vec<String>,
}

/// The class an Ingress asks for: `spec.ingressClassName`, else the
/// legacy annotation.
pub fn class_of(ingress: &Ingress) -> Option<&str> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CLASS_ANNOTATION))
                .map(String::as_str)
        })
        .filter(|c| !c.is_empty())
}

/// Whether a proxy of class `class` serves `ingress`: its class, or none
/// (as controllers that also watch Ingresses without a class).
pub fn serves(ingress: &Ingress, class: &str) -> bool {
    class_of(ingress).is_none_or(|c| c == class)
}

/// Lower-cases a request's host and drops its port (`A.example:8080` →
/// `a.example`; `[::1]:80` → `::1`).
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    bare.trim_end_matches('.').to_ascii_lowercase()
}

/// Ingress precedence: by creation time, then namespace and name (how
/// controllers settle two Ingresses claiming the same thing).
pub fn oldest_first(a: &Ingress, b: &Ingress) -> std::cmp::Ordering {
    let created = |i: &Ingress| i.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then_with(|| key_of(&a.metadata).cmp(&key_of(&b.metadata)))
}

/// The Ingresses this proxy serves (its class, or none), oldest first: the
/// order in which both the routing table and the certificates settle two
/// Ingresses claiming the same host.
pub fn served<'a>(ingresses: &'a [Arc<Ingress>], class: &str) -> Vec<&'a Ingress> {
    let mut served: Vec<&Ingress> = ingresses
        .iter()
        .map(|i| &**i)
        .filter(|i| serves(i, class))
        .collect();
    served.sort_by(|a, b| oldest_first(a, b));
    served
}

struct Resolver<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    endpoints: HashMap<(&'a str, &'a str), &'a Endpoints>,
    cache: HashMap<String, Target>,
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

impl Resolver<'_> {
    fn resolve(&mut self, namespace: &str, backend: &IngressBackend) -> Target {
        let Some(service) = &backend.service else {
            let what = backend
                .resource
                .as_ref()
                .map(|r| format!("{}/{}", r.kind, r.name))
                .unwrap_or_default();
            return Target::Unavailable(
                format!("resource backend {what} is not supported by this proxy").into(),
            );
        };
        let port = service.port.clone().unwrap_or_default();
        let port_text = match (&port.name, port.number) {
            (Some(name), _) if !name.is_empty() => name.clone(),
            (_, Some(number)) => number.to_string(),
            _ => String::new(),
        };
        let name = format!("{namespace}/{}:{port_text}", service.name);
        if let Some(found) = self.cache.get(&name) {
            return found.clone();
        }
        let target = self.lookup(namespace, &service.name, &port, &name);
        self.cache.insert(name, target.clone());
        target
    }

    fn lookup(
        &self,
        namespace: &str,
        service_name: &str,
        port: &k8s_openapi::api::networking::v1::ServiceBackendPort,
        name: &str,
    ) -> Target {
        let unavailable = |why: String| Target::Unavailable(why.into());
        let Some(svc) = self.services.get(&(namespace, service_name)) else {
            return unavailable(format!("service {namespace}/{service_name} not found"));
        };
        let ports = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_deref())
            .unwrap_or_default();
        let by_name = port.name.as_deref().filter(|n| !n.is_empty());
        let service_port = ports.iter().find(|p| match by_name {
            Some(wanted) => p.name.as_deref() == Some(wanted),
            None => Some(p.port) == port.number,
        });
        let Some(service_port) = service_port else {
            return unavailable(format!(
                "service {namespace}/{service_name} has no port {}",
                by_name.map_or_else(
                    || port.number.unwrap_or_default().to_string(),
                    str::to_string
                )
            ));
        };
        // The endpoints controller names each endpoint port after its
        // service port (unnamed when the service has a single unnamed one).
        let port_name = service_port.name.as_deref().unwrap_or_default();
        let mut addrs = Vec::new();
        if let Some(eps) = self.endpoints.get(&(namespace, service_name)) {
            for subset in eps.subsets.as_deref().unwrap_or_default() {
                let Some(ep_port) = subset
                    .ports
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .find(|p| {
                        p.name.as_deref().unwrap_or_default() == port_name
                            && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
                    })
                else {
                    continue;
                };
                let Ok(number) = u16::try_from(ep_port.port) else {
                    continue;
                };
                for address in subset.addresses.as_deref().unwrap_or_default() {
                    if let Ok(ip) = address.ip.parse::<IpAddr>() {
                        addrs.push(SocketAddr::new(ip, number));
                    }
                }
            }
        }
        if addrs.is_empty() {
            return unavailable(format!(
                "service {namespace}/{service_name} has no ready endpoints"
            ));
        }
        addrs.sort();
        addrs.dedup();
        Target::Ready(Arc::new(Backend::new(name.to_string(), addrs)))
    }
}

impl Table {
    /// Builds the table of the Ingresses of `class` (or without one).
    pub fn build(
        ingresses: &[Arc<Ingress>],
        services: &[Arc<Service>],
        endpoints: &[Arc<Endpoints>],
        class: &str,
    ) -> Self {
        let mut resolver = Resolver {
            services: services
                .iter()
                .map(|s| (key_of(&s.metadata), &**s))
                .collect(),
            endpoints: endpoints
                .iter()
                .map(|e| (key_of(&e.metadata), &**e))
                .collect(),
            cache: HashMap::new(),
        };
        let served = served(ingresses, class);
        let mut table = Table::default();
        for ingress in served {
            let (namespace, name) = key_of(&ingress.metadata);
            table.ingresses.push(format!("{namespace}/{name}"));
            let Some(spec) = &ingress.spec else { continue };
            if table.default_backend.is_none() {
                if let Some(backend) = &spec.default_backend {
                    table.default_backend = Some(resolver.resolve(namespace, backend));
                }
            }
            for rule in spec.rules.as_deref().unwrap_or_default() {
                let Some(http) = &rule.http else { continue };
                let host = rule
                    .host
                    .as_deref()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let list = if host.is_empty() {
                    &mut table.any_host
                } else if let Some(suffix) = host.strip_prefix("*.") {
                    table.wildcard.entry(suffix.to_string()).or_default()
                } else {
                    table.exact.entry(host).or_default()
                };
                for path in &http.paths {
                    let raw = path.path.as_deref().unwrap_or_default();
                    let (kind, path_text) = match path.path_type.as_str() {
                        "Exact" => (Match::Exact, raw.to_string()),
                        _ => {
                            let trimmed = raw.trim_end_matches('/');
                            (
                                Match::Prefix,
                                if trimmed.is_empty() {
                                    "/".to_string()
                                } else {
                                    trimmed.to_string()
                                },
                            )
                        }
                    };
                    list.push(PathRule {
                        kind,
                        path: path_text,
                        target: resolver.resolve(namespace, &path.backend),
                    });
                }
            }
        }
        for list in table
            .exact
            .values_mut()
            .chain(table.wildcard.values_mut())
            .chain(std::iter::once(&mut table.any_host))
        {
            // Stable: equal rules stay in Ingress age order.
            list.sort_by(|a, b| {
                b.path
                    .len()
                    .cmp(&a.path.len())
                    .then_with(|| (a.kind == Match::Prefix).cmp(&(b.kind == Match::Prefix)))
            });
        }
        table
    }

    /// Where a request for `host` (as sent, port and case allowed) and
    /// `path` goes.
    pub fn route(&self, host: &str, path: &str) -> Route {
        let host = normalize_host(host);
        let wildcard = host
            .split_once('.')
            .and_then(|(_, suffix)| self.wildcard.get(suffix));
        let candidates = [self.exact.get(&host), wildcard, Some(&self.any_host)];
        let found = candidates
            .into_iter()
            .flatten()
            .find_map(|rules| rules.iter().find(|r| r.matches(path)));
        let target = found.map(|r| &r.target).or(self.default_backend.as_ref());
        match target {
            Some(Target::Ready(backend)) => Route::Backend(backend.clone()),
            Some(Target::Unavailable(why)) => Route::Unavailable(why.clone()),
            None => Route::NotFound,
        }
    }

    /// How many host and path rules the table holds.
    pub fn rule_count(&self) -> usize {
        self.exact.values().map(Vec::len).sum::<usize>()
            + self.wildcard.values().map(Vec::len).sum::<usize>()
            + self.any_host.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// An Ingress in `default` with this creation time and spec.
    pub(crate) fn ingress(name: &str, created: &str, spec: serde_json::Value) -> Arc<Ingress> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
                "spec": spec,
            }))
            .unwrap(),
        )
    }

    fn service(name: &str, ports: serde_json::Value) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"ports": ports},
            }))
            .unwrap(),
        )
    }

    fn endpoints(name: &str, subsets: serde_json::Value) -> Arc<Endpoints> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "subsets": subsets,
            }))
            .unwrap(),
        )
    }

    fn backend(service: &str, port: serde_json::Value) -> serde_json::Value {
        json!({"service": {"name": service, "port": port}})
    }

    fn path(p: &str, kind: &str, service: &str) -> serde_json::Value {
        json!({"path": p, "pathType": kind, "backend": backend(service, json!({"number": 80}))})
    }

    /// One service per name in `names`, port 80 → 8080 with one ready
    /// endpoint 10.0.0.N (N its position + 1) and one not ready.
    fn cluster(names: &[&str]) -> (Vec<Arc<Service>>, Vec<Arc<Endpoints>>) {
        let services = names
            .iter()
            .map(|n| service(n, json!([{"port": 80, "targetPort": 8080}])))
            .collect();
        let eps = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                endpoints(
                    n,
                    json!([{"addresses": [{"ip": format!("10.0.0.{}", i + 1)}],
                        "notReadyAddresses": [{"ip": "10.9.9.9"}],
                        "ports": [{"port": 8080}]}]),
                )
            })
            .collect();
        (services, eps)
    }

    fn to(table: &Table, host: &str, p: &str) -> String {
        match table.route(host, p) {
            Route::Backend(b) => b.pick().unwrap().0.to_string(),
            Route::Unavailable(why) => format!("503 {why}"),
            Route::NotFound => "404".to_string(),
        }
    }

    const T0: &str = "2026-12-06T08:00:00Z";
    const T1: &str = "2026-12-06T08:00:01Z";

    #[test]
    fn hosts_exact_then_wildcard_then_any() {
        let (svcs, eps) = cluster(&["a", "b", "c"]);
        let ings = [ingress(
            "web",
            T0,
            json!({"rules": [
                {"host": "a.example", "http": {"paths": [path("/", "Prefix", "a")]}},
                {"host": "*.example", "http": {"paths": [path("/", "Prefix", "b")]}},
                {"http": {"paths": [path("/", "Prefix", "c")]}},
            ]}),
        )];
        let table = Table::build(&ings, &svcs, &eps, "mini");
        assert_eq!(to(&table, "a.example", "/x"), "10.0.0.1:8080");
        assert_eq!(to(&table, "A.Example:80", "/"), "10.0.0.1:8080");
        assert_eq!(to(&table, "z.example", "/"), "10.0.0.2:8080");
        // A wildcard covers exactly one label.
        assert_eq!(to(&table, "y.z.example", "/"), "10.0.0.3:8080");
        assert_eq!(to(&table, "example", "/"), "10.0.0.3:8080");
        assert_eq!(to(&table, "10.245.1.2", "/"), "10.0.0.3:8080");
    }

    #[test]
    fn exact_and_prefix_by_path_elements_longest_first() {
        let (svcs, eps) = cluster(&["root", "foo", "foobar", "exact"]);
        let ings = [ingress(
            "web",
            T0,
            json!({"rules": [{"host": "h", "http": {"paths": [
                path("/", "Prefix", "root"),
                path("/foo/", "Prefix", "foo"),
                path("/foo/bar", "Prefix", "foobar"),
                path("/foo/bar", "Exact", "exact"),
            ]}}]}),
        )];
        let table = Table::build(&ings, &svcs, &eps, "mini");
        for (p, want) in [
            ("/", "10.0.0.1"),
            ("/fo", "10.0.0.1"),
            ("/foo", "10.0.0.2"),
            ("/foo/", "10.0.0.2"),
            ("/foobar", "10.0.0.1"),
            ("/foo/ba", "10.0.0.2"),
            ("/foo/bar", "10.0.0.4"),
            ("/foo/bar/", "10.0.0.3"),
            ("/foo/bar/baz", "10.0.0.3"),
            ("/foo/barbaz", "10.0.0.2"),
            ("/FOO", "10.0.0.1"),
        ] {
            assert_eq!(to(&table, "h", p), format!("{want}:8080"), "path {p}");
        }
    }

    #[test]
    fn exact_only_matches_the_whole_path() {
        let (svcs, eps) = cluster(&["a"]);
        let ings = [ingress(
            "web",
            T0,
            json!({"rules": [{"http": {"paths": [path("/a", "Exact", "a")]}}]}),
        )];
        let table = Table::build(&ings, &svcs, &eps, "mini");
        assert_eq!(to(&table, "h", "/a"), "10.0.0.1:8080");
        assert_eq!(to(&table, "h", "/a/"), "404");
        assert_eq!(to(&table, "h", "/ab"), "404");
    }

    #[test]
    fn the_default_backend_takes_what_no_rule_matches() {
        let (svcs, eps) = cluster(&["a", "fallback", "later"]);
        let ings = [
            ingress(
                "newer",
                T1,
                json!({"defaultBackend": backend("later", json!({"number": 80}))}),
            ),
            ingress(
                "older",
                T0,
                json!({"defaultBackend": backend("fallback", json!({"number": 80})),
                    "rules": [{"host": "a", "http": {"paths": [path("/a", "Prefix", "a")]}}]}),
            ),
        ];
        let table = Table::build(&ings, &svcs, &eps, "mini");
        assert_eq!(to(&table, "a", "/a"), "10.0.0.1:8080");
        assert_eq!(to(&table, "a", "/b"), "10.0.0.2:8080");
        assert_eq!(to(&table, "other", "/"), "10.0.0.2:8080");
    }

    #[test]
    fn unavailable_backends_say_why() {
        let (mut svcs, mut eps) = cluster(&["a"]);
        svcs.push(service("empty", json!([{"port": 80}])));
        eps.push(endpoints(
            "empty",
            json!([{"notReadyAddresses": [{"ip": "10.1.1.1"}], "ports": [{"port": 80}]}]),
        ));
        let ings = [ingress(
            "web",
            T0,
            json!({"rules": [{"http": {"paths": [
                path("/empty", "Prefix", "empty"),
                path("/missing", "Prefix", "missing"),
                {"path": "/port", "pathType": "Prefix", "backend": backend("a", json!({"number": 81}))},
                {"path": "/res", "pathType": "Prefix", "backend": {"resource": {"kind": "Bucket", "name": "b"}}},
            ]}}]}),
        )];
        let table = Table::build(&ings, &svcs, &eps, "mini");
        assert_eq!(
            to(&table, "h", "/empty"),
            "503 service default/empty has no ready endpoints"
        );
        assert_eq!(
            to(&table, "h", "/missing"),
            "503 service default/missing not found"
        );
        assert_eq!(
            to(&table, "h", "/port"),
            "503 service default/a has no port 81"
        );
        assert!(to(&table, "h", "/res").starts_with("503 resource backend Bucket/b"));
        assert_eq!(to(&table, "h", "/"), "404");
    }

    #[test]
    fn ports_by_name_reach_the_named_endpoint_port_round_robin() {
        let svcs = [service(
            "a",
            json!([{"name": "http", "port": 80, "targetPort": "web"},
                   {"name": "admin", "port": 81, "targetPort": 9000}]),
        )];
        let eps = [endpoints(
            "a",
            json!([
                {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                 "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9000}]},
                {"addresses": [{"ip": "10.0.0.3"}], "ports": [{"name": "http", "port": 8081}]},
            ]),
        )];
        let ings = [ingress(
            "web",
            T0,
            json!({"rules": [{"http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend("a", json!({"name": "http"}))},
                {"path": "/admin", "pathType": "Prefix", "backend": backend("a", json!({"number": 81}))},
            ]}}]}),
        )];
        let table = Table::build(&ings, &svcs, &eps, "mini");
        let picks: Vec<String> = (0..4).map(|_| to(&table, "h", "/")).collect();
        assert_eq!(
            picks,
            [
                "10.0.0.1:8080",
                "10.0.0.2:8080",
                "10.0.0.3:8081",
                "10.0.0.1:8080"
            ]
        );
        assert_eq!(to(&table, "h", "/admin"), "10.0.0.1:9000");
    }

    #[test]
    fn only_our_class_or_none() {
        let (svcs, eps) = cluster(&["mine", "theirs", "classless", "annotated"]);
        let mut annotated = (*ingress(
            "d",
            T0,
            json!({"rules": [{"host": "d", "http": {"paths": [path("/", "Prefix", "annotated")]}}]}),
        ))
        .clone();
        annotated.metadata.annotations =
            Some([(CLASS_ANNOTATION.to_string(), "other".to_string())].into());
        let ings = [
            ingress(
                "a",
                T0,
                json!({"ingressClassName": "mini",
                    "rules": [{"host": "a", "http": {"paths": [path("/", "Prefix", "mine")]}}]}),
            ),
            ingress(
                "b",
                T0,
                json!({"ingressClassName": "other",
                    "rules": [{"host": "b", "http": {"paths": [path("/", "Prefix", "theirs")]}}]}),
            ),
            ingress(
                "c",
                T0,
                json!({"rules": [{"host": "c", "http": {"paths": [path("/", "Prefix", "classless")]}}]}),
            ),
            Arc::new(annotated),
        ];
        let table = Table::build(&ings, &svcs, &eps, "mini");
        assert_eq!(table.ingresses, ["default/a", "default/c"]);
        assert_eq!(to(&table, "a", "/"), "10.0.0.1:8080");
        assert_eq!(to(&table, "b", "/"), "404");
        assert_eq!(to(&table, "c", "/"), "10.0.0.3:8080");
        assert_eq!(to(&table, "d", "/"), "404");
    }

    #[test]
    fn the_oldest_ingress_wins_a_tie() {
        let (svcs, eps) = cluster(&["old", "new"]);
        let ings = [
            ingress(
                "z-new",
                T1,
                json!({"rules": [{"host": "h", "http": {"paths": [path("/", "Prefix", "new")]}}]}),
            ),
            ingress(
                "a-old",
                T0,
                json!({"rules": [{"host": "h", "http": {"paths": [path("/", "Prefix", "old")]}}]}),
            ),
        ];
        let table = Table::build(&ings, &svcs, &eps, "mini");
        assert_eq!(to(&table, "h", "/"), "10.0.0.1:8080");
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("A.Example:8080"), "a.example");
        assert_eq!(normalize_host("a.example."), "a.example");
        assert_eq!(normalize_host("[::1]:80"), "::1");
        assert_eq!(normalize_host("::1"), "::1");
    }
}
