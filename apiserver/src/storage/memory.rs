//! An in-memory [`Storage`] with etcd's revision semantics, for unit tests
//! of the registry that need no etcd: one global revision that every write
//! (create, update, delete, expiry) advances by one; each key's
//! `create_revision` and `mod_revision`; compare-and-swap on the
//! `mod_revision`; reads of a listing at a past revision; watches from a
//! revision that first replay the changes since; and [`MemoryStorage::compact`],
//! after which older revisions answer [`StorageError::Compacted`] (the
//! registry's 410 Gone), as etcd does.
//!
//! Keys with a TTL or on a lease expire lazily: the first operation after
//! their deadline (tokio's clock, so tests may pause it) deletes them at a
//! revision of their own, as etcd's lease expiry does, and watchers see the
//! deletion then. Not for production: nothing is persisted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::channel::mpsc;
use futures::StreamExt;
use tokio::time::Instant;

use super::{
    ListOptions, ListPage, PrefixState, Result, Storage, StorageError, Stored, WatchEvent,
    WatchStream,
};

/// One version of a key: its value, or `None` for the deletion that ended it.
#[derive(Clone, Debug)]
struct Version {
    revision: i64,
    create_revision: i64,
    value: Option<Vec<u8>>,
}

/// What expires a key: its own TTL or a lease it shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    At(Instant),
    Lease(i64),
}

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
}

struct Watcher {
    prefix: String,
    events: mpsc::UnboundedSender<Result<WatchEvent>>,
}

#[derive(Default)]
struct State {
    revision: i64,
    /// Revisions before this one are gone (0: nothing compacted).
    compacted: i64,
    /// Every key's versions since the compaction, oldest first.
    keys: BTreeMap<String, Vec<Version>>,
    /// Every change since the compaction, by revision, for watches that
    /// start in the past.
    history: Vec<(i64, WatchEvent)>,
    expiries: HashMap<String, Expiry>,
    leases: HashMap<i64, Lease>,
    next_lease: i64,
    watchers: Vec<Watcher>,
}

impl State {
    /// The live version of `key` at `revision`.
    fn at(&self, key: &str, revision: i64) -> Option<Stored> {
        let version = self
            .keys
            .get(key)?
            .iter()
            .rev()
            .find(|v| v.revision <= revision)?;
        Some(Stored {
            key: key.to_string(),
            value: version.value.clone()?,
            mod_revision: version.revision,
            create_revision: version.create_revision,
        })
    }

    fn current(&self, key: &str) -> Option<Stored> {
        self.at(key, self.revision)
    }

    /// Records a new version of `key` (`None`: its deletion) at the next
    /// revision and tells the watchers.
    fn write(&mut self, key: &str, value: Option<Vec<u8>>) -> i64 {
        let previous = self.current(key);
        self.revision += 1;
        let revision = self.revision;
        let create_revision = match (&previous, &value) {
            (Some(previous), Some(_)) => previous.create_revision,
            (None, Some(_)) => revision,
            (_, None) => 0,
        };
        self.keys.entry(key.to_string()).or_default().push(Version {
            revision,
            create_revision,
            value: value.clone(),
        });
        let event = match value {
            Some(value) => WatchEvent::Put {
                current: Stored {
                    key: key.to_string(),
                    value,
                    mod_revision: revision,
                    create_revision,
                },
                previous: previous.map(|p| p.value),
            },
            None => {
                self.expiries.remove(key);
                WatchEvent::Delete {
                    key: key.to_string(),
                    revision,
                    previous: previous.map(|p| p.value),
                }
            }
        };
        self.watchers.retain(|watcher| {
            !event_key(&event).starts_with(&watcher.prefix)
                || watcher.events.unbounded_send(Ok(event.clone())).is_ok()
        });
        self.history.push((revision, event));
        revision
    }

