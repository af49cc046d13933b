//! The apiserver's `/healthz`, `/livez` and `/readyz` checks, served by
//! `client_util::health` in Kubernetes' format.
//!
//! `/livez` (and `/healthz`) is `ping` only: an apiserver that serves
//! HTTP is alive, and one cut off from etcd is not helped by a restart.
//! Kubernetes also lists `etcd` there; we do not, so that a liveness probe
//! never restarts every apiserver during an etcd outage. `/readyz` adds
//! what must hold before this apiserver should get traffic: `etcd`,
//! `informer-sync` (every watch cache follows etcd),
//! `poststarthook/bootstrap-controller` (the default namespaces, the
//! `kubernetes` service and endpoints), `poststarthook/rbac/bootstrap-roles`
//! where RBAC decides, and `shutdown` (false once SIGTERM arrives, so load
//! balancers leave before the drain).

use std::sync::Arc;

use client_util::health::{Check, Health};
use tokio::sync::watch;

use crate::registry::Rest;
use crate::storage::Storage;

/// What the checks read.
pub struct Inputs {
    /// The store: `etcd`.
    pub storage: Arc<dyn Storage>,
    /// Every registry: `informer-sync` asks each for its watch cache.
    pub registries: Vec<Arc<dyn Rest>>,
    /// Turns true once the bootstrap objects exist.
    pub bootstrapped: watch::Receiver<bool>,
    /// Turns true once the default RBAC policy is reconciled; `None` when
    /// RBAC does not decide (no check then).
    pub roles: Option<watch::Receiver<bool>>,
    /// Turns true when the server stops.
    pub shutdown: watch::Receiver<bool>,
}

/// The apiserver's checks.
pub fn health(inputs: Inputs) -> Health {
    let Inputs {
        storage,
        registries,
        bootstrapped,
        roles,
        shutdown,
    } = inputs;
    let etcd = Check::new("etcd", move || {
        let storage = storage.clone();
        async move { storage.check_health().await.map_err(|e| e.to_string()) }
    });
    let caches = Check::sync("informer-sync", move || {
        let waiting: Vec<&str> = registries
            .iter()
            .filter(|r| r.cache_synced() == Some(false))
            .map(|r| r.resource().plural)
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} watch caches not following etcd yet: [{}]",
                waiting.len(),
                waiting.join(", ")
            ))
        }
    });
    let mut health = Health::new()
        .with_readyz_check(etcd)
        .with_readyz_check(caches)
        .with_readyz_check(Check::flag(
            "poststarthook/bootstrap-controller",
            bootstrapped,
            "bootstrap objects not created yet",
        ));
    if let Some(roles) = roles {
        health = health.with_readyz_check(Check::flag(
            "poststarthook/rbac/bootstrap-roles",
            roles,
            "default RBAC policy not reconciled yet",
        ));
    }
    health.with_readyz_check(Check::shutdown(shutdown))
}
