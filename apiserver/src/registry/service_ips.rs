//! Portal IP allocation shared by every apiserver of one etcd: a bitmap
//! of the `--service-cluster-ip-range` kept at `/registry/ranges/serviceips`
//! (a v1 `RangeAllocation`, as Kubernetes stores it) and changed only by
//! compare-and-swap on its revision, so two apiservers never hand out one IP.
//!
//! An allocation is written before the service that holds it, so a crash
//! in between leaks the IP; deleting a service releases its IP after the
//! delete. [`ServiceIpAllocator::repair`] (Kubernetes' `RepairIPs`) runs at
//! start and on an interval: it marks the IPs of stored services that the
//! bitmap lacks, and frees an IP no service holds only after it has seen
//! it unheld [`LEAK_ROUNDS`] times in a row, since a create may be between
//! its allocation and its write.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use api_types::kinds;
use api_types::v1::Service;
use api_types::FieldError;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{debug, error, info, warn};

use crate::error::{ApiError, Result};
use crate::storage::{ListOptions, Storage, StorageError};

/// The etcd key of the allocation record (Kubernetes' own).
pub const RANGE_KEY: &str = "/registry/ranges/serviceips";

/// Repairs in a row that must find an IP allocated but unheld before it is
/// freed (Kubernetes' `numRepairsBeforeLeakCleanup`).
pub const LEAK_ROUNDS: u32 = 3;

/// Compare-and-swap attempts before an allocation gives up. Within one
/// apiserver allocations are serialised, so only other apiservers' writes
/// conflict; this many in a row means etcd is unusable, not busy.
const MAX_CAS_ATTEMPTS: usize = 64;

/// The stored record: Kubernetes' v1 `RangeAllocation`, whose `data` is
/// the bitmap as a big-endian integer where bit `i` is the `i`th usable
/// address of the range.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RangeAllocation {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    metadata: serde_json::Value,
    range: String,
    #[serde(default, with = "base64_bytes")]
    data: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// The set of allocated offsets of one range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bitmap(BTreeSet<u32>);

impl Bitmap {
    /// From Kubernetes' encoding (big-endian bytes, bit `i` = offset `i`).
    fn decode(bytes: &[u8]) -> Self {
        let mut set = BTreeSet::new();
        for (index, byte) in bytes.iter().rev().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    if let Ok(offset) = u32::try_from(index * 8 + bit) {
                        set.insert(offset);
                    }
                }
            }
        }
        Self(set)
    }

    /// To Kubernetes' encoding: no leading zero bytes, empty when none is set.
    fn encode(&self) -> Vec<u8> {
        let Some(&max) = self.0.last() else {
            return Vec::new();
        };
        let len = max as usize / 8 + 1;
        let mut bytes = vec![0u8; len];
        for &offset in &self.0 {
            let offset = offset as usize;
            bytes[len - 1 - offset / 8] |= 1 << (offset % 8);
        }
        bytes
    }
}

/// The allocation record as read.
enum Record {
    /// Not stored yet.
    Missing,
    /// The bitmap of this apiserver's range, at a revision.
    Usable(Bitmap, i64),
    /// Another range's, or unreadable: only a repair may replace it.
    Unusable { why: String, revision: i64 },
}

/// Why a requested IP cannot be had.
fn invalid_ip(requested: &str, detail: String) -> ApiError {
    ApiError::invalid(
        "Service",
        "",
        &[FieldError::invalid("spec.clusterIP", requested, detail)],
    )
}

/// What a repair pass found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// IPs of stored services the record lacked (now marked).
    pub marked: Vec<Ipv4Addr>,
    /// IPs no service holds that were freed after [`LEAK_ROUNDS`] passes.
    pub freed: Vec<Ipv4Addr>,
    /// IPs held by more than one service (left as they are; an operator
    /// must change one of them).
    pub duplicates: Vec<Ipv4Addr>,
    /// Whether the record was written.
    pub written: bool,
}

/// Hands out portal IPs from one range, through etcd.
pub struct ServiceIpAllocator {
    range: Ipv4Net,
    storage: Arc<dyn Storage>,
    /// Serialises this process's read-modify-write of the record, so its
    /// compare-and-swaps conflict only with other apiservers'.
    local: Mutex<()>,
    /// Unheld allocations seen by earlier repair passes, and how often.
    leaks: Mutex<BTreeMap<u32, u32>>,
}

impl ServiceIpAllocator {
    /// An allocator over `range` keeping its record in `storage`.
    pub fn new(range: Ipv4Net, storage: Arc<dyn Storage>) -> Self {
        Self {
            range,
            storage,
            local: Mutex::new(()),
            leaks: Mutex::new(BTreeMap::new()),
        }
    }

    /// The range served.
    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// The first usable address, which the `kubernetes` service takes.
    pub fn first(&self) -> Ipv4Addr {
        self.range.hosts().next().unwrap_or(self.range.addr())
    }

