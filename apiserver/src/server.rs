//! Wiring: configuration, the registries, the router, bootstrap objects and
//! the accept loop (plain HTTP or TLS) with graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api_types::kinds::{self, ResourceKind};
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ipnet::Ipv4Net;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;
use tracing::{debug, info, warn};

use crate::auth::TokenAuth;
use crate::authz::{self, Authorizer};
use crate::discovery;
use crate::endpoint_reconciler::EndpointReconciler;
use crate::error::ApiError;
use crate::http::limits::{ClientAddr, FirstByteDeadline};
use crate::metrics::Metrics;
use crate::registry::componentstatuses::{self, ComponentStatuses};
use crate::registry::config::{ConfigMapStrategy, SecretStrategy};
use crate::registry::daemon_sets::DaemonSetStrategy;
use crate::registry::endpoints::EndpointsStrategy;
use crate::registry::events::EventStrategy;
use crate::registry::ingresses::{IngressClassStrategy, IngressStrategy};
use crate::registry::leases::LeaseStrategy;
use crate::registry::namespaces::{NamespaceLifecycle, NamespaceStrategy};
use crate::registry::nodes::NodeStrategy;
use crate::registry::pods::PodStrategy;
use crate::registry::rbac::{
    ClusterRoleBindingStrategy, ClusterRoleStrategy, RoleBindingStrategy, RoleStrategy,
};
use crate::registry::replication_controllers::ReplicationControllerStrategy;
use crate::registry::service_ips::ServiceIpAllocator;
use crate::registry::services::ServiceStrategy;
use crate::registry::{Rest, Store, WriteOptions};
use crate::storage::etcd::EtcdStorage;
use crate::storage::Storage;

