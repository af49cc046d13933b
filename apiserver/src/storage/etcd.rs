//! The etcd v3 backend of [`Storage`].
//!
//! Writes are transactions comparing `mod_revision` (or, for creates,
//! `create_revision == 0`), so two writers racing on one key cannot both win.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures::StreamExt;

use super::{
    ListOptions, ListPage, PrefixState, Result, Storage, StorageError, Stored, WatchEvent,
    WatchStream,
};

/// How long one etcd request may take before it counts as unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Storage`] over an etcd v3 cluster.
///
/// It keeps one client per member and sends each request to the member that
/// last answered; when that member is unreachable the request goes to the
/// next one. (`etcd-client`'s own balancing keeps sending some requests to a
/// dead member, so losing one member of three would fail requests.)
#[derive(Clone)]
pub struct EtcdStorage {
    clients: Arc<Vec<Client>>,
    current: Arc<AtomicUsize>,
    leases: Arc<tokio::sync::Mutex<LeaseReuse>>,
}

/// Keys per etcd read of an unpaged list: one gRPC answer each, at one
/// revision.
const UNPAGED_READ_PAGE: i64 = 1000;

/// The largest etcd answer read (tonic's default is 4 MiB): a page of
/// large objects (etcd takes values up to 1.5 MiB) must still fit.
const MAX_READ_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Longest a granted lease is handed to further writes (Kubernetes'
/// `--lease-reuse-duration-seconds`, 60 by default).
const LEASE_REUSE_SECONDS: i64 = 60;
/// At most this share of the TTL is added for reuse (Kubernetes' 5%), so
/// a short TTL is kept almost exactly.
const LEASE_REUSE_PERCENT: i64 = 5;
/// Objects attached to one lease at most (Kubernetes'
/// `leaseMaxAttachedObjectCount`): revoking a lease deletes them in one
/// etcd transaction, which must stay small.
const LEASE_MAX_OBJECTS: u64 = 1000;

/// The last lease granted, shared by writes with a TTL, as Kubernetes'
/// `leaseManager` does: with an event written on every occurrence, one
/// grant per write would double the etcd round trips.
#[derive(Debug, Default)]
struct LeaseReuse {
    /// The lease, when it expires, and how many writes took it.
    last: Option<(i64, tokio::time::Instant, u64)>,
}

impl LeaseReuse {
    /// Seconds added to a lease of `ttl` so that later writes can share it.
    fn extra(ttl: i64) -> i64 {
        (ttl * LEASE_REUSE_PERCENT / 100).min(LEASE_REUSE_SECONDS)
    }

    /// The lease a write at `now` with `ttl` may share: one that outlives
    /// `now + ttl` but by no more than the reuse margin, so an object
    /// lives at least `ttl` and at most `ttl + extra` seconds. Counts the
    /// write against the lease it returns.
    fn reusable(&mut self, now: tokio::time::Instant, ttl: i64) -> Option<i64> {
        let (id, expires, attached) = self.last.as_mut()?;
        let lifetime = Duration::from_secs(ttl.max(0) as u64);
        let margin = Duration::from_secs((ttl + Self::extra(ttl)).max(0) as u64);
        let valid = now + lifetime < *expires;
        let sufficient = now + margin >= *expires;
        if valid && sufficient && *attached < LEASE_MAX_OBJECTS {
            *attached += 1;
            Some(*id)
        } else {
            None
        }
    }

    /// Records a lease granted at `now` for `seconds`, taken by one write.
    fn granted(&mut self, id: i64, now: tokio::time::Instant, seconds: i64) {
        let expires = now + Duration::from_secs(seconds.max(0) as u64);
        self.last = Some((id, expires, 1));
    }
}

impl EtcdStorage {
    /// Connects to the given endpoints (`http://127.0.0.1:2379`, ...).
    /// Requests are balanced over the members that answer, so losing one
    /// member of a cluster leaves the others serving.
    ///
    /// The connection is lazy: this succeeds even while etcd is down, and
    /// requests fail with [`StorageError::Unavailable`] until it is up.
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_require_leader(true);
        let mut clients = Vec::with_capacity(endpoints.len());
        for endpoint in &endpoints {
            clients.push(
                Client::connect([endpoint.as_str()], Some(options.clone()))
                    .await
                    .map_err(unavailable)?,
            );
        }
        if clients.is_empty() {
            return Err(StorageError::Unavailable("no etcd endpoints given".into()));
        }
        Ok(Self {
            clients: Arc::new(clients),
            current: Arc::new(AtomicUsize::new(0)),
            leases: Arc::default(),
        })
    }

    /// A lease for a write whose value should expire in `ttl` seconds:
    /// the last one granted when it still fits ([`LeaseReuse`]), a new one
    /// (with the reuse margin added) otherwise. The lock is held across the
    /// grant so that a burst of writes waits for one grant, not many.
    async fn lease(&self, ttl: i64) -> Result<i64> {
        let mut leases = self.leases.lock().await;
        let now = tokio::time::Instant::now();
        if let Some(id) = leases.reusable(now, ttl) {
            return Ok(id);
        }
        let seconds = ttl + LeaseReuse::extra(ttl);
        let lease = self
            .call(|mut c| async move { c.lease_grant(seconds, None).await })
            .await
            .map_err(unavailable)?;
        leases.granted(lease.id(), now, seconds);
        Ok(lease.id())
    }

    /// Runs `op` against the current member, moving on to the next member
    /// while the error says the member could not be reached (so the request
    /// was not carried out). Other errors are returned as they are.
    async fn call<T, F, Fut>(&self, op: F) -> std::result::Result<T, etcd_client::Error>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let count = self.clients.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for step in 0..count {
            let index = (start + step) % count;
            match op(self.clients[index].clone()).await {
                Ok(value) => {
                    if step > 0 {
                        self.current.store(index, Ordering::Relaxed);
                    }
                    return Ok(value);
                }
                Err(e) if is_unreachable(&e) && step + 1 < count => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| etcd_client::Error::InvalidArgs("no etcd endpoints".into())))
    }

    fn stored(kv: &etcd_client::KeyValue) -> Result<Stored> {
        Ok(Stored {
            key: kv
                .key_str()
                .map_err(|e| StorageError::Internal(format!("non-utf8 key: {e}")))?
                .to_string(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
            create_revision: kv.create_revision(),
        })
    }

    /// The revision a failed compare found, read from the else-branch get.
    fn actual_revision(responses: &[TxnOpResponse]) -> i64 {
        responses
            .iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(get) => {
                    Some(get.kvs().first().map_or(0, |kv| kv.mod_revision()))
                }
                _ => None,
            })
            .unwrap_or(0)
    }
}

