//! cluster-dns: the cluster's DNS server. Service and endpoint names under
//! the cluster domain answered as Kubernetes' DNS specification says
//! (`<svc>.<ns>.svc.<zone>` A to the portal IP or to a headless service's
//! ready endpoints, `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV,
//! ExternalName as CNAME, NXDOMAIN vs NODATA with the zone's SOA).
//!
//! [`run`] watches services and endpoints (`kube::runtime` through
//! [`client_util::reflect`]) and answers each question straight from the
//! reflector stores ([`server::StoreObjects`]): a lookup by key, so a
//! change is visible to the next question, with nothing rebuilt per
//! event. The answers themselves are the pure [`records::answer`].
//!
//! Only the cluster domain is served. Everything else is REFUSED: there is
//! no recursion and no `--upstream` forwarding, because the machines this
//! runs on may send traffic only to the cluster's own addresses; a pod
//! that needs outside names uses `dnsPolicy: Default` (the node's
//! resolv.conf).

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod records;
pub mod server;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use client_util::{reflect_all, StopFlag};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::Client;

use crate::records::Zone;
use crate::server::{Counters, Handler, StoreObjects, TcpLimits};

/// What the server needs besides its client and sockets.
#[derive(Clone, Debug)]
pub struct Config {
    /// The cluster domain and TTL.
    pub zone: Zone,
    /// Bounds of the TCP side.
    pub tcp: TcpLimits,
    /// Tasks answering UDP, each one datagram at a time.
    pub udp_workers: usize,
}

/// The sockets [`run`] serves on, bound by the caller (so tests pick free
/// ports and the binary reports a busy one in its own words).
pub struct Listeners {
    /// DNS over UDP.
    pub udp: tokio::net::UdpSocket,
    /// DNS over TCP.
    pub tcp: tokio::net::TcpListener,
    /// `/healthz`, `/livez` and `/readyz` (`client_util::health`; ready once
    /// the services and endpoints caches are filled).
    pub healthz: tokio::net::TcpListener,
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The health server failed.
    #[error("healthz server: {0}")]
    Healthz(#[source] std::io::Error),
}

/// Serves DNS until `shutdown` resolves, then stops accepting, lets the
/// questions in flight finish, and returns.
///
/// # Errors
///
/// [`Error`]: only failures that stop the server; watch errors are logged
/// and retried by the reflectors.
pub async fn run(
    client: Client,
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let stop = StopFlag::new(shutdown);
    let services = reflect_all::<Service>(client.clone(), stop.clone());
    let endpoints = reflect_all::<Endpoints>(client, stop.clone());
    let informers = client_util::health::InformerSync::new()
        .with_store(&services.store)
        .with_store(&endpoints.store);
    let ready = Arc::new(AtomicBool::new(false));
    {
        let ready = ready.clone();
        let (services, endpoints) = (services.store.clone(), endpoints.store.clone());
        // Polled rather than awaited: in the e2e a task awaiting both
        // stores' `wait_until_ready()` was never woken although the stores
        // were ready (`now_or_never` said so, and /readyz with it), so the
        // server answered SERVFAIL for ever. A 100 ms poll of the same
        // readiness cannot miss it.
        tokio::spawn(async move {
            while !(client_util::health::store_synced(&services)
                && client_util::health::store_synced(&endpoints))
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            ready.store(true, Ordering::Release);
            tracing::info!("caches filled; answering");
        });
    }
    let counters = Arc::new(Counters::default());
    let handler = Handler::new(
        config.zone.clone(),
        StoreObjects {
            services: services.store,
            endpoints: endpoints.store,
        },
        ready.clone(),
        counters.clone(),
    );
    let udp_addr = listeners.udp.local_addr().ok();
    let tcp_addr = listeners.tcp.local_addr().ok();
    tracing::info!(zone = %config.zone.origin(), udp = ?udp_addr, tcp = ?tcp_addr, "cluster-dns starting");
    let handler = Arc::new(handler);
    let udp = {
        let stop = stop.clone();
        tokio::spawn(server::serve_udp(
            listeners.udp,
            handler.clone(),
            config.udp_workers,
            async move { stop.stopped().await },
        ))
    };
    let tcp = {
        let stop = stop.clone();
        tokio::spawn(server::serve_tcp(
            listeners.tcp,
            handler,
            config.tcp,
            counters.clone(),
            async move { stop.stopped().await },
        ))
    };
    let health = {
        let stop = stop.clone();
        // Kubernetes' format (`?verbose`, per-check paths); ready once both
        // caches have listed, as CoreDNS's kubernetes plugin.
        let router: axum::Router = client_util::health::Health::new()
            .with_readyz_check(informers.check())
            .router();
        tokio::spawn(async move {
            axum::serve(listeners.healthz, router)
                .with_graceful_shutdown(async move { stop.stopped().await })
                .await
        })
    };
    stop.stopped().await;
    tracing::info!(
        queries = counters.queries.load(Ordering::Relaxed),
        "cluster-dns stopping"
    );
    let _ = udp.await;
    let _ = tcp.await;
    match health.await {
        Ok(Err(e)) => Err(Error::Healthz(e)),
        _ => Ok(()),
    }
}
