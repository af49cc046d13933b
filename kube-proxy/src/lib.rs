//! kube-proxy: makes every service reachable on its portal IP and ports, and
//! on its publicIPs that are this node's addresses, forwarding to the
//! service's endpoints.
//!
//! [`run`] watches services and endpoints (`kube::runtime` through
//! [`client_util::reflect`]) and, on every change, reconciles the whole set
//! (level-triggered): [`model::service_ports`] turns the objects into
//! service ports, the mode turns those into nat rules ([`rules`]), and
//! [`iptables::RuleWriter`] writes them in one `iptables-restore`
//! transaction when they changed. In userspace mode the rules redirect to
//! the proxy's own listeners ([`userspace`]); in iptables mode the kernel
//! DNATs straight to the endpoints. On shutdown every rule and chain of
//! ours is removed ([`cleanup`]).
//!
//! Portal IPs must be routed to the node itself (`ip route add local
//! 10.0.0.0/24 dev lo table local`): a connection the node opens to a portal
//! is then routed locally, nat OUTPUT rewrites it, and a port without rules
//! is refused by the node instead of leaving it.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod balancer;
pub mod iptables;
pub mod metrics;
pub mod model;
pub mod node;
pub mod rules;
pub mod userspace;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use client_util::{reflect_all, Reflected, StopFlag};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::Client;

use crate::iptables::{Commands, Outcome, RuleWriter};
use crate::metrics::Metrics;
use crate::userspace::Userspace;

/// How service traffic is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Listeners in this process, one per service port (the 2014 design).
    Userspace,
    /// DNAT rules only; the kernel forwards.
    Iptables,
}

/// What the proxy needs besides its API client.
#[derive(Clone, Debug)]
pub struct Config {
    /// Forwarding mode.
    pub mode: Mode,
    /// Where userspace listeners bind (unspecified = every address).
    pub bind_address: Ipv4Addr,
    /// This node's name, for logs.
    pub hostname: String,
    /// A UDP association without traffic for this long ends.
    pub udp_idle_timeout: Duration,
    /// The rules are checked against the kernel's (and repaired) this often
    /// even when nothing changes.
    pub sync_period: Duration,
    /// After a failed sync, the next try comes this much later.
    pub retry_period: Duration,
    /// Userspace mode: TCP connections plus UDP associations forwarded at
    /// once.
    pub userspace_max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Iptables,
            bind_address: Ipv4Addr::UNSPECIFIED,
            hostname: String::new(),
            udp_idle_timeout: Duration::from_secs(30),
            sync_period: Duration::from_secs(30),
            retry_period: Duration::from_secs(1),
            userspace_max_connections: userspace::DEFAULT_MAX_CONNECTIONS as usize,
        }
    }
}