/// The apiserver's flags.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "apiserver",
    version,
    about = "The mini-k8s API server: the REST API over etcd"
)]
pub struct Config {
    /// etcd endpoints, comma-separated (`http://127.0.0.1:2379,...`).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub etcd_servers: Vec<String>,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address other cluster members reach this server on (the `kubernetes`
    /// service's endpoint); defaults to the bind address, or 127.0.0.1 when
    /// binding all addresses.
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// The range portal IPs (service cluster IPs) are allocated from.
    #[arg(long, default_value = "10.0.0.0/24")]
    pub service_cluster_ip_range: Ipv4Net,
    /// Static bearer tokens (`token,user,uid[,groups]` per line); when set,
    /// every request but the health checks needs one.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Authorizers asked in order, comma-separated: `AlwaysAllow`,
    /// `AlwaysDeny`, `Node`, `RBAC`. Default: `Node,RBAC` with
    /// authentication, `AlwaysAllow` without (no authentication, no
    /// authorization).
    /// `system:masters` is always allowed.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub authorization_mode: Vec<authz::Mode>,
    /// PEM certificate to serve TLS with (needs --tls-private-key-file).
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// PEM CA bundle: a TLS client certificate it signed authenticates its
    /// common name as the user, its organization as a group (needs
    /// --tls-cert-file). Turns authentication and authorization on.
    #[arg(long, requires = "tls_cert_file")]
    pub client_ca_file: Option<PathBuf>,
    /// PEM client certificate presented to kubelets.
    #[arg(long)]
    pub kubelet_client_certificate: Option<PathBuf>,
    /// PEM private key of --kubelet-client-certificate.
    #[arg(long)]
    pub kubelet_client_key: Option<PathBuf>,
    /// PEM CA that kubelets' serving certificates are verified with; with
    /// it kubelets are reached over HTTPS, without it over plain HTTP.
    #[arg(long)]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// Changes kept in memory per resource for watches to resume from; 0
    /// gives every watch its own etcd watch.
    #[arg(long, default_value_t = 1000)]
    pub default_watch_cache_size: usize,
    /// How often etcd's history is compacted (a Go duration: `5m`, `10s`,
    /// `1h30m`; `0` never). Each compaction drops what is older than the
    /// previous one, so watches can resume across one interval; with
    /// several apiservers on one etcd only one compacts per interval.
    #[arg(long, default_value = "5m", value_parser = parse_interval)]
    pub etcd_compaction_interval: Duration,
    /// How often the service IP allocation record is checked against the
    /// stored services (IPs of services it lacks are marked; an IP no
    /// service holds is freed after three checks in a row). mini-k8s's
    /// own flag: Kubernetes runs the same repair every 3 minutes.
    #[arg(long, default_value = "3m", value_parser = parse_positive_interval)]
    pub service_cluster_ip_repair_interval: Duration,
    /// How the `kubernetes` service's endpoints are kept: `lease` (each
    /// apiserver renews a record on an etcd lease; the endpoints list the
    /// live ones) or `none` (not managed).
    #[arg(long, value_enum, default_value = "lease")]
    pub endpoint_reconciler_type: EndpointReconcilerType,
    /// How often this apiserver renews its endpoint record and reconciles
    /// the `kubernetes` endpoints (mini-k8s's own flag; Kubernetes: 10s).
    #[arg(long, default_value = "10s", value_parser = parse_positive_interval)]
    pub endpoint_reconcile_interval: Duration,
    /// How long an apiserver's endpoint record outlives its last renewal,
    /// so how long a killed apiserver stays listed (mini-k8s's own flag;
    /// Kubernetes: 15s). Must exceed --endpoint-reconcile-interval.
    #[arg(long, default_value = "15s", value_parser = parse_positive_interval)]
    pub endpoint_lease_ttl: Duration,
    /// How long events are kept, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub event_ttl_seconds: i64,
    /// How long shutdown waits for in-flight requests, in seconds.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
    /// The most read-only requests (get, list, discovery) served at once;
    /// more are answered 429 with `Retry-After: 1`. Watches and logs are
    /// long-running and not counted. 0 is no limit.
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// The most mutating requests (create, update, patch, delete) served
    /// at once; more are answered 429 with `Retry-After: 1`. 0 is no limit.
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
    /// How long a request other than a watch or a log may take before it is
    /// answered 504 (a Go duration: `1m0s`, `30s`).
    #[arg(long, default_value = "1m0s", value_parser = parse_interval)]
    pub request_timeout: Duration,
    /// The shortest time, in seconds, a watch without `timeoutSeconds` stays
    /// open; each gets a random time between this and twice it, so clients
    /// do not all reconnect at once.
    #[arg(long, default_value_t = 1800)]
    pub min_request_timeout: u64,
    /// The most watches one client (its IP address) may hold open at once;
    /// more are answered 429. 0 is no limit. Components on one host share
    /// an address: 5,000 hollow kubelets in one benchmark hold 10,000.
    #[arg(long, default_value_t = 20_000)]
    pub max_watches_per_client: usize,
    /// How long a connection may take to send a request's headers (and an
    /// idle keep-alive connection may wait for the next request), and how
    /// long a TLS handshake may take, before the connection is closed (a Go
    /// duration). Kubernetes' apiserver uses 32s.
    #[arg(long, default_value = "32s", value_parser = parse_interval)]
    pub header_read_timeout: Duration,
    /// Where `componentstatuses` reads the scheduler's health (its
    /// `--healthz-bind-address`); empty leaves `scheduler` out.
    #[arg(long, default_value = "http://127.0.0.1:10251/healthz")]
    pub scheduler_healthz_url: String,
    /// Where `componentstatuses` reads the controller manager's health
    /// (its `--healthz-bind-address`); empty leaves `controller-manager` out.
    #[arg(long, default_value = "http://127.0.0.1:10252/healthz")]
    pub controller_manager_healthz_url: String,
    /// Log verbosity (0-4; `RUST_LOG` overrides).
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

impl Config {
    /// Defaults with the given etcd endpoints (for tests and embedding).
    pub fn with_etcd(endpoints: Vec<String>) -> Self {
        Self {
            etcd_servers: endpoints,
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            advertise_address: None,
            service_cluster_ip_range: "10.0.0.0/24".parse().unwrap_or_else(|_| Ipv4Net::default()),
            token_auth_file: None,
            authorization_mode: Vec::new(),
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            kubelet_client_certificate: None,
            kubelet_client_key: None,
            kubelet_certificate_authority: None,
            default_watch_cache_size: 1000,
            etcd_compaction_interval: Duration::from_secs(300),
            service_cluster_ip_repair_interval: Duration::from_secs(180),
            endpoint_reconciler_type: EndpointReconcilerType::Lease,
            endpoint_reconcile_interval: Duration::from_secs(10),
            endpoint_lease_ttl: Duration::from_secs(15),
            event_ttl_seconds: 3600,
            shutdown_grace_seconds: 10,
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            request_timeout: Duration::from_secs(60),
            min_request_timeout: 1800,
            max_watches_per_client: 20_000,
            header_read_timeout: Duration::from_secs(32),
            scheduler_healthz_url: "http://127.0.0.1:10251/healthz".into(),
            controller_manager_healthz_url: "http://127.0.0.1:10252/healthz".into(),
            verbosity: 0,
        }
    }
}

/// A non-negative Go duration (`5m0s`, `10s`, `0`), as Kubernetes' flags take.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let parsed: kube_core::Duration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 5m or 10s: {e}"))?;
    if parsed.is_negative() {
        return Err(format!("{text:?} is negative"));
    }
    Ok(parsed.into())
}

