//! Prometheus metrics: requests by verb, resource and code, request
//! latency, open watches, requests in flight and refused past the limits.
//! Every label value comes from a fixed set (verbs, the served resources
//! and their subresources, codes): a label from the request itself would
//! make one series per request.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    subresource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabels {
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InflightLabels {
    request_kind: &'static str,
}

/// The apiserver's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    watches: Family<WatchLabels, Gauge<i64, AtomicI64>>,
    inflight: Family<InflightLabels, Gauge<i64, AtomicI64>>,
    refused: Family<InflightLabels, Counter>,
}

/// Keeps a watch (or a request in flight) counted while it lives.
pub struct WatchGuard {
    gauge: Gauge<i64, AtomicI64>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
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
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "apiserver_request",
            "Requests by verb, resource, subresource and HTTP code",
            requests.clone(),
        );
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "apiserver_request_duration_seconds",
            "Request latency by verb and resource (watches excluded)",
            latency.clone(),
        );
        let watches = Family::<WatchLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "apiserver_registered_watchers",
            "Open watches by resource",
            watches.clone(),
        );
        let inflight = Family::<InflightLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "apiserver_current_inflight_requests",
            "Requests being served, by kind (readOnly, mutating), as the in-flight limits count them",
            inflight.clone(),
        );
        let refused = Family::<InflightLabels, Counter>::default();
        registry.register(
            "apiserver_dropped_requests",
            "Requests answered 429 past the in-flight limits, by kind",
            refused.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            watches,
            inflight,
            refused,
        }
    }

    /// Counts a request in flight of `kind` (`readOnly`, `mutating`) until
    /// the guard drops.
    pub fn inflight_started(&self, kind: &'static str) -> WatchGuard {
        let gauge = self
            .inflight
            .get_or_create(&InflightLabels { request_kind: kind })
            .clone();
        gauge.inc();
        WatchGuard { gauge }
    }

    /// Counts a request of `kind` refused past its in-flight limit.
    pub fn inflight_refused(&self, kind: &'static str) {
        self.refused
            .get_or_create(&InflightLabels { request_kind: kind })
            .inc();
    }

    /// Counts one finished request.
    pub fn observe(
        &self,
        verb: &str,
        resource: &str,
        subresource: &str,
        code: u16,
        took: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.to_string(),
                resource: resource.to_string(),
                subresource: subresource.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                verb: verb.to_string(),
                resource: resource.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts an open watch until the guard drops.
    pub fn watch_started(self: &Arc<Self>, resource: &str) -> WatchGuard {
        let gauge = self
            .watches
            .get_or_create(&WatchLabels {
                resource: resource.to_string(),
            })
            .clone();
        gauge.inc();
        WatchGuard { gauge }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