/// Why the proxy stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service or endpoints cache ended before it was filled.
    #[error("the {0} cache stopped before it was ready")]
    Cache(&'static str),
    /// Removing the rules on shutdown failed (they may remain: run
    /// `kube-proxy --cleanup`).
    #[error("removing the proxy's iptables rules: {0}")]
    Cleanup(#[source] iptables::Error),
    /// The health/metrics server failed.
    #[error("healthz server: {0}")]
    Healthz(#[source] std::io::Error),
}

/// Runs the proxy until `shutdown` resolves, then closes every listener
/// and removes every rule of ours. `healthz` serves `/healthz`,
/// `/livez`, `/readyz` and `/metrics`.
///
/// # Errors
///
/// [`Error`]: only failures that stop the proxy; failed syncs are logged,
/// counted and retried.
pub async fn run(
    client: Client,
    config: Config,
    healthz: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let stop = StopFlag::new(shutdown);
    let metrics = Arc::new(Metrics::new());
    let services = reflect_all::<Service>(client.clone(), stop.clone());
    let endpoints = reflect_all::<Endpoints>(client, stop.clone());
    let server = {
        let stop = stop.clone();
        let informers = client_util::health::InformerSync::new()
            .with_store(&services.store)
            .with_store(&endpoints.store);
        let router = metrics::router(metrics.clone(), informers);
        tokio::spawn(async move {
            axum::serve(healthz, router)
                .with_graceful_shutdown(async move { stop.stopped().await })
                .await
        })
    };
    tracing::info!(mode = ?config.mode, node = %config.hostname, bind = %config.bind_address, "kube-proxy starting");
    let mut writer = RuleWriter::new(Box::new(Commands));
    let mut userspace = (config.mode == Mode::Userspace).then(|| {
        Userspace::new(
            config.bind_address,
            config.udp_idle_timeout,
            config.userspace_max_connections,
            metrics.clone(),
        )
    });
    let ready = async {
        services
            .store
            .wait_until_ready()
            .await
            .map_err(|_| Error::Cache("service"))?;
        endpoints
            .store
            .wait_until_ready()
            .await
            .map_err(|_| Error::Cache("endpoints"))
    };
    let result = tokio::select! {
        () = stop.stopped() => Ok(()),
        ready = ready => match ready {
            Ok(()) => {
                sync_loop(&config, &services, &endpoints, &mut writer, userspace.as_mut(), &metrics, &stop).await;
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    tracing::info!("kube-proxy stopping: closing listeners, removing rules");
    if let Some(userspace) = userspace.as_mut() {
        userspace.close_all();
    }
    writer.cleanup().await.map_err(Error::Cleanup)?;
    if let Ok(Err(e)) = server.await {
        return Err(Error::Healthz(e));
    }
    result
}

async fn sync_loop(
    config: &Config,
    services: &Reflected<Service>,
    endpoints: &Reflected<Endpoints>,
    writer: &mut RuleWriter,
    mut userspace: Option<&mut Userspace>,
    metrics: &Metrics,
    stop: &StopFlag,
) {
    let mut service_changes = services.changes.clone();
    let mut endpoint_changes = endpoints.changes.clone();
    let mut local_ips = BTreeSet::new();
    let mut periodic = tokio::time::interval(config.sync_period);
    periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut verify = true;
    let mut dnat_seen = BTreeMap::new();
    loop {
        match node::ipv4_addresses().await {
            Ok(addresses) => local_ips = addresses,
            Err(error) => {
                tracing::warn!(%error, "cannot read this node's addresses; keeping the last known")
            }
        }
        let ports = model::service_ports(
            services.store.state().iter().map(AsRef::as_ref),
            endpoints.store.state().iter().map(AsRef::as_ref),
        );
        metrics.set_service_ports(ports.len());
        let desired = match userspace.as_deref_mut() {
            Some(userspace) => {
                let portals = userspace.sync(&ports, &local_ips).await;
                rules::userspace(&portals, config.bind_address)
            }
            None => rules::iptables(&ports.values().collect::<Vec<_>>(), &local_ips),
        };
        let retry_at = match writer.sync(desired, verify).await {
            Ok(outcome) => {
                let result = match outcome {
                    Outcome::Unchanged => "unchanged",
                    Outcome::Verified => "verified",
                    Outcome::Written => {
                        tracing::debug!(service_ports = ports.len(), "rules written");
                        "written"
                    }
                };
                metrics.sync(result);
                metrics.set_healthy(true);
                None
            }
            Err(error) => {
                tracing::warn!(%error, "syncing rules failed; retrying");
                metrics.sync("failed");
                metrics.set_healthy(false);
                Some(tokio::time::Instant::now() + config.retry_period)
            }
        };
        if let Some(saved) = writer.take_saved() {
            dnat_seen = count_dnat(&saved, &dnat_seen, metrics);
        }
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => futures::future::pending().await,
            }
        };
        verify = tokio::select! {
            () = stop.stopped() => return,
            // A closed channel means its watch task ended: only on shutdown.
            changed = service_changes.changed() => if changed.is_err() { return } else { false },
            changed = endpoint_changes.changed() => if changed.is_err() { return } else { false },
            _ = periodic.tick() => true,
            () = retry => true,
        };
    }
}

/// Adds the connections the DNAT rules counted since `seen` to the
/// connection metric; returns the new counts. A counter lower than before
/// belongs to a rule written since (it started from zero).
fn count_dnat(
    saved: &str,
    seen: &BTreeMap<(String, String), u64>,
    metrics: &Metrics,
) -> BTreeMap<(String, String), u64> {
    let now = rules::dnat_counts(saved);
    for (key, &packets) in &now {
        let before = seen.get(key).copied().unwrap_or(0);
        let new = if packets >= before {
            packets - before
        } else {
            packets
        };
        if new > 0 {
            metrics.connections_by_name(&key.0, new);
        }
    }
    now
}

/// `--cleanup`: removes every rule and chain either mode writes. `Ok(true)`
/// when something was removed.
///
/// # Errors
///
/// The iptables command's error.
pub async fn cleanup() -> Result<bool, iptables::Error> {
    iptables::cleanup(&Commands).await
}