/// A positive Go duration (`10s`, `3m`).
fn parse_positive_interval(text: &str) -> Result<Duration, String> {
    let parsed = parse_interval(text)?;
    if parsed.is_zero() {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(parsed)
}

/// How the `kubernetes` service's endpoints are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EndpointReconcilerType {
    /// Every live apiserver, from records on etcd leases.
    Lease,
    /// Not managed by the apiserver.
    None,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The token file is unusable.
    #[error(transparent)]
    TokenFile(#[from] crate::auth::TokenFileError),
    /// The TLS certificate or key is unusable.
    #[error("tls: {0}")]
    Tls(String),
    /// The kubelet client flags are unusable.
    #[error(transparent)]
    KubeletClient(#[from] crate::kubelet_tls::Error),
    /// etcd could not be reached at all.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// Accepting connections failed.
    #[error("cannot accept connections: {0}")]
    Accept(#[source] std::io::Error),
}

/// What every handler shares.
pub struct ApiState {
    /// One registry per resource, by v1 plural.
    registries: Registries,
    /// The store.
    pub storage: Arc<dyn Storage>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// Tokens, when a token file is given.
    pub auth: Option<TokenAuth>,
    /// Whether client certificates authenticate (`--client-ca-file`).
    pub client_certificates: bool,
    /// How kubelets are reached.
    pub kubelet: crate::kubelet_tls::KubeletClient,
    /// The authorizer, when authentication is on.
    pub authorizer: Option<Arc<Authorizer>>,
    /// Turns true when the server is stopping (watches end).
    pub shutdown: watch::Receiver<bool>,
    /// `host:port` clients reach the server on.
    pub server_address: String,
    /// `/healthz`, `/livez`, `/readyz` (`crate::health`).
    health: client_util::health::Health,
    /// In-flight limits, the request timeout, watches per client.
    pub limits: Arc<crate::http::limits::Limits>,
}

/// Every resource's registry, by group and plural (two groups may serve
/// the same plural, as `events` and `events.k8s.io` events do).
type Registries = HashMap<(&'static str, &'static str), Arc<dyn Rest>>;

impl ApiState {
    /// The registry of a resource.
    pub fn registry(&self, resource: &ResourceKind) -> Result<&Arc<dyn Rest>, ApiError> {
        self.registries
            .get(&(resource.group, resource.plural))
            .ok_or_else(|| ApiError::internal(format!("no registry for {}", resource.plural)))
    }
}

/// The registry of one resource, with a watch cache unless `cache_size` is 0.
fn store<S: crate::registry::Strategy>(
    strategy: S,
    storage: &Arc<dyn Storage>,
    cache_size: usize,
) -> Arc<dyn Rest> {
    let store = Store::new(strategy, storage.clone());
    if cache_size == 0 {
        Arc::new(store)
    } else {
        Arc::new(store.with_watch_cache(cache_size))
    }
}

/// Builds every registry over `storage`.
fn registries(
    config: &Config,
    storage: &Arc<dyn Storage>,
) -> (Registries, Arc<ServiceIpAllocator>) {
    let namespaces = Arc::new(NamespaceLifecycle::new(storage.clone()));
    let ips = Arc::new(ServiceIpAllocator::new(
        config.service_cluster_ip_range,
        storage.clone(),
    ));
    let size = config.default_watch_cache_size;
    let list: Vec<Arc<dyn Rest>> = vec![
        store(
            PodStrategy {
                namespaces: namespaces.clone(),
            },
            storage,
            size,
        ),
        store(
            ServiceStrategy {
                ips: ips.clone(),
                namespaces: namespaces.clone(),
            },
            storage,
            size,
        ),
        store(
            ReplicationControllerStrategy {
                namespaces: namespaces.clone(),
            },
            storage,
            size,
        ),
        store(NodeStrategy, storage, size),
        store(
            EndpointsStrategy {
                namespaces: namespaces.clone(),
            },
            storage,
            size,
        ),
        store(NamespaceStrategy, storage, size),
        store(
            EventStrategy {
                namespaces: namespaces.clone(),
                ttl_seconds: config.event_ttl_seconds,
            },
            storage,
            size,
        ),
        store(
            ConfigMapStrategy {
                namespaces: namespaces.clone(),
            },
            storage,
            size,
        ),
        store(
            SecretStrategy {
                namespaces: namespaces.clone(),
            },
            storage,
            size,
        ),
        store(
            LeaseStrategy {
                namespaces: namespaces.clone(),
            },
            storage,
            size,
        ),
        store(
            DaemonSetStrategy {
                namespaces: namespaces.clone(),
            },
            storage,
            size,
        ),
        store(
            RoleStrategy {
                namespaces: namespaces.clone(),
            },
            storage,
            size,
        ),
        store(
            IngressStrategy {
                namespaces: namespaces.clone(),
            },
            storage,
            size,
        ),
        store(IngressClassStrategy, storage, size),
        store(RoleBindingStrategy { namespaces }, storage, size),
        store(ClusterRoleStrategy, storage, size),
        store(ClusterRoleBindingStrategy, storage, size),
        Arc::new(ComponentStatuses::new(componentstatuses::components(
            &config.etcd_servers,
            &config.scheduler_healthz_url,
            &config.controller_manager_healthz_url,
        ))),
    ];
    (
        list.into_iter()
            .map(|r| ((r.resource().group, r.resource().plural), r))
            .collect(),
        ips,
    )
}

/// The router over `state`.
pub fn router(state: Arc<ApiState>) -> Router {
    let address = state.server_address.clone();
    Router::new()
        .merge(state.health.clone().router())
        .route("/metrics", get(metrics))
        .route("/version", get(|| async { Json(discovery::version()) }))
        .route(
            "/api",
            get(move || async move { Json(discovery::api_versions(&address)) }),
        )
        .route("/api/v1", get(|| async { Json(discovery::v1_resources()) }))
        .route(
            "/api/v1beta1",
            get(|| async { Json(discovery::v1beta1_resources()) }),
        )
        .route("/apis", get(|| async { Json(discovery::api_groups()) }))
        .route(
            "/apis/{group}",
            get(|Path(group): Path<String>| async move {
                discovery::api_group_of(&group).map_or_else(
                    || discovery::not_found(&format!("/apis/{group}")),
                    |v| Json(v).into_response(),
                )
            }),
        )
        .route(
            "/apis/{group}/{version}",
            get(
                |Path((group, version)): Path<(String, String)>| async move {
                    discovery::group_resources(&group, &version).map_or_else(
                        || discovery::not_found(&format!("/apis/{group}/{version}")),
                        |v| Json(v).into_response(),
                    )
                },
            ),
        )
        .route("/openapi/v2", get(crate::openapi::v2))
        .route(
            "/openapi/v3",
            get(|| async { Json(discovery::openapi_v3_root()) }),
        )
        .route(
            "/openapi/v3/api/v1",
            get(|| async { openapi_v3_response("", "v1", "/openapi/v3/api/v1") }),
        )
        .route(
            "/openapi/v3/apis/{group}/{version}",
            get(
                |Path((group, version)): Path<(String, String)>| async move {
                    let path = format!("/openapi/v3/apis/{group}/{version}");
                    // The core group is served only under /api/v1.
                    if group.is_empty() {
                        return discovery::not_found(&path);
                    }
                    openapi_v3_response(&group, &version, &path)
                },
            ),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/exec",
            get(crate::exec::exec).post(crate::exec::exec),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/attach",
            get(crate::exec::attach).post(crate::exec::attach),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            get(crate::portforward::portforward).post(crate::portforward::portforward),
        )
        .merge(authz::review::routes(state.authorizer.clone()))
        .merge(crate::token_review::routes(state.auth.clone()))
        .fallback(crate::http::handle)
        // Innermost, as Kubernetes' chain: authentication, limits, then
        // authorization.
        .layer(middleware::from_fn_with_state(
            state.authorizer.clone(),
            authz::authorize,
        ))
        // Inside authentication, as Kubernetes' handler chain: only
        // authenticated requests take a slot.
        .layer(middleware::from_fn_with_state(
            state.limits.clone(),
            crate::http::limits::enforce,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// A group-version's OpenAPI v3 document as encoded once, or the 404 of
/// `path`.
fn openapi_v3_response(group: &str, version: &str, path: &str) -> Response {
    match discovery::openapi_v3_encoded(group, version) {
        Some(bytes) => {
            let mut response = Response::new(axum::body::Body::from(bytes));
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            response
        }
        None => discovery::not_found(path),
    }
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    if (state.auth.is_some() || state.client_certificates)
        && !crate::auth::is_public(request.uri().path())
    {
        let header = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        // x509 first, then tokens, as Kubernetes' union authenticator.
        let certificate = request
            .extensions()
            .get::<crate::auth::CertificateUser>()
            .map(|c| &c.0);
        let token = || state.auth.as_ref().and_then(|a| a.authenticate(header));
        match certificate.or_else(token) {
            Some(user) => {
                debug!(user = %user.name, path = %request.uri().path(), "authenticated");
                let user = user.clone();
                request.extensions_mut().insert(user);
            }
            None => {
                return crate::http::json_response(
                    401,
                    &json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": "Unauthorized",
                        "reason": "Unauthorized", "code": 401,
                    }),
                )
            }
        }
    }
    next.run(request).await
}

/// Creates what must exist in every cluster: the `default`, `kube-system`,
/// `kube-public` and `kube-node-lease` namespaces, and the `kubernetes`
/// service in `default` whose endpoint is this apiserver. Idempotent.
async fn bootstrap(
    registries: &Registries,
    ips: &ServiceIpAllocator,
    endpoints: Option<&EndpointReconciler>,
    port: u16,
    tls: bool,
    rbac: bool,
    roles_done: &watch::Sender<bool>,
) -> Result<(), ApiError> {
    // Before anything allocates: the record must cover the services that
    // exist (a cluster older than the record, or a changed range).
    let report = ips.repair().await?;
    if !report.duplicates.is_empty() {
        warn!(ips = ?report.duplicates, "services share cluster IPs; change all but one of each");
    }
    let get = |r: &ResourceKind| {
        registries
            .get(&(r.group, r.plural))
            .cloned()
            .ok_or_else(|| ApiError::internal("missing registry"))
    };
    let namespaces = get(&kinds::NAMESPACES)?;
    // kube-node-lease holds the kubelets' heartbeat Leases, as in Kubernetes.
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        match namespaces
            .create(
                None,
                json!({ "metadata": { "name": name } }),
                &WriteOptions::default(),
            )
            .await
        {
            Ok(_) => info!(namespace = name, "created namespace"),
            Err(e) if e.code() == 409 => {}
            Err(e) => return Err(e),
        }
    }
    let (port_name, service_port) = if tls { ("https", 443) } else { ("http", 80) };
    let services = get(&kinds::SERVICES)?;
    let service = json!({
        "metadata": { "name": "kubernetes", "namespace": "default",
                      "labels": { "component": "apiserver", "provider": "kubernetes" } },
        "spec": {
            "clusterIP": ips.first().to_string(),
            "ports": [{ "name": port_name, "port": service_port, "protocol": "TCP", "targetPort": port }],
            "sessionAffinity": "None",
            "type": "ClusterIP",
        }
    });
    match services
        .create(Some("default"), service, &WriteOptions::default())
        .await
    {
        Ok(_) => info!("created the kubernetes service"),
        Err(e) if e.code() == 409 => {}
        // The first IP may be held by a service made before this one
        // existed; the kubernetes service then takes any free IP.
        Err(e) if e.code() == 422 => {
            let service = json!({
                "metadata": { "name": "kubernetes", "namespace": "default" },
                "spec": { "ports": [{ "name": port_name, "port": service_port, "protocol": "TCP", "targetPort": port }] }
            });
            match services
                .create(Some("default"), service, &WriteOptions::default())
                .await
            {
                Ok(_) | Err(_) => {}
            }
        }
        Err(e) => return Err(e),
    }
    if let Some(endpoints) = endpoints {
        endpoints.reconcile().await?;
    }
    // As Kubernetes' rbac/bootstrap-roles hook: only where RBAC decides.
    if rbac {
        authz::bootstrap::reconcile(
            get(&kinds::CLUSTER_ROLES)?.as_ref(),
            get(&kinds::CLUSTER_ROLE_BINDINGS)?.as_ref(),
        )
        .await?;
        let _ = roles_done.send(true);
    }
    Ok(())
}

/// The authorizer when authentication is on (its RBAC cache watching the
/// four RBAC registries until shutdown), `None` otherwise.
fn authorizer(
    config: &Config,
    authenticating: bool,
    registries: &Registries,
    shutdown: &watch::Sender<bool>,
) -> Option<Arc<Authorizer>> {
    if !authenticating {
        return None;
    }
    let get = |r: &ResourceKind| registries.get(&(r.group, r.plural)).cloned();
    let cache = authz::RbacCache::start(
        get(&kinds::ROLES)?,
        get(&kinds::CLUSTER_ROLES)?,
        get(&kinds::ROLE_BINDINGS)?,
        get(&kinds::CLUSTER_ROLE_BINDINGS)?,
        shutdown.subscribe(),
    );
    let modes = authz::modes(&config.authorization_mode, authenticating);
    info!(?modes, "authorization");
    let mut authorizer = Authorizer::new(modes.clone(), cache);
    if Authorizer::uses_node(&modes) {
        authorizer = authorizer.with_node_graph(authz::node::NodeGraph::start(
            get(&kinds::PODS)?,
            shutdown.subscribe(),
        ));
    }
    Some(Arc::new(authorizer))
}

/// The client certificate verifier of `--client-ca-file`: a certificate
/// is optional (tokens and the health checks need none), but one that is
/// presented must chain to the CA.
fn client_verifier(
    path: &std::path::Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ServerError> {
    let bad = |e: &dyn std::fmt::Display| ServerError::Tls(format!("{}: {e}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate found"));
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad(&e))
}

fn load_tls(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, ServerError> {
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_private_key_file) else {
        return Ok(None);
    };
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| ServerError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let certs = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let builder = match &config.client_ca_file {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, &provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))))
}

