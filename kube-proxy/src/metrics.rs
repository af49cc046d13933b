//! `/metrics` (Prometheus text) and `/healthz`, `/livez`, `/readyz`
//! (Kubernetes' format, `client_util::health`), served on
//! `--healthz-bind-address`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::ServicePortName;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

/// Which way bytes went through the userspace proxy.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Direction {
    /// Client to endpoint.
    In,
    /// Endpoint to client.
    Out,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    service: String,
    direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    service: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    result: String,
}

/// The proxy's metrics, and whether it is healthy.
pub struct Metrics {
    registry: Registry,
    connections: Family<ServiceLabels, Counter>,
    bytes: Family<BytesLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    syncs: Family<SyncLabels, Counter>,
    service_ports: Gauge<i64, AtomicI64>,
    healthy: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let connections = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "kube_proxy_connections",
            "Connections (TCP) and associations (UDP) forwarded per service port (iptables mode: from the DNAT rules' counters, read every sync period)",
            connections.clone(),
        );
        let bytes = Family::<BytesLabels, Counter>::default();
        registry.register(
            "kube_proxy_bytes",
            "Bytes forwarded by the userspace proxy, per service port and direction",
            bytes.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "kube_proxy_errors",
            "Failures per service port: endpoints that refused (connect), no endpoint left (no_endpoint), listeners that could not open (listen), connections and UDP clients refused over --userspace-max-connections (too_many_connections)",
            errors.clone(),
        );
        let syncs = Family::<SyncLabels, Counter>::default();
        registry.register(
            "kube_proxy_syncs",
            "Rule syncs by result: unchanged, verified, written, failed",
            syncs.clone(),
        );
        let service_ports = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "kube_proxy_service_ports",
            "Service ports served",
            service_ports.clone(),
        );
        Self {
            registry,
            connections,
            bytes,
            errors,
            syncs,
            service_ports,
            healthy: AtomicBool::new(false),
        }
    }

    /// One connection forwarded.
    pub fn connection(&self, service: &ServicePortName) {
        self.connections
            .get_or_create(&ServiceLabels {
                service: service.to_string(),
            })
            .inc();
    }

    /// `n` bytes forwarded.
    pub fn bytes(&self, service: &ServicePortName, direction: Direction, n: u64) {
        self.bytes
            .get_or_create(&BytesLabels {
                service: service.to_string(),
                direction,
            })
            .inc_by(n);
    }

    /// `n` more connections for a service port named by its display form
    /// (iptables mode, from rule counters).
    pub fn connections_by_name(&self, service: &str, n: u64) {
        self.connections
            .get_or_create(&ServiceLabels {
                service: service.to_string(),
            })
            .inc_by(n);
    }

    /// One failure.
    pub fn error(&self, service: &ServicePortName, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                service: service.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// One rule sync with this result.
    pub fn sync(&self, result: &str) {
        self.syncs
            .get_or_create(&SyncLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// How many service ports are served now.
    pub fn set_service_ports(&self, n: usize) {
        self.service_ports.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Healthy = the last rule sync succeeded.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// `/healthz`, `/livez`, `/readyz` (`client_util::health`) and
/// `/metrics`. `proxy-rules` (on all three: the rules are in place and the
/// last sync worked, as Kubernetes' proxy health) and, on `/readyz`,
/// `informer-sync` (the services and endpoints caches have listed).
pub fn router(metrics: Arc<Metrics>, informers: client_util::health::InformerSync) -> Router {
    let rules = metrics.clone();
    let health = client_util::health::Health::new()
        .with_check(client_util::health::Check::sync("proxy-rules", move || {
            if rules.healthy.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("rules not synced".into())
            }
        }))
        .with_readyz_check(informers.check());
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
        .merge(health.router())
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
