//! The controller manager: the replication manager, the DaemonSet
//! controller, the endpoints controller, node lifecycle, the namespace
//! controller and (when asked) the route controller, in one process over
//! shared caches.
//!
//! Pods, nodes and endpoints are each watched once (a `kube::runtime`
//! watcher feeding a reflector store); replication controllers and services
//! are the primary objects of a `kube::runtime::Controller` each, whose
//! stores the other loops read. Every loop is level-triggered: it compares
//! what the caches show with what is wanted and acts on the difference only.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod daemonset;
pub mod endpoints;
pub mod namespaces;
pub mod node_lifecycle;
mod object_memo;
mod ownership;
pub mod replication;
pub mod routes;
#[cfg(test)]
mod testing;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use client_util::{reflect, reflect_indexed, reflect_with, StopFlag};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client};

/// Errors of the reconcilers. API errors are retryable (the object is
/// requeued with a delay); the rest stop the controller manager.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the apiserver failed. Retryable.
    #[error("api request: {0}")]
    Api(#[source] kube::Error),
    /// A cache's watch task ended before its first list finished.
    #[error("the {0} cache closed before it was ready")]
    CacheClosed(&'static str),
    /// The netlink socket for the route controller could not be opened
    /// (needs `CAP_NET_ADMIN`).
    #[error("opening a netlink socket: {0}")]
    NetlinkSocket(#[source] std::io::Error),
    /// The kernel refused a route request. Retryable.
    #[error("netlink: {0}")]
    Netlink(#[source] rtnetlink::Error),
    /// Some of a deleted namespace's content could not be discovered or
    /// listed. Retryable.
    #[error("namespace content: {0}")]
    NamespaceContent(String),
}

/// `type Result<T> = Result<T, Error>` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Tunables; the defaults are Kubernetes'.
#[derive(Clone, Debug)]
pub struct Config {
    /// A node whose heartbeat is older than this becomes `Ready=Unknown`.
    pub node_monitor_grace_period: Duration,
    /// Pods on a node not ready for this long are deleted.
    pub pod_eviction_timeout: Duration,
    /// How often node health is checked.
    pub node_monitor_period: Duration,
    /// Pods one replication controller creates or deletes per reconcile.
    pub burst_replicas: usize,
    /// Every object is reconciled at least this often.
    pub resync: Duration,
    /// Run the route controller ([`routes`]): keep a route to every node's
    /// pod CIDR in this network namespace's main table. Needs root.
    pub configure_routes: bool,
    /// The pod range: the route controller routes only pod CIDRs inside it.
    pub cluster_cidr: ipnet::Ipv4Net,
    /// True while a running term's pod, node and endpoints caches have
    /// their first lists: the `informer-sync` health check.
    pub caches_synced: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Default for Config {
    // The one expect: a /16 of an IPv4 address is always a valid network.
    #[allow(clippy::expect_used)]
    fn default() -> Self {
        Self {
            node_monitor_grace_period: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(300),
            node_monitor_period: Duration::from_secs(5),
            burst_replicas: 500,
            resync: Duration::from_secs(300),
            configure_routes: false,
            cluster_cidr: ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 244, 0, 0), 16)
                .expect("16 is a valid IPv4 prefix length"),
            caches_synced: std::sync::Arc::default(),
        }
    }
}

/// Runs every controller until `shutdown` resolves.
///
/// # Errors
///
/// [`Error::CacheClosed`] if a cache could not start;
/// [`Error::NetlinkSocket`] or [`Error::Netlink`] from the route controller.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    // Opened first so that a controller manager that cannot program routes
    // fails at once instead of running without them.
    let route_table = if config.configure_routes {
        Some(routes::NetlinkRouteTable::connect()?)
    } else {
        None
    };
    let stop = StopFlag::new(shutdown);
    // Pods and nodes kept lean (`client_util::lean`: what the loops read;
    // none writes a cached pod or node back whole). Endpoints stay whole:
    // the endpoints controller replaces them.
    let (pods, pods_by_controller) = reflect_indexed(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        stop.clone(),
        client_util::lean::controller_pod,
        ownership::controller_key,
    );
    let nodes = reflect_with(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        stop.clone(),
        client_util::lean::node,
    );
    let endpoints = reflect(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
        stop.clone(),
    );
    tokio::select! {
        () = stop.stopped() => return Ok(()),
        ready = async {
            pods.store.wait_until_ready().await.map_err(|_| Error::CacheClosed("pod"))?;
            nodes.store.wait_until_ready().await.map_err(|_| Error::CacheClosed("node"))?;
            endpoints.store.wait_until_ready().await.map_err(|_| Error::CacheClosed("endpoints"))
        } => ready?,
    }
    tracing::info!("controller-manager caches ready");
    let synced = config.caches_synced.clone();
    synced.store(true, std::sync::atomic::Ordering::Relaxed);
    let routes = {
        let (nodes, stop) = (nodes.clone(), stop.clone());
        async move {
            match route_table {
                Some(table) => routes::run(table, nodes, config.cluster_cidr, stop).await,
                None => Ok(()),
            }
        }
    };
    let replication = replication::run(
        client.clone(),
        config.clone(),
        pods.clone(),
        pods_by_controller.clone(),
        stop.clone(),
    );
    let endpoints = endpoints::run(
        client.clone(),
        config.clone(),
        pods.clone(),
        endpoints,
        stop.clone(),
    );
    let namespaces = namespaces::run(client.clone(), config.clone(), pods.clone(), stop.clone());
    let daemon_sets = daemonset::run(
        client.clone(),
        config.clone(),
        pods.clone(),
        pods_by_controller,
        nodes.clone(),
        stop.clone(),
    );
    let lifecycle = node_lifecycle::run(client, config, nodes, pods, stop);
    let ((), (), (), (), (), routes) = tokio::join!(
        replication,
        endpoints,
        namespaces,
        daemon_sets,
        lifecycle,
        routes
    );
    synced.store(false, std::sync::atomic::Ordering::Relaxed);
    tracing::info!("controller-manager stopped");
    routes
}

/// How often at most a controller that re-reads a whole cache runs for a
/// burst of pod, node or endpoints changes: every change used to start a
/// pass over every RC, service and DaemonSet, and at 10,000 pods being
/// created the controller manager spent a fifth of the machine on it.
pub(crate) const CHANGES_BATCH: std::time::Duration = std::time::Duration::from_millis(100);

/// The cached pods of namespace `ns`: a snapshot, to be let go before the
/// caller sends a request or waits (held, it keeps every pod replaced
/// meanwhile alive).
pub(crate) fn pods_in(pods: &Store<Pod>, ns: &str) -> Vec<Arc<Pod>> {
    pods.state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .collect()
}

/// True for a pod in phase Succeeded or Failed.
pub(crate) fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// True when the pod's `Ready` condition is `True`.
pub(crate) fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}