/// Serves the API on `listener` until `shutdown` resolves, then stops
/// accepting, ends every watch, and waits (up to the configured grace)
/// for in-flight requests.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let auth = config
        .token_auth_file
        .as_deref()
        .map(TokenAuth::from_file)
        .transpose()?;
    let tls = load_tls(&config)?;
    let kubelet = crate::kubelet_tls::KubeletClient::new(
        config.kubelet_client_certificate.as_deref(),
        config.kubelet_client_key.as_deref(),
        config.kubelet_certificate_authority.as_deref(),
    )?;
    let client_certificates = config.client_ca_file.is_some();
    let local = listener.local_addr().map_err(ServerError::Accept)?;
    let advertise = config
        .advertise_address
        .unwrap_or(if local.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            local.ip()
        });
    let etcd = EtcdStorage::connect(&config.etcd_servers).await?;
    let storage: Arc<dyn Storage> = Arc::new(etcd.clone());
    let (registries, ips) = registries(&config, &storage);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if !config.etcd_compaction_interval.is_zero() {
        tokio::spawn(crate::storage::compaction::run(
            etcd,
            config.etcd_compaction_interval,
            shutdown_tx.subscribe(),
        ));
    }
    let (bootstrapped_tx, bootstrapped_rx) = watch::channel(false);
    let (roles_tx, roles_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::new());
    let authorizer = authorizer(
        &config,
        auth.is_some() || client_certificates,
        &registries,
        &shutdown_tx,
    );
    let rbac = authorizer.as_ref().is_some_and(|a| a.uses_rbac());
    let limits = Arc::new(crate::http::limits::Limits::new(&config, metrics.clone()));
    let state = Arc::new(ApiState {
        registries: registries.clone(),
        storage: storage.clone(),
        metrics,
        limits,
        auth,
        client_certificates,
        kubelet,
        authorizer,
        shutdown: shutdown_rx.clone(),
        server_address: format!("{advertise}:{}", local.port()),
        health: crate::health::health(crate::health::Inputs {
            storage: storage.clone(),
            registries: registries.values().cloned().collect(),
            bootstrapped: bootstrapped_rx,
            roles: rbac.then_some(roles_rx),
            shutdown: shutdown_rx,
        }),
    });
    let is_tls = tls.is_some();
    let reconciler = match (
        config.endpoint_reconciler_type,
        registries.get(&(kinds::ENDPOINTS.group, kinds::ENDPOINTS.plural)),
    ) {
        (EndpointReconcilerType::Lease, Some(endpoints)) => {
            Some(Arc::new(EndpointReconciler::new(
                storage.clone(),
                endpoints.clone(),
                advertise,
                local.port(),
                if is_tls { "https" } else { "http" },
                config.endpoint_lease_ttl,
            )))
        }
        _ => None,
    };
    // Bootstrap retries until etcd answers; meanwhile /readyz says why not.
    // Then the same task keeps the service IP record repaired and the
    // `kubernetes` endpoints current until shutdown, when it takes this
    // apiserver out of them (awaited below).
    let mut stop_bootstrap = shutdown_tx.subscribe();
    let (repair_every, reconcile_every) = (
        config.service_cluster_ip_repair_interval,
        config.endpoint_reconcile_interval,
    );
    let background = tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match bootstrap(
                &registries,
                &ips,
                reconciler.as_deref(),
                local.port(),
                is_tls,
                rbac,
                &roles_tx,
            )
            .await
            {
                Ok(()) => {
                    let _ = bootstrapped_tx.send(true);
                    break;
                }
                Err(e) => warn!(error = %e, "bootstrap failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {},
                _ = stop_bootstrap.wait_for(|s| *s) => return,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        let repair = ips.run_repair(repair_every, stop_bootstrap.clone());
        match reconciler {
            Some(reconciler) => {
                tokio::join!(repair, reconciler.run(reconcile_every, stop_bootstrap));
            }
            None => repair.await,
        }
    });
    let app = router(state);
    info!(address = %local, tls = is_tls, "serving the API");
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // A client gets --header-read-timeout to send a request's headers, and
    // an idle keep-alive connection as long to start the next request;
    // then hyper closes it, so idle or slow connections cannot hold file
    // descriptors for ever (Kubernetes: ReadHeaderTimeout 32s).
    let header_timeout = config.header_read_timeout;
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small writes go out at once: exec's last frames (the status,
        // the close) would otherwise wait on Nagle for the peer's ACK.
        let _ = stream.set_nodelay(true);
        // Watches are counted per client address; a verified client
        // certificate's user rides along with every request of its
        // connection.
        let app = app.clone();
        let service = move |user: Option<crate::auth::CertificateUser>| {
            TowerToHyperService::new(app.map_request(
                move |mut request: axum::http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ClientAddr(peer));
                    if let Some(user) = &user {
                        request.extensions_mut().insert(user.clone());
                    }
                    request
                },
            ))
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                // Go bounds the handshake by the same timeout.
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let user = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .and_then(|cert| crate::auth::user_from_certificate(cert))
                                .map(crate::auth::CertificateUser);
                            let service = service(user);
                            let stream = FirstByteDeadline::new(stream, header_timeout);
                            watcher
                                .watch(
                                    builder
                                        .serve_connection_with_upgrades(
                                            TokioIo::new(stream),
                                            service,
                                        )
                                        .into_owned(),
                                )
                                .await
                        }
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out after {header_timeout:?}");
                            return;
                        }
                    }
                }
                None => {
                    let service = service(None);
                    let stream = FirstByteDeadline::new(stream, header_timeout);
                    watcher
                        .watch(
                            builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .into_owned(),
                        )
                        .await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    info!("shutting down: closing watches and draining requests");
    let _ = shutdown_tx.send(true);
    drop(listener);
    // Out of the `kubernetes` endpoints before the last requests drain, so
    // clients stop being sent here (bounded: etcd may be the reason we stop).
    if tokio::time::timeout(Duration::from_secs(5), background)
        .await
        .is_err()
    {
        warn!("could not leave the kubernetes endpoints within 5s; the record expires by itself");
    }
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("in-flight requests did not finish within {grace:?}; closing");
    }
    Ok(())
}