    /// How many addresses the range hands out (network and broadcast
    /// addresses excluded, as Kubernetes does).
    fn size(&self) -> u32 {
        self.range.hosts().count().try_into().unwrap_or(u32::MAX)
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let base = u32::from(self.first());
        let offset = u32::from(ip).checked_sub(base)?;
        (offset < self.size()).then_some(offset)
    }

    fn address(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.first()) + offset)
    }

    /// The record as stored, and its revision.
    async fn read_record(&self) -> Result<Record> {
        let Some(stored) = self.storage.get(RANGE_KEY).await? else {
            return Ok(Record::Missing);
        };
        let revision = stored.mod_revision;
        Ok(
            match serde_json::from_slice::<RangeAllocation>(&stored.value) {
                Ok(record) if record.range == self.range.to_string() => {
                    Record::Usable(Bitmap::decode(&record.data), revision)
                }
                Ok(record) => Record::Unusable {
                    why: format!(
                        "the service IP allocation record is for {} but this apiserver serves {}; \
                     every apiserver must have the same --service-cluster-ip-range",
                        record.range, self.range
                    ),
                    revision,
                },
                Err(e) => Record::Unusable {
                    why: format!("the service IP allocation record is unreadable: {e}"),
                    revision,
                },
            },
        )
    }

    /// The bitmap to allocate from and its revision (0: not stored yet).
    /// A missing record (a cluster older than it) starts from the IPs the
    /// stored services hold, never from empty.
    async fn read(&self) -> Result<(Bitmap, i64)> {
        match self.read_record().await? {
            Record::Usable(bitmap, revision) => Ok((bitmap, revision)),
            Record::Missing => Ok((self.held().await?.0, 0)),
            // Allocating from a bitmap of another range would hand out
            // taken IPs; the repair pass rewrites it for this range.
            Record::Unusable { why, .. } => Err(ApiError::internal(why)),
        }
    }

    /// The offsets the stored services hold, and those held twice.
    async fn held(&self) -> Result<(Bitmap, Vec<Ipv4Addr>)> {
        let page = self
            .storage
            .list(&kinds::SERVICES.prefix(None), &ListOptions::default())
            .await?;
        let mut held = Bitmap::default();
        let mut duplicates = Vec::new();
        for item in &page.items {
            let Ok(service) = serde_json::from_slice::<Service>(&item.value) else {
                continue;
            };
            let Some(ip) = service.spec.and_then(|s| s.cluster_ip) else {
                continue;
            };
            let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                continue; // "None" (headless) and ""
            };
            let Some(offset) = self.offset(ip) else {
                warn!(%ip, service = %item.key, range = %self.range,
                      "a service holds an IP outside the service range");
                continue;
            };
            if !held.0.insert(offset) {
                error!(%ip, "two services hold the same cluster IP");
                duplicates.push(ip);
            }
        }
        Ok((held, duplicates))
    }

    /// Stores `bitmap` over the record at `revision` (0: creates it).
    /// `Ok(false)` when another writer came first.
    async fn write(&self, bitmap: &Bitmap, revision: i64) -> Result<bool> {
        let record = RangeAllocation {
            kind: "RangeAllocation".into(),
            api_version: "v1".into(),
            metadata: serde_json::json!({ "creationTimestamp": null }),
            range: self.range.to_string(),
            data: bitmap.encode(),
        };
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| ApiError::internal(format!("cannot encode the allocation: {e}")))?;
        let result = if revision == 0 {
            self.storage.create(RANGE_KEY, bytes, None).await
        } else {
            self.storage.update(RANGE_KEY, bytes, revision, None).await
        };
        match result {
            Ok(_) => Ok(true),
            Err(StorageError::AlreadyExists { .. } | StorageError::Conflict { .. })
            | Err(StorageError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Read, change, compare-and-swap, until it lands. `change` returns
    /// the answer and whether the bitmap must be written.
    async fn modify<T>(
        &self,
        mut change: impl FnMut(&mut Bitmap) -> Result<(T, bool)>,
    ) -> Result<T> {
        let _local = self.local.lock().await;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (mut bitmap, revision) = self.read().await?;
            let (answer, dirty) = change(&mut bitmap)?;
            if !dirty || self.write(&bitmap, revision).await? {
                return Ok(answer);
            }
            debug!("service IP allocation raced another apiserver; retrying");
        }
        Err(ApiError::new(
            api_types::status::Reason::Conflict,
            format!(
                "failed to allocate a serviceIP: the allocation record changed {MAX_CAS_ATTEMPTS} times in a row; try again"
            ),
        ))
    }

    /// Takes `requested` if it is in the range and free, else the first
    /// free IP. With `dry_run` nothing is written: the answer is what a
    /// real allocation would give now.
    pub async fn allocate(&self, requested: Option<&str>, dry_run: bool) -> Result<Ipv4Addr> {
        let wanted = match requested {
            Some(text) => {
                let ip: Ipv4Addr = text
                    .parse()
                    .map_err(|_| invalid_ip(text, "must be a valid IPv4 address".into()))?;
                let offset = self.offset(ip).ok_or_else(|| {
                    invalid_ip(
                        text,
                        format!(
                            "provided IP is not in the valid range. The range of valid IPs is {}",
                            self.range
                        ),
                    )
                })?;
                Some((text, offset))
            }
            None => None,
        };
        let size = self.size();
        let range = self.range;
        let offset = self
            .modify(|bitmap| {
                let offset = match wanted {
                    Some((text, offset)) if bitmap.0.contains(&offset) => {
                        return Err(invalid_ip(text, "provided IP is already allocated".into()))
                    }
                    Some((_, offset)) => offset,
                    None => (0..size).find(|o| !bitmap.0.contains(o)).ok_or_else(|| {
                        ApiError::new(
                            api_types::status::Reason::InternalError,
                            format!(
                                "failed to allocate a serviceIP: range is full ({range}, {} addresses taken)",
                                bitmap.0.len()
                            ),
                        )
                    })?,
                };
                bitmap.0.insert(offset);
                Ok((offset, !dry_run))
            })
            .await?;
        Ok(self.address(offset))
    }

    /// Gives `ip` back. IPs outside the range and IPs not allocated are
    /// ignored, so a release may be repeated.
    pub async fn release(&self, ip: &str) -> Result<()> {
        let Some(offset) = ip.parse().ok().and_then(|ip| self.offset(ip)) else {
            return Ok(());
        };
        self.modify(|bitmap| Ok(((), bitmap.0.remove(&offset))))
            .await
    }

    /// Gives `ip` back, logging rather than failing: the caller's write is
    /// done, and a repair pass frees what a failed release leaves.
    pub async fn release_logged(&self, ip: &str) {
        if let Err(e) = self.release(ip).await {
            warn!(%ip, error = %e, "could not release a service IP; the repair pass will");
        }
    }

    /// One repair pass: reconciles the record with the stored services.
    pub async fn repair(&self) -> Result<RepairReport> {
        let _local = self.local.lock().await;
        // The record first, the services after: an allocation made in
        // between changes the record's revision, so the write below fails
        // rather than dropping it; one made before, whose service is not
        // stored yet, looks leaked and gets LEAK_ROUNDS passes to land.
        let (stored, revision) = match self.read_record().await? {
            Record::Usable(bitmap, revision) => (bitmap, revision),
            Record::Missing => (Bitmap::default(), 0),
            Record::Unusable { why, revision } => {
                warn!(%why, "rebuilding the service IP allocation record");
                (Bitmap::default(), revision)
            }
        };
        let (held, duplicates) = self.held().await?;
        let mut report = RepairReport {
            marked: held
                .0
                .difference(&stored.0)
                .map(|&offset| self.address(offset))
                .collect(),
            duplicates,
            ..RepairReport::default()
        };
        let mut rebuilt = held.clone();
        {
            let mut leaks = self.leaks.lock().await;
            leaks.retain(|offset, _| stored.0.contains(offset) && !held.0.contains(offset));
            for &offset in stored.0.difference(&held.0) {
                let seen = leaks.entry(offset).or_insert(0);
                *seen += 1;
                if *seen < LEAK_ROUNDS {
                    rebuilt.0.insert(offset);
                } else {
                    report.freed.push(self.address(offset));
                    leaks.remove(&offset);
                }
            }
        }
        if rebuilt != stored || revision == 0 {
            report.written = self.write(&rebuilt, revision).await?;
            if report.written {
                for ip in &report.marked {
                    info!(%ip, "service IP was not in the allocation record; marked it");
                }
                for ip in &report.freed {
                    info!(%ip, "freed a service IP that no service holds");
                }
            }
        }
        Ok(report)
    }

    /// Repairs every `interval` until `stop` turns true.
    pub async fn run_repair(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {},
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.repair().await {
                warn!(error = %e, "service IP repair failed; retrying next interval");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bitmap;

    #[test]
    fn the_bitmap_round_trips_in_kubernetes_encoding() {
        // Offsets 0 and 9: bits 0 and 9 of a big-endian integer, 0x02 0x01.
        let bitmap = Bitmap([0, 9].into_iter().collect());
        assert_eq!(bitmap.encode(), vec![0x02, 0x01]);
        assert_eq!(Bitmap::decode(&[0x02, 0x01]), bitmap);
        assert_eq!(Bitmap::default().encode(), Vec::<u8>::new());
        assert_eq!(Bitmap::decode(&[]), Bitmap::default());
        // Leading zero bytes (as another writer might keep) mean nothing.
        assert_eq!(Bitmap::decode(&[0, 0, 0x02, 0x01]), bitmap);
    }
}
