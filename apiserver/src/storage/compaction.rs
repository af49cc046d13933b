//! Compaction of etcd's history, as Kubernetes' apiserver does it: every
//! interval, the revision seen at the previous interval is compacted, so
//! one interval of history stays for watches to resume from (older
//! resourceVersions get 410 Gone).
//!
//! Several apiservers may share one etcd: a compaction is claimed with a
//! transaction on [`COMPACT_REV_KEY`] that compares the key's version (how
//! many compactions were claimed) with the one this server last saw, so in
//! each interval at most one of them compacts, and a server that lost the
//! race simply adopts the winner's count.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::etcd::EtcdStorage;
use super::{Result, StorageError};

/// The key whose version counts claimed compactions and whose value is the
/// last revision claimed. Outside `/registry`: it is no object.
pub const COMPACT_REV_KEY: &str = "compact_rev_key";

/// What one server knows between two compaction steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compactor {
    /// The version of [`COMPACT_REV_KEY`] last seen (0: never written).
    pub claims_seen: i64,
    /// The store revision read at the last step: the next step compacts it.
    pub revision: i64,
}

/// What a step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// This server claimed the step and compacted up to the revision.
    Compacted(i64),
    /// This server claimed the first step: nothing to compact yet.
    Started,
    /// Another server claimed it since this one last looked.
    LostRace,
}

impl Compactor {
    /// One step: claim it, then compact to the revision remembered from the
    /// previous step. On an error the state is kept, so the next step tries
    /// again from it.
    pub async fn step(&mut self, etcd: &EtcdStorage) -> Result<Step> {
        let claim = Txn::new()
            .when([Compare::version(
                COMPACT_REV_KEY,
                CompareOp::Equal,
                self.claims_seen,
            )])
            .and_then([TxnOp::put(COMPACT_REV_KEY, self.revision.to_string(), None)])
            .or_else([TxnOp::get(COMPACT_REV_KEY, None)]);
        let response = etcd.raw_txn(claim).await?;
        let now = response
            .header()
            .map_or(0, etcd_client::ResponseHeader::revision);
        if !response.succeeded() {
            let claims = response
                .op_responses()
                .iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => {
                        get.kvs().first().map(etcd_client::KeyValue::version)
                    }
                    _ => None,
                })
                .unwrap_or(0);
            *self = Self {
                claims_seen: claims,
                revision: now,
            };
            return Ok(Step::LostRace);
        }
        let compact_to = self.revision;
        *self = Self {
            claims_seen: self.claims_seen + 1,
            revision: now,
        };
        if compact_to == 0 {
            return Ok(Step::Started);
        }
        match etcd.compact(compact_to).await {
            Ok(()) => Ok(Step::Compacted(compact_to)),
            // Someone (an operator, another server's late step) compacted
            // further already: the history is gone either way.
            Err(StorageError::Compacted { .. }) => Ok(Step::Compacted(compact_to)),
            Err(e) => Err(e),
        }
    }
}

/// Compacts every `interval` until `shutdown` turns true.
pub async fn run(etcd: EtcdStorage, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut compactor = Compactor::default();
    info!(?interval, "compacting etcd's history");
    loop {
        // The first step too waits an interval, as Kubernetes' does: a
        // server that restarts often never compacts history younger than
        // one interval.
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        match compactor.step(&etcd).await {
            Ok(Step::Compacted(revision)) => debug!(revision, "compacted etcd"),
            Ok(step) => debug!(?step, "no compaction this interval"),
            Err(error) => warn!(%error, "etcd compaction failed; trying again next interval"),
        }
    }
}