    /// Deletes, each at a revision of its own, the keys whose TTL or lease
    /// ran out.
    fn expire(&mut self, now: Instant) {
        let ended: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, lease)| lease.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &ended {
            self.leases.remove(id);
        }
        let mut due: Vec<String> = self
            .expiries
            .iter()
            .filter(|(_, expiry)| match expiry {
                Expiry::At(deadline) => *deadline <= now,
                Expiry::Lease(id) => !self.leases.contains_key(id),
            })
            .map(|(key, _)| key.clone())
            .collect();
        due.sort();
        for key in due {
            self.expiries.remove(&key);
            if self.current(&key).is_some() {
                self.write(&key, None);
            }
        }
    }

    /// A write with `ttl` (seconds) expires that long from now; one
    /// without never does (as a put without a lease in etcd).
    fn set_expiry(&mut self, key: &str, ttl: Option<i64>) {
        match ttl {
            Some(ttl) => {
                let deadline = Instant::now() + seconds(ttl);
                self.expiries.insert(key.to_string(), Expiry::At(deadline));
            }
            None => {
                self.expiries.remove(key);
            }
        }
    }

    fn check_revision(&self, revision: i64) -> Result<()> {
        if revision < self.compacted {
            return Err(StorageError::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        if revision > self.revision {
            // etcd: "mvcc: required revision is a future revision".
            return Err(StorageError::Internal(format!(
                "revision {revision} is a future revision (current {})",
                self.revision
            )));
        }
        Ok(())
    }
}

/// A TTL in seconds, at least one (etcd's minimum lease).
fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl.max(1)).unwrap_or(1))
}

fn event_key(event: &WatchEvent) -> &str {
    match event {
        WatchEvent::Put { current, .. } => &current.key,
        WatchEvent::Delete { key, .. } => key,
    }
}

/// The in-memory store. Cheap to create; share it through an
/// `Arc<dyn Storage>`.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

impl MemoryStorage {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state with expired keys deleted. A poisoned lock (a panic in
    /// another test thread) is an `Internal` error, never a panic here.
    fn state(&self) -> Result<MutexGuard<'_, State>> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| StorageError::Internal("memory storage lock poisoned".into()))?;
        state.expire(Instant::now());
        Ok(state)
    }

