//! The `kubernetes` service's endpoints: every live apiserver, as
//! Kubernetes' "lease" endpoint reconciler keeps them.
//!
//! Each apiserver keeps a presence record at
//! `/registry/masterleases/<ip>:<port>` on an etcd lease of its own and
//! renews the lease every interval. Renewing writes nothing to etcd's
//! history, so an idle cluster's revision stays still. A killed
//! apiserver's record goes with its lease once the TTL passes, and the next
//! pass of any live apiserver drops it from the endpoints; one stopped
//! with SIGTERM removes itself at once.
//!
//! An apiserver advertising a loopback address registers nothing: no pod
//! could reach it there, and endpoints may not name loopback addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::error::{ApiError, Result};
use crate::registry::{Rest, Subresource, WriteOptions};
use crate::storage::{ListOptions, Storage};

/// Where the presence records live (Kubernetes' own prefix).
pub const MASTER_LEASES: &str = "/registry/masterleases/";

/// One apiserver's presence record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Presence {
    ip: IpAddr,
    port: u16,
    port_name: String,
}

/// Keeps this apiserver's presence record and the `kubernetes` endpoints.
pub struct EndpointReconciler {
    storage: Arc<dyn Storage>,
    endpoints: Arc<dyn Rest>,
    me: Presence,
    ttl: Duration,
    /// The etcd lease holding this apiserver's record, once written.
    lease: Mutex<Option<i64>>,
}

impl EndpointReconciler {
    /// A reconciler for an apiserver reachable at `ip:port` (`port_name`
    /// `https` or `http`, as the service's port), whose record lives `ttl`
    /// after its last renewal.
    pub fn new(
        storage: Arc<dyn Storage>,
        endpoints: Arc<dyn Rest>,
        ip: IpAddr,
        port: u16,
        port_name: &str,
        ttl: Duration,
    ) -> Self {
        Self {
            storage,
            endpoints,
            me: Presence {
                ip,
                port,
                port_name: port_name.to_string(),
            },
            ttl,
            lease: Mutex::new(None),
        }
    }

    fn key(&self) -> String {
        format!("{MASTER_LEASES}{}:{}", self.me.ip, self.me.port)
    }

    fn registers(&self) -> bool {
        !(self.me.ip.is_loopback() || self.me.ip.is_unspecified())
    }

    /// Renews this apiserver's record, writing it again when its lease
    /// expired or the record is missing from `present`.
    async fn renew(&self, present: bool) -> Result<()> {
        let mut lease = self.lease.lock().await;
        if let Some(id) = *lease {
            if present && self.storage.keep_alive(id).await? {
                return Ok(());
            }
            // Missing or expired: a fresh record on a fresh lease; the old
            // lease (if still alive) would only delete the new record later.
            let _ = self.storage.revoke(id).await;
        }
        let value = serde_json::to_vec(&self.me)
            .map_err(|e| ApiError::internal(format!("cannot encode the presence record: {e}")))?;
        let ttl = i64::try_from(self.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        *lease = Some(
            self.storage
                .put_with_own_lease(&self.key(), value, ttl)
                .await?,
        );
        info!(address = %self.me.ip, port = self.me.port, "registered in the kubernetes service's endpoints");
        Ok(())
    }

    /// The live apiservers' records.
    async fn present(&self) -> Result<Vec<Presence>> {
        let page = self
            .storage
            .list(MASTER_LEASES, &ListOptions::default())
            .await?;
        let mut all: Vec<Presence> = page
            .items
            .iter()
            .filter_map(|item| serde_json::from_slice(&item.value).ok())
            .collect();
        all.sort();
        Ok(all)
    }

    /// One pass: renews this apiserver's record, then makes the endpoints
    /// list exactly the live records (no write when they already do).
    pub async fn reconcile(&self) -> Result<()> {
        let mut present = self.present().await?;
        if self.registers() {
            let here = present.contains(&self.me);
            self.renew(here).await?;
            if !here {
                present.push(self.me.clone());
                present.sort();
            }
        }
        self.write_endpoints(&present).await
    }

    async fn write_endpoints(&self, present: &[Presence]) -> Result<()> {
        // One subset per port, as Kubernetes groups addresses.
        let mut by_port: BTreeMap<(u16, &str), Vec<Value>> = BTreeMap::new();
        for p in present {
            by_port
                .entry((p.port, p.port_name.as_str()))
                .or_default()
                .push(json!({ "ip": p.ip.to_string() }));
        }
        let subsets: Vec<Value> = by_port
            .into_iter()
            .map(|((port, name), addresses)| {
                json!({
                    "addresses": addresses,
                    "ports": [{ "name": name, "port": port, "protocol": "TCP" }],
                })
            })
            .collect();
        let wanted = json!({
            "metadata": { "name": "kubernetes", "namespace": "default" },
            "subsets": subsets,
        });
        // An unchanged object is not written (the store compares), so a
        // steady cluster costs a read per pass and no etcd write.
        let (_, changed) = self
            .endpoints
            .update(
                Some("default"),
                "kubernetes",
                wanted,
                Subresource::Main,
                &WriteOptions::default(),
            )
            .await?;
        if changed {
            debug!(
                apiservers = present.len(),
                "updated the kubernetes endpoints"
            );
        }
        Ok(())
    }

    /// Takes this apiserver out: ends its lease (deleting its record) and
    /// writes the endpoints without it. For a graceful stop.
    pub async fn remove_self(&self) -> Result<()> {
        if let Some(id) = self.lease.lock().await.take() {
            self.storage.revoke(id).await?;
        }
        let present: Vec<Presence> = self
            .present()
            .await?
            .into_iter()
            .filter(|p| *p != self.me)
            .collect();
        self.write_endpoints(&present).await?;
        info!("removed from the kubernetes service's endpoints");
        Ok(())
    }

    /// Reconciles every `interval` until `stop` turns true, then removes
    /// this apiserver.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        if !self.registers() {
            info!(address = %self.me.ip,
                  "advertising a loopback address: not listed in the kubernetes service's endpoints");
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {},
                _ = stop.wait_for(|s| *s) => break,
            }
            if let Err(e) = self.reconcile().await {
                warn!(error = %e, "reconciling the kubernetes endpoints failed; retrying next interval");
            }
        }
        if let Err(e) = self.remove_self().await {
            warn!(error = %e, "could not remove this apiserver from the kubernetes endpoints; its lease expires by itself");
        }
    }
}