/// Whether an error means the member could not be reached or has no
/// leader, so another member may serve the request.
fn is_unreachable(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        // tonic's `Code` is not re-exported; its Debug name is stable.
        etcd_client::Error::GRpcStatus(status) => format!("{:?}", status.code()) == "Unavailable",
        _ => false,
    }
}

impl EtcdStorage {
    /// Runs a transaction as it is (the compactor's claim).
    pub(crate) async fn raw_txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.txn(txn).await
    }

    /// Compacts etcd's history up to `revision` (older revisions can no
    /// longer be read or watched from).
    pub(crate) async fn compact(&self, revision: i64) -> Result<()> {
        self.call(|mut c| async move { c.compact(revision, None).await })
            .await
            .map(|_| ())
            .map_err(|e| match e {
                etcd_client::Error::GRpcStatus(status)
                    if status.message().contains("compacted") =>
                {
                    StorageError::Compacted {
                        requested: revision,
                        compacted: 0,
                    }
                }
                other => unavailable(other),
            })
    }

    /// One etcd range read: at most `options.limit` keys, in one answer.
    async fn list_once(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        let start = match &options.start_after {
            // The smallest key greater than `after` is `after` + NUL.
            Some(after) => {
                let mut key = after.as_bytes().to_vec();
                key.push(0);
                key
            }
            None => prefix.as_bytes().to_vec(),
        };
        let mut get = GetOptions::new().with_range(prefix_end(prefix));
        if let Some(limit) = options.limit {
            get = get.with_limit(limit);
        }
        if let Some(revision) = options.revision {
            get = get.with_revision(revision);
        }
        let response = self
            .call(|c| {
                let (start, get) = (start.clone(), get.clone());
                async move {
                    c.kv_client()
                        .max_decoding_message_size(MAX_READ_MESSAGE_BYTES)
                        .get(start, Some(get))
                        .await
                }
            })
            .await
            .map_err(|e| match e {
                etcd_client::Error::GRpcStatus(status)
                    if status.message().contains("compacted") =>
                {
                    StorageError::Compacted {
                        requested: options.revision.unwrap_or_default(),
                        compacted: 0,
                    }
                }
                other => unavailable(other),
            })?;
        let items = response
            .kvs()
            .iter()
            .map(Self::stored)
            .collect::<Result<Vec<_>>>()?;
        let revision = match options.revision {
            Some(revision) => revision,
            None => response.header().map_or(0, |h| h.revision()),
        };
        let remaining = response.count() - items.len() as i64;
        Ok(ListPage {
            items,
            revision,
            more: response.more(),
            remaining,
        })
    }

    async fn txn(&self, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.call(|mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
        .map_err(unavailable)
    }
}