    /// Forgets every revision before `revision`, keeping each key's value
    /// at it, as etcd's compaction does: reads and watches from an older
    /// revision then fail with [`StorageError::Compacted`].
    ///
    /// # Errors
    ///
    /// `Compacted` when `revision` is already compacted, `Internal` when it
    /// is in the future.
    pub fn compact(&self, revision: i64) -> Result<()> {
        let mut state = self.state()?;
        state.check_revision(revision)?;
        state.compacted = revision;
        for versions in state.keys.values_mut() {
            // The newest version at or before the compaction stays (unless
            // it is a deletion), and everything after it.
            let keep_from = versions
                .iter()
                .rposition(|v| v.revision <= revision)
                .unwrap_or(0);
            versions.drain(..keep_from);
            if versions
                .first()
                .is_some_and(|v| v.revision <= revision && v.value.is_none())
            {
                versions.remove(0);
            }
        }
        state.keys.retain(|_, versions| !versions.is_empty());
        state.history.retain(|(at, _)| *at >= revision);
        Ok(())
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<Stored>> {
        Ok(self.state()?.current(key))
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        let state = self.state()?;
        let revision = options.revision.unwrap_or(state.revision);
        state.check_revision(revision)?;
        let start = match &options.start_after {
            Some(after) => std::ops::Bound::Excluded(after.as_str()),
            None => std::ops::Bound::Included(prefix),
        };
        let mut matching = state
            .keys
            .range::<str, _>((start, std::ops::Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, _)| state.at(key, revision));
        let limit = options
            .limit
            .filter(|l| *l > 0)
            .and_then(|l| usize::try_from(l).ok());
        let items: Vec<Stored> = match limit {
            Some(limit) => matching.by_ref().take(limit).collect(),
            None => matching.by_ref().collect(),
        };
        let remaining = i64::try_from(matching.count()).unwrap_or(i64::MAX);
        Ok(ListPage {
            items,
            revision,
            more: remaining > 0,
            remaining,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>, ttl: Option<i64>) -> Result<i64> {
        let mut state = self.state()?;
        if state.current(key).is_some() {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let revision = state.write(key, Some(value));
        state.set_expiry(key, ttl);
        Ok(revision)
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: i64,
        ttl: Option<i64>,
    ) -> Result<i64> {
        let mut state = self.state()?;
        match state.current(key) {
            None => Err(StorageError::NotFound {
                key: key.to_string(),
            }),
            Some(current) if current.mod_revision != expected => Err(StorageError::Conflict {
                key: key.to_string(),
                expected,
                actual: current.mod_revision,
            }),
            Some(_) => {
                let revision = state.write(key, Some(value));
                state.set_expiry(key, ttl);
                Ok(revision)
            }
        }
    }

    async fn delete(&self, key: &str, expected: Option<i64>) -> Result<(Stored, i64)> {
        let mut state = self.state()?;
        let Some(current) = state.current(key) else {
            return Err(StorageError::NotFound {
                key: key.to_string(),
            });
        };
        if let Some(expected) = expected.filter(|e| *e != current.mod_revision) {
            return Err(StorageError::Conflict {
                key: key.to_string(),
                expected,
                actual: current.mod_revision,
            });
        }
        let revision = state.write(key, None);
        Ok((current, revision))
    }

    async fn put_with_own_lease(&self, key: &str, value: Vec<u8>, ttl: i64) -> Result<i64> {
        let mut state = self.state()?;
        state.next_lease += 1;
        let id = state.next_lease;
        let ttl = seconds(ttl);
        state.leases.insert(
            id,
            Lease {
                ttl,
                deadline: Instant::now() + ttl,
            },
        );
        state.write(key, Some(value));
        state.expiries.insert(key.to_string(), Expiry::Lease(id));
        Ok(id)
    }

    async fn keep_alive(&self, lease: i64) -> Result<bool> {
        let mut state = self.state()?;
        Ok(match state.leases.get_mut(&lease) {
            Some(lease) => {
                lease.deadline = Instant::now() + lease.ttl;
                true
            }
            None => false,
        })
    }

    async fn revoke(&self, lease: i64) -> Result<()> {
        let mut state = self.state()?;
        if state.leases.remove(&lease).is_some() {
            // The next look at the expiries deletes its keys.
            state.expire(Instant::now());
        }
        Ok(())
    }

    async fn watch(&self, prefix: &str, after: i64) -> Result<WatchStream> {
        let mut state = self.state()?;
        // etcd starts the watch at `after + 1`; a start before the
        // compaction point has lost events.
        if after + 1 < state.compacted {
            return Err(StorageError::Compacted {
                requested: after,
                compacted: state.compacted,
            });
        }
        let (events, stream) = mpsc::unbounded();
        // Replay and subscription under one lock: no change falls between.
        for (_, event) in state
            .history
            .iter()
            .filter(|(revision, event)| *revision > after && event_key(event).starts_with(prefix))
        {
            events
                .unbounded_send(Ok(event.clone()))
                .map_err(|e| StorageError::Internal(e.to_string()))?;
        }
        state.watchers.push(Watcher {
            prefix: prefix.to_string(),
            events,
        });
        Ok(stream.boxed())
    }

    async fn current_revision(&self) -> Result<i64> {
        Ok(self.state()?.revision)
    }

    async fn prefix_state(&self, prefix: &str, since: i64) -> Result<Option<PrefixState>> {
        let state = self.state()?;
        let current = state
            .keys
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, _)| state.current(key));
        let (mut keys, mut written_since) = (0, false);
        for stored in current {
            keys += 1;
            written_since |= stored.mod_revision > since;
        }
        Ok(Some(PrefixState {
            revision: state.revision,
            keys,
            written_since,
        }))
    }

    async fn check_health(&self) -> Result<()> {
        self.state().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(stored: &Stored) -> &str {
        std::str::from_utf8(&stored.value).unwrap()
    }

    #[tokio::test]
    async fn every_write_advances_one_global_revision() {
        let store = MemoryStorage::new();
        let a = store.create("/r/a", b"1".to_vec(), None).await.unwrap();
        let b = store.create("/r/b", b"1".to_vec(), None).await.unwrap();
        let a2 = store.update("/r/a", b"2".to_vec(), a, None).await.unwrap();
        let (_, deleted) = store.delete("/r/b", None).await.unwrap();
        assert_eq!((a, b, a2, deleted), (1, 2, 3, 4));
        let stored = store.get("/r/a").await.unwrap().unwrap();
        assert_eq!((stored.create_revision, stored.mod_revision), (1, 3));
        assert_eq!(store.current_revision().await.unwrap(), 4);
    }

    #[tokio::test]
    async fn writes_compare_the_mod_revision() {
        let store = MemoryStorage::new();
        let first = store.create("/r/a", b"1".to_vec(), None).await.unwrap();
        assert!(matches!(
            store.create("/r/a", b"x".to_vec(), None).await,
            Err(StorageError::AlreadyExists { .. })
        ));
        store
            .update("/r/a", b"2".to_vec(), first, None)
            .await
            .unwrap();
        assert!(matches!(
            store.update("/r/a", b"3".to_vec(), first, None).await,
            Err(StorageError::Conflict {
                expected: 1,
                actual: 2,
                ..
            })
        ));
        assert!(matches!(
            store.delete("/r/a", Some(first)).await,
            Err(StorageError::Conflict { .. })
        ));
        assert!(matches!(
            store.update("/r/b", b"1".to_vec(), 1, None).await,
            Err(StorageError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn a_list_reads_at_a_past_revision_in_pages() {
        let store = MemoryStorage::new();
        for key in ["/r/a", "/r/b", "/r/c", "/s/a"] {
            store.create(key, b"1".to_vec(), None).await.unwrap();
        }
        let at = store.current_revision().await.unwrap();
        store.delete("/r/b", None).await.unwrap();
        store.update("/r/a", b"2".to_vec(), 1, None).await.unwrap();
        let options = ListOptions {
            limit: Some(2),
            revision: Some(at),
            ..ListOptions::default()
        };
        let page = store.list("/r/", &options).await.unwrap();
        let keys: Vec<&str> = page.items.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["/r/a", "/r/b"]);
        assert_eq!(text(&page.items[0]), "1");
        assert!(page.more && page.remaining == 1 && page.revision == at);
        let next = ListOptions {
            start_after: Some("/r/b".into()),
            ..options
        };
        let page = store.list("/r/", &next).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(!page.more);
        let now = store.list("/r/", &ListOptions::default()).await.unwrap();
        assert_eq!(now.items.len(), 2);
    }

    #[tokio::test]
    async fn a_watch_replays_from_its_revision_then_follows() {
        let store = MemoryStorage::new();
        store.create("/r/a", b"1".to_vec(), None).await.unwrap();
        store.create("/s/a", b"1".to_vec(), None).await.unwrap();
        store.update("/r/a", b"2".to_vec(), 1, None).await.unwrap();
        let mut watch = store.watch("/r/", 1).await.unwrap();
        store.delete("/r/a", None).await.unwrap();
        let Some(Ok(WatchEvent::Put { current, previous })) = watch.next().await else {
            panic!("expected the update");
        };
        assert_eq!(
            (current.mod_revision, previous.as_deref()),
            (3, Some(&b"1"[..]))
        );
        let Some(Ok(WatchEvent::Delete { revision, .. })) = watch.next().await else {
            panic!("expected the delete");
        };
        assert_eq!(revision, 4);
    }

    #[tokio::test]
    async fn compacted_revisions_are_gone() {
        let store = MemoryStorage::new();
        store.create("/r/a", b"1".to_vec(), None).await.unwrap();
        store.update("/r/a", b"2".to_vec(), 1, None).await.unwrap();
        store.create("/r/b", b"1".to_vec(), None).await.unwrap();
        store.compact(3).unwrap();
        assert!(matches!(
            store.watch("/r/", 1).await,
            Err(StorageError::Compacted { compacted: 3, .. })
        ));
        let old = ListOptions {
            revision: Some(2),
            ..ListOptions::default()
        };
        assert!(matches!(
            store.list("/r/", &old).await,
            Err(StorageError::Compacted { .. })
        ));
        let kept = store.get("/r/a").await.unwrap().unwrap();
        assert_eq!((text(&kept), kept.mod_revision), ("2", 2));
        assert!(store.watch("/r/", 2).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_expire_at_a_revision_of_their_own() {
        let store = MemoryStorage::new();
        store
            .create("/r/event", b"1".to_vec(), Some(5))
            .await
            .unwrap();
        let lease = store
            .put_with_own_lease("/r/presence", b"1".to_vec(), 10)
            .await
            .unwrap();
        let mut watch = store.watch("/r/", 2).await.unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(store.keep_alive(lease).await.unwrap());
        assert!(store.get("/r/event").await.unwrap().is_none());
        assert!(matches!(
            watch.next().await,
            Some(Ok(WatchEvent::Delete { revision: 3, .. }))
        ));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(store.get("/r/presence").await.unwrap().is_some());
        store.revoke(lease).await.unwrap();
        assert!(store.get("/r/presence").await.unwrap().is_none());
        assert!(!store.keep_alive(lease).await.unwrap());
    }
}