/// What an etcd error means to a caller. An exceeded space quota is said
/// as such: etcd refuses every write until an operator frees space, which
/// retrying does not do.
fn unavailable(error: etcd_client::Error) -> StorageError {
    match &error {
        etcd_client::Error::GRpcStatus(status)
            if status.message().contains("database space exceeded") =>
        {
            StorageError::NoSpace(status.message().to_string())
        }
        _ => StorageError::Unavailable(error.to_string()),
    }
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[async_trait]
impl Storage for EtcdStorage {
    async fn get(&self, key: &str) -> Result<Option<Stored>> {
        let response = self
            .call(|mut c| async move { c.get(key, None).await })
            .await
            .map_err(unavailable)?;
        response.kvs().first().map(Self::stored).transpose()
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        if options.limit.is_some() {
            return self.list_once(prefix, options).await;
        }
        // Unpaged: read in pages at one revision, so no single gRPC answer
        // has to hold the whole prefix (30,000 pods are ~50 MB).
        let mut page_options = ListOptions {
            limit: Some(UNPAGED_READ_PAGE),
            ..options.clone()
        };
        let mut all = self.list_once(prefix, &page_options).await?;
        while all.more {
            page_options.start_after = all.items.last().map(|s| s.key.clone());
            page_options.revision = Some(all.revision);
            let page = self.list_once(prefix, &page_options).await?;
            all.items.extend(page.items);
            all.more = page.more;
        }
        all.remaining = 0;
        Ok(all)
    }
    async fn create(&self, key: &str, value: Vec<u8>, ttl: Option<i64>) -> Result<i64> {
        let mut put = PutOptions::new();
        if let Some(ttl) = ttl {
            put = put.with_lease(self.lease(ttl).await?);
        }
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, Some(put))]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: i64,
        ttl: Option<i64>,
    ) -> Result<i64> {
        // A put without a lease detaches the key from the one it had, so an
        // expiring object keeps expiring only if every write attaches one.
        // A fresh TTL from this write, not the remainder of the old lease,
        // as Kubernetes' GuaranteedUpdate does: an event still occurring
        // (its count rising) stays for a TTL after its last occurrence.
        let put = match ttl {
            Some(ttl) => Some(PutOptions::new().with_lease(self.lease(ttl).await?)),
            None => None,
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value, put)])
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            let actual = Self::actual_revision(&response.op_responses());
            if actual == 0 {
                return Err(StorageError::NotFound {
                    key: key.to_string(),
                });
            }
            return Err(StorageError::Conflict {
                key: key.to_string(),
                expected,
                actual,
            });
        }
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    async fn put_with_own_lease(&self, key: &str, value: Vec<u8>, ttl: i64) -> Result<i64> {
        let lease = self
            .call(|mut c| async move { c.lease_grant(ttl, None).await })
            .await
            .map_err(unavailable)?
            .id();
        let put = PutOptions::new().with_lease(lease);
        self.call(|mut c| {
            let (value, put) = (value.clone(), put.clone());
            async move { c.put(key, value, Some(put)).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(lease)
    }

    async fn keep_alive(&self, lease: i64) -> Result<bool> {
        let response = self
            .call(|mut c| async move {
                let (mut keeper, mut responses) = c.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                responses.message().await
            })
            .await
            .map_err(unavailable)?;
        // etcd answers an expired or unknown lease with a TTL of 0.
        Ok(response.is_some_and(|r| r.ttl() > 0))
    }

    async fn revoke(&self, lease: i64) -> Result<()> {
        match self
            .call(|mut c| async move { c.lease_revoke(lease).await })
            .await
        {
            Ok(_) => Ok(()),
            // Already expired: its keys are gone, which is what was asked.
            Err(etcd_client::Error::GRpcStatus(status))
                if status.message().contains("requested lease not found") =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, key: &str, expected: Option<i64>) -> Result<(Stored, i64)> {
        let compare = match expected {
            Some(revision) => Compare::mod_revision(key, CompareOp::Equal, revision),
            None => Compare::create_revision(key, CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::delete(
                key,
                Some(etcd_client::DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(txn).await?;
        let revision = response.header().map_or(0, |h| h.revision());
        let responses = response.op_responses();
        if !response.succeeded() {
            let actual = Self::actual_revision(&responses);
            return Err(match (actual, expected) {
                (0, _) | (_, None) => StorageError::NotFound {
                    key: key.to_string(),
                },
                (actual, Some(expected)) => StorageError::Conflict {
                    key: key.to_string(),
                    expected,
                    actual,
                },
            });
        }
        let previous = responses
            .iter()
            .find_map(|r| match r {
                TxnOpResponse::Delete(delete) => delete.prev_kvs().first().map(Self::stored),
                _ => None,
            })
            .transpose()?
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_string(),
            })?;
        Ok((previous, revision))
    }

    async fn watch(&self, prefix: &str, after: i64) -> Result<WatchStream> {
        let options = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_start_revision(after + 1)
            .with_prev_key();
        let mut stream = self
            .call(|mut c| {
                let options = options.clone();
                async move { c.watch(prefix, Some(options)).await }
            })
            .await
            .map_err(unavailable)?;
        // etcd reports a compacted start revision on the first response:
        // answer it here so the caller can say 410 Gone before streaming.
        let mut pending = Vec::new();
        if let Some(first) = stream.message().await.map_err(unavailable)? {
            if first.compact_revision() > 0 {
                return Err(StorageError::Compacted {
                    requested: after,
                    compacted: first.compact_revision(),
                });
            }
            pending = convert_events(&first)?;
        }
        let head = futures::stream::iter(pending.into_iter().map(Ok));
        let rest = futures::stream::unfold(Some(stream), move |state| async move {
            let mut stream = state?;
            loop {
                match stream.message().await {
                    Ok(Some(response)) => {
                        if response.compact_revision() > 0 {
                            let error = StorageError::Compacted {
                                requested: after,
                                compacted: response.compact_revision(),
                            };
                            return Some((vec![Err(error)], None));
                        }
                        if response.canceled() {
                            let reason = response.cancel_reason().to_string();
                            return Some((vec![Err(StorageError::Unavailable(reason))], None));
                        }
                        match convert_events(&response) {
                            Ok(events) if events.is_empty() => continue,
                            Ok(events) => {
                                return Some((events.into_iter().map(Ok).collect(), Some(stream)))
                            }
                            Err(e) => return Some((vec![Err(e)], None)),
                        }
                    }
                    Ok(None) => return None,
                    Err(e) => return Some((vec![Err(unavailable(e))], None)),
                }
            }
        })
        .flat_map(futures::stream::iter);
        Ok(head.chain(rest).boxed())
    }

    async fn current_revision(&self) -> Result<i64> {
        let response = self
            .call(|mut c| async move {
                c.get("/registry/", Some(GetOptions::new().with_count_only()))
                    .await
            })
            .await
            .map_err(unavailable)?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    async fn prefix_state(&self, prefix: &str, since: i64) -> Result<Option<PrefixState>> {
        // One transaction, so both reads see one revision: the count comes
        // from etcd's index; the written-since read returns at most one
        // key, without its value.
        let count = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_count_only();
        let written = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_keys_only()
            .with_min_mod_revision(since + 1)
            .with_limit(1);
        let txn = Txn::new().and_then([
            TxnOp::get(prefix, Some(count)),
            TxnOp::get(prefix, Some(written)),
        ]);
        let response = self.txn(txn).await?;
        let revision = response.header().map_or(0, |h| h.revision());
        let gets: Vec<_> = response
            .op_responses()
            .into_iter()
            .filter_map(|r| match r {
                TxnOpResponse::Get(get) => Some(get),
                _ => None,
            })
            .collect();
        let [count, written] = gets.as_slice() else {
            return Err(StorageError::Internal(
                "etcd answered a two-read transaction with another shape".into(),
            ));
        };
        Ok(Some(PrefixState {
            revision,
            keys: count.count(),
            written_since: !written.kvs().is_empty(),
        }))
    }

    async fn check_health(&self) -> Result<()> {
        // A linearizable read needs a quorum, so it fails when the cluster
        // has lost it, not only when every member is gone.
        self.call(|mut c| async move {
            c.get("health", Some(GetOptions::new().with_count_only()))
                .await
        })
        .await
        .map(|_| ())
        .map_err(unavailable)
    }
}

fn convert_events(response: &etcd_client::WatchResponse) -> Result<Vec<WatchEvent>> {
    response
        .events()
        .iter()
        .filter_map(|event| {
            let kv = event.kv()?;
            let previous = event.prev_kv().map(|p| p.value().to_vec());
            Some(match event.event_type() {
                EventType::Put => {
                    EtcdStorage::stored(kv).map(|current| WatchEvent::Put { current, previous })
                }
                EventType::Delete => kv
                    .key_str()
                    .map_err(|e| StorageError::Internal(format!("non-utf8 key: {e}")))
                    .map(|key| WatchEvent::Delete {
                        key: key.to_string(),
                        revision: kv.mod_revision(),
                        previous,
                    }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{prefix_end, LeaseReuse, LEASE_MAX_OBJECTS};
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn a_lease_is_shared_within_the_reuse_margin_and_no_longer() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (ttl, seconds after the grant, shared?)
        let cases = [
            // 3600 s: granted for 3660 s; shared while it outlives now+3600.
            (3600, 0, true),
            (3600, 59, true),
            (3600, 60, false),
            // A short TTL gets no margin (5% of 4 s rounds to 0): never shared,
            // so it is kept exactly.
            (4, 0, false),
            // 100 s: margin 5 s.
            (100, 4, true),
            (100, 5, false),
        ];
        for (ttl, after, shared) in cases {
            let mut leases = LeaseReuse::default();
            leases.granted(7, t0, ttl + LeaseReuse::extra(ttl));
            let got = leases.reusable(t0 + s(after), ttl);
            assert_eq!(
                got.is_some(),
                shared,
                "ttl {ttl}, {after} s after the grant"
            );
        }
        // A lease granted for a long TTL is not handed to a much shorter one:
        // the object would outlive its TTL by far.
        let mut leases = LeaseReuse::default();
        leases.granted(7, t0, 3660);
        assert_eq!(leases.reusable(t0, 60), None);
        // Nothing granted yet: nothing to share.
        assert_eq!(LeaseReuse::default().reusable(t0, 60), None);
    }

    #[test]
    fn a_lease_takes_a_bounded_number_of_objects() {
        let t0 = Instant::now();
        let mut leases = LeaseReuse::default();
        leases.granted(7, t0, 3660);
        let shared = (0..2 * LEASE_MAX_OBJECTS)
            .filter(|_| leases.reusable(t0, 3600).is_some())
            .count() as u64;
        // The grant's own write counts as the first.
        assert_eq!(shared, LEASE_MAX_OBJECTS - 1);
    }

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
