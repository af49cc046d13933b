//! One etcd watch per resource, shared by every client watch of it.
//!
//! Without it each `?watch=true` opened its own etcd watch and parsed every
//! change itself, so a thousand kubelets watching pods parsed each pod
//! change a thousand times. The cache watches the resource's prefix once,
//! parses each change at most once (when a watcher first needs it: with
//! nobody watching, a write costs the cache no parsing), keeps the recent ones (so watches resuming
//! from a recent resourceVersion replay from memory), and fans them out.
//!
//! A watch the cache cannot serve (its resourceVersion is older than the
//! history kept) falls back to a watch of its own on etcd, which answers
//! `410 Gone` if etcd compacted that revision: correctness never depends on
//! the cache. A subscriber that falls too far behind, or a cache whose etcd
//! watch broke, ends its subscribers' streams; clients then watch again
//! from the last resourceVersion they saw, as Kubernetes clients do.
//!
//! The cache also holds every key of the prefix as etcd holds it at the
//! cache's revision (listed when its watch starts, then kept up by the
//! watch; deleted keys removed), as raw bytes: about what etcd holds.
//! Lists are served from it ([`WatchCache::snapshot`] for
//! `resourceVersion=0` and watches from now, as Kubernetes' cacher serves
//! them; [`WatchCache::consistent_snapshot`] for a list that must be
//! current, once etcd confirms that nothing under the prefix changed since
//! the cache's revision), so a list of 30,000 pods no longer reads 50 MB
//! from etcd. Writers use [`WatchCache::latest`] as their first guess of
//! the current object, as Kubernetes' cacher does for `GuaranteedUpdate`:
//! the write compares the key's `mod_revision` in its etcd transaction, so
//! a stale guess costs a retry from a real read, never a lost update. It
//! saves the etcd read every bind and status update did first.
//!
//! Every subscriber has a channel of its own. A resource may have an
//! [`Index`] (pods: `spec.nodeName`): a watch whose field selector pins that
//! field is only handed the changes whose object had or has that value, as
//! Kubernetes' watch cache does with its trigger functions. Without it each
//! pod change woke every kubelet's watch: with a thousand nodes, a thousand
//! task wake-ups and selector checks per change, which bounded the whole
//! cluster's pod write rate.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::storage::{ListOptions, Storage, StorageError, Stored, WatchEvent as StorageEvent};

/// Changes applied to the cache at once: at most what one etcd watch answer
/// holds in practice (etcd's `--max-txn-ops` is 128 per revision).
const BATCH: usize = 1024;

/// How long a list that must be current waits for the cache's watch to
/// bring changes etcd says were made, before reading etcd instead.
const CATCH_UP: Duration = Duration::from_secs(1);

/// One change, kept as etcd sent it and parsed on first use.
#[derive(Debug)]
pub struct CachedEvent {
    /// The etcd key.
    pub key: String,
    /// The revision of the change.
    pub revision: i64,
    /// The value after the change; `None` when the change deleted the key.
    stored: Option<Arc<Stored>>,
    /// The value before the change, if the key existed.
    previous_bytes: Option<Vec<u8>>,
    /// The field the subscribers are fanned out by, if any.
    index: Option<Index>,
    parsed: OnceLock<Parsed>,
    glimpse: OnceLock<Option<Glimpse>>,
    /// `current` as JSON, encoded for the first v1 JSON watcher and shared
    /// by the others.
    encoded: OnceLock<Option<bytes::Bytes>>,
}

/// What a change shows without being parsed into a tree: for the value
/// before and the value after it (`None` where the key did not exist), its
/// index field's value ("" without an index). Enough for the watchers that
/// select nothing or select by the index field alone, which in a cluster
/// are nearly all of them (every kubelet, the scheduler, the controller
/// manager): a pod change then costs the apiserver no tree, where it cost
/// two (before and after) and an encoding of one.
#[derive(Debug)]
pub struct Glimpse {
    /// The index value before the change.
    pub previous: Option<String>,
    /// The index value after the change.
    pub current: Option<String>,
}

#[derive(Debug)]
struct Parsed {
    current: Option<Arc<Value>>,
    previous: Option<Value>,
}
/// A field whose value picks the subscribers a change is handed to.
#[derive(Clone, Copy)]
pub struct Index {
    /// The field selector's name for it (`spec.nodeName`).
    pub field: &'static str,
    /// Its value in an object ("" when unset, as field selectors see it).
    pub value_of: fn(&Value) -> String,
    /// The same, read from the object's JSON without building a tree;
    /// `None` when that cannot tell (not JSON, the field not a string or
    /// null), and [`Index::value_of`] decides.
    pub value_in: fn(&[u8]) -> Option<String>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("field", &self.field).finish()
    }
}

/// What [`Index::POD_NODE`] reads of a pod's JSON; every other field is
/// skipped over, not kept.
#[derive(serde::Deserialize)]
struct PodNode<'a> {
    #[serde(borrow, default)]
    spec: Option<PodNodeSpec<'a>>,
}

#[derive(serde::Deserialize)]
struct PodNodeSpec<'a> {
    #[serde(borrow, default, rename = "nodeName")]
    node_name: Option<std::borrow::Cow<'a, str>>,
}

impl Index {
    /// Pods by the node they are bound to: each kubelet watches
    /// `spec.nodeName=<its node>`, the scheduler `spec.nodeName=`.
    pub const POD_NODE: Index = Index {
        field: "spec.nodeName",
        value_of: |pod| {
            pod.pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        },
        value_in: |json| {
            let pod: PodNode<'_> = serde_json::from_slice(json).ok()?;
            Some(
                pod.spec
                    .and_then(|spec| spec.node_name)
                    .unwrap_or_default()
                    .into_owned(),
            )
        },
    };
}

/// An object with no field read: whether a value is a JSON object, for a
/// resource without an index.
#[derive(serde::Deserialize)]
struct AnyObject {}

type Subscriber = mpsc::Sender<Arc<CachedEvent>>;

/// Who gets the changes: everyone, or only changes of one index value.
#[derive(Default)]
struct Subscribers {
    all: Vec<Subscriber>,
    by_value: HashMap<String, Vec<Subscriber>>,
}

impl Subscribers {
    /// Drops the channels whose watch has ended. Sending finds them too, but
    /// a node whose pods never change would keep every watch its kubelet
    /// ever opened.
    fn forget_closed(&mut self) {
        self.all.retain(|s| !s.is_closed());
        self.by_value.retain(|_, list| {
            list.retain(|s| !s.is_closed());
            !list.is_empty()
        });
    }

    /// Hands `event` on; a subscriber whose channel is full (it fell behind)
    /// or closed (its client left) is dropped, which ends its stream.
    fn send(&mut self, event: &Arc<CachedEvent>, values: &[String]) {
        let deliver = |list: &mut Vec<Subscriber>| {
            list.retain(|s| s.try_send(event.clone()).is_ok());
        };
        deliver(&mut self.all);
        for (i, value) in values.iter().enumerate() {
            if values[..i].contains(value) {
                continue;
            }
            if let Some(list) = self.by_value.get_mut(value) {
                deliver(list);
                if list.is_empty() {
                    self.by_value.remove(value);
                }
            }
        }
    }
}

struct History {
    /// Every change after this revision is in `events`.
    covered_from: i64,
    events: VecDeque<Arc<CachedEvent>>,
    subscribers: Subscribers,
    /// Every key under the prefix with its value at `revision`, once the
    /// watch's first list is in (`complete`): raw bytes, about what etcd
    /// holds.
    objects: BTreeMap<String, Arc<Stored>>,
    /// Every change up to this revision is applied to `objects`.
    revision: i64,
    /// Whether `objects` holds the whole prefix (false until the list that
    /// starts each watch is in).
    complete: bool,
}

/// The shared watch of one key prefix.
pub struct WatchCache {
    history: Mutex<History>,
    capacity: usize,
    index: Option<Index>,
    /// Whether the etcd watch is up (false before it starts and while it
    /// restarts): `/readyz`'s `informer-sync`.
    watching: std::sync::atomic::AtomicBool,
    /// The revision the cache is current to, for lists waiting on it.
    advanced: tokio::sync::watch::Sender<i64>,
}

impl WatchCache {
    /// Starts watching `prefix` in the background, keeping the last
    /// `capacity` changes, fanning them out by `index` if given. The task
    /// ends when the cache is dropped.
    pub fn start(
        storage: Arc<dyn Storage>,
        prefix: String,
        capacity: usize,
        index: Option<Index>,
    ) -> Arc<Self> {
        let cache = Arc::new(Self {
            history: Mutex::new(History {
                // Nothing is covered until the first etcd watch is up.
                covered_from: i64::MAX,
                events: VecDeque::new(),
                subscribers: Subscribers::default(),
                objects: BTreeMap::new(),
                revision: 0,
                complete: false,
            }),
            capacity,
            index,
            watching: std::sync::atomic::AtomicBool::new(false),
            advanced: tokio::sync::watch::Sender::new(0),
        });
        tokio::spawn(pump(Arc::downgrade(&cache), storage, prefix));
        cache
    }

    /// Whether the cache follows etcd now: its watch is up.
    pub fn is_synced(&self) -> bool {
        self.watching.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The index field, if this cache has one.
    pub fn index_field(&self) -> Option<&'static str> {
        self.index.map(|i| i.field)
    }

    /// The index, if this cache has one.
    pub fn index(&self) -> Option<Index> {
        self.index
    }

    /// The changes under `key_prefix` after revision `after`: the kept ones
    /// first, then new ones as they come. With `index_value`, only changes
    /// whose object had or has that value of the index field (the caller's
    /// selector pins it, so it would drop the others anyway). `None` when
    /// the cache does not hold every change after `after` (the caller
    /// watches etcd instead).
    pub fn subscribe(
        &self,
        key_prefix: &str,
        after: i64,
        index_value: Option<&str>,
    ) -> Option<BoxStream<'static, Arc<CachedEvent>>> {
        let mut history = self.history.lock().ok()?;
        if after < history.covered_from {
            return None;
        }
        let index = self.index.filter(|_| index_value.is_some());
        let replay: Vec<Arc<CachedEvent>> = history
            .events
            .iter()
            .filter(|e| e.revision > after && e.key.starts_with(key_prefix))
            .filter(|e| match (index, index_value) {
                (Some(index), Some(value)) => e.index_values(index).iter().any(|v| v == value),
                _ => true,
            })
            .cloned()
            .collect();
        // Subscribing under the lock: the pump appends and sends under it
        // too, so nothing falls between the replay and the live events.
        let (sender, receiver) = mpsc::channel(self.capacity.max(16));
        history.subscribers.forget_closed();
        match (index, index_value) {
            (Some(_), Some(value)) => history
                .subscribers
                .by_value
                .entry(value.to_owned())
                .or_default()
                .push(sender),
            _ => history.subscribers.all.push(sender),
        }
        drop(history);
        let prefix = key_prefix.to_string();
        // The channel closes when this subscriber fell behind (events were
        // lost to it) or the cache restarted: either way the stream ends and
        // the client watches again from what it last saw.
        let live = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (event, receiver))
        })
        .filter(move |e| {
            let keep = e.revision > after && e.key.starts_with(&prefix);
            async move { keep }
        });
        Some(futures::stream::iter(replay).chain(live).boxed())
    }

    /// The value `key` had at the cache's revision, if it existed. It may
    /// already be stale: a guess for writers whose transaction compares
    /// the revision, never an answer to a read.
    pub fn latest(&self, key: &str) -> Option<Arc<Stored>> {
        self.history.lock().ok()?.objects.get(key).cloned()
    }

    /// The values under `key_prefix` at the cache's revision, in key order,
    /// with that revision; `None` while the cache does not hold the whole
    /// prefix (its watch is starting over). What Kubernetes' cacher answers
    /// a list at `resourceVersion=0` with: possibly a little behind etcd.
    pub fn snapshot(&self, key_prefix: &str) -> Option<(i64, Vec<Arc<Stored>>)> {
        let history = self.history.lock().ok()?;
        if !history.complete {
            return None;
        }
        let items = history
            .objects
            .range::<str, _>((
                std::ops::Bound::Included(key_prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(key_prefix))
            .map(|(_, stored)| stored.clone())
            .collect();
        Some((history.revision, items))
    }

    /// The values under `key_prefix` as etcd holds them now, with the
    /// revision they are current at: the cache's snapshot once etcd says
    /// (in one small read: [`Storage::prefix_state`]) that no key under the
    /// prefix was written since the cache's revision and that it holds as
    /// many keys. When something was, the cache waits (at most
    /// `CATCH_UP`) for its watch to bring it and checks again. `None`
    /// when that cannot be shown: the caller reads etcd.
    ///
    /// # Errors
    ///
    /// The store's, from its read.
    pub async fn consistent_snapshot(
        &self,
        storage: &dyn Storage,
        key_prefix: &str,
    ) -> Result<Option<(i64, Vec<Arc<Stored>>)>, StorageError> {
        for _ in 0..3 {
            let Some((revision, items)) = self.snapshot(key_prefix) else {
                return Ok(None);
            };
            let Some(state) = storage.prefix_state(key_prefix, revision).await? else {
                return Ok(None);
            };
            if !state.written_since && state.keys == items.len() as i64 {
                // Nothing changed under the prefix up to `state.revision`.
                return Ok(Some((state.revision.max(revision), items)));
            }
            let mut advanced = self.advanced.subscribe();
            let caught_up = tokio::time::timeout(
                CATCH_UP,
                advanced.wait_for(|current| *current >= state.revision),
            )
            .await;
            if !matches!(caught_up, Ok(Ok(_))) {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Applies changes that came together: an etcd watch answer holds whole
    /// revisions, so once a batch is applied the cache is current to its
    /// last revision (to the one before when the batch was cut at
    /// `BATCH`, which may have split a revision).
    fn record_all(&self, events: Vec<CachedEvent>) {
        let cut = events.len() >= BATCH;
        let Some(last) = events.last().map(|e| e.revision) else {
            return;
        };
        let Ok(mut history) = self.history.lock() else {
            return;
        };
        for event in events {
            self.record_locked(&mut history, event);
        }
        let current = if cut { last - 1 } else { last };
        history.revision = history.revision.max(current);
        let current = history.revision;
        drop(history);
        self.advanced.send_replace(current);
    }

    #[cfg(test)]
    fn record(&self, event: CachedEvent) {
        self.record_all(vec![event]);
    }

    fn record_locked(&self, history: &mut History, event: CachedEvent) {
        match &event.stored {
            Some(stored) => {
                history.objects.insert(event.key.clone(), stored.clone());
            }
            None => {
                history.objects.remove(&event.key);
            }
        }
        let event = Arc::new(event);
        history.events.push_back(event.clone());
        while history.events.len() > self.capacity {
            if let Some(dropped) = history.events.pop_front() {
                history.covered_from = dropped.revision;
            }
        }
        // Only watches pinned to an index value need the values (and so
        // the parse) here; the others parse in their own task.
        let values = match self.index {
            Some(index) if !history.subscribers.by_value.is_empty() => event.index_values(index),
            _ => Vec::new(),
        };
        history.subscribers.send(&event, &values);
    }

    /// Starts over after a gap: history from `revision` on, the prefix as
    /// listed at `revision`, and every current subscriber's stream ended.
    fn reset(&self, revision: i64, listed: Vec<Stored>) {
        if let Ok(mut history) = self.history.lock() {
            history.events.clear();
            history.covered_from = revision;
            history.subscribers = Subscribers::default();
            history.objects = listed
                .into_iter()
                .map(|stored| (stored.key.clone(), Arc::new(stored)))
                .collect();
            history.revision = revision;
            history.complete = true;
        }
        self.advanced.send_replace(revision);
    }
}

impl CachedEvent {
    /// A storage change, not parsed yet, of a resource fanned out by
    /// `index` if given.
    pub fn new(change: StorageEvent, index: Option<Index>) -> Self {
        let (key, revision, stored, previous_bytes) = match change {
            StorageEvent::Put { current, previous } => (
                current.key.clone(),
                current.mod_revision,
                Some(Arc::new(current)),
                previous,
            ),
            StorageEvent::Delete {
                key,
                revision,
                previous,
            } => (key, revision, None, previous),
        };
        Self {
            key,
            revision,
            stored,
            previous_bytes,
            index,
            parsed: OnceLock::new(),
            glimpse: OnceLock::new(),
            encoded: OnceLock::new(),
        }
    }

    /// The change's [`Glimpse`]; `None` when a value is not what the
    /// apiserver stores (a JSON object whose index field reads as a
    /// string): the caller parses instead, which decides such cases.
    pub fn glimpse(&self) -> Option<&Glimpse> {
        self.glimpse
            .get_or_init(|| {
                let read = |json: &[u8]| match self.index {
                    Some(index) => (index.value_in)(json),
                    None => serde_json::from_slice::<AnyObject>(json)
                        .ok()
                        .map(|_| String::new()),
                };
                let previous = match &self.previous_bytes {
                    Some(json) => Some(read(json)?),
                    None => None,
                };
                let current = match &self.stored {
                    Some(stored) => Some(read(&stored.value)?),
                    None => None,
                };
                Some(Glimpse { previous, current })
            })
            .as_ref()
    }

    /// The object before the change as a v1 JSON client gets it (with the
    /// change's resourceVersion, as a `DELETED` event shows it), without a
    /// tree; `None` when the splice cannot tell (the caller parses).
    pub fn previous_json(&self) -> Option<bytes::Bytes> {
        let previous = self.previous_bytes.as_deref()?;
        super::encoded_list::with_resource_version(previous, self.revision).map(bytes::Bytes::from)
    }

    /// The field its [`Glimpse`] reads, if any: a change read from etcd
    /// outside a cache has none, and its glimpse tells nothing of a field.
    pub fn index_field(&self) -> Option<&'static str> {
        self.index.map(|index| index.field)
    }

    /// Whether the change deleted the key.
    pub fn is_delete(&self) -> bool {
        self.stored.is_none()
    }

    /// Whether the change was parsed into trees.
    #[cfg(test)]
    pub fn is_parsed(&self) -> bool {
        self.parsed.get().is_some()
    }

    /// The object after the change, with its resourceVersion; `None` when
    /// the change deleted it or the stored value is not JSON.
    pub fn current(&self) -> Option<&Value> {
        self.parsed().current.as_deref()
    }

    /// [`Self::current`], to share rather than copy.
    pub fn current_shared(&self) -> Option<&Arc<Value>> {
        self.parsed().current.as_ref()
    }

    /// [`Self::current`] encoded as JSON, once for every watcher: the
    /// stored bytes with the resourceVersion written in, or (when they are
    /// not what the apiserver stores) the parsed tree encoded.
    pub fn current_json(&self) -> Option<bytes::Bytes> {
        self.encoded
            .get_or_init(|| {
                let stored = self.stored.as_ref()?;
                if let Some(json) =
                    super::encoded_list::with_resource_version(&stored.value, stored.mod_revision)
                {
                    return Some(bytes::Bytes::from(json));
                }
                let object = self.current()?;
                serde_json::to_vec(object).ok().map(bytes::Bytes::from)
            })
            .clone()
    }

    /// The object before the change, if it existed (and is JSON).
    pub fn previous(&self) -> Option<&Value> {
        self.parsed().previous.as_ref()
    }

    fn parsed(&self) -> &Parsed {
        self.parsed.get_or_init(|| {
            let parse = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).ok();
            let current = self.stored.as_ref().and_then(|stored| {
                let mut object = parse(&stored.value)?;
                super::store::set_resource_version(&mut object, stored.mod_revision);
                Some(Arc::new(object))
            });
            Parsed {
                current,
                previous: self.previous_bytes.as_deref().and_then(parse),
            }
        })
    }

    /// The index field's values before and after the change.
    fn index_values(&self, index: Index) -> Vec<String> {
        if let Some(glimpse) = self.glimpse() {
            return [&glimpse.previous, &glimpse.current]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
        }
        [self.previous(), self.current()]
            .into_iter()
            .flatten()
            .map(index.value_of)
            .collect()
    }
}

/// Keeps one etcd watch of `prefix` running for as long as the cache lives.
async fn pump(cache: std::sync::Weak<WatchCache>, storage: Arc<dyn Storage>, prefix: String) {
    let mut delay = Duration::from_millis(100);
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        let start = match storage.current_revision().await {
            Ok(revision) => revision,
            Err(e) => {
                debug!(%prefix, error = %e, "watch cache waiting for storage");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let changes = match storage.watch(&prefix, start).await {
            Ok(changes) => changes,
            Err(e) => {
                debug!(%prefix, error = %e, "watch cache cannot watch yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // The prefix as it is at `start`, read in pages (at that revision)
        // while the watch's first changes wait in its stream.
        let listed = ListOptions {
            revision: Some(start),
            ..ListOptions::default()
        };
        let listed = match storage.list(&prefix, &listed).await {
            Ok(page) => page.items,
            Err(e) => {
                debug!(%prefix, error = %e, "watch cache cannot list yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        delay = Duration::from_millis(100);
        match cache.upgrade() {
            Some(cache) => {
                cache.reset(start, listed);
                cache
                    .watching
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            None => return,
        }
        // What is ready is applied at once: an etcd answer's changes come
        // together, so the cache's revision never stands in the middle of one.
        let mut batches = changes.ready_chunks(BATCH);
        'watch: while let Some(batch) = batches.next().await {
            let Some(cache) = cache.upgrade() else {
                return;
            };
            let mut events = Vec::with_capacity(batch.len());
            let mut failed = None;
            for change in batch {
                match change {
                    Ok(change) => events.push(CachedEvent::new(change, cache.index)),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            cache.record_all(events);
            if let Some(e) = failed {
                warn!(%prefix, error = %e, "watch cache lost its etcd watch; restarting");
                break 'watch;
            }
        }
        // The stream ended or failed: start over (resetting subscribers,
        // who may have missed changes in between).
        if let Some(cache) = cache.upgrade() {
            cache
                .watching
                .store(false, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut history) = cache.history.lock() {
                history.complete = false;
            }
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// A cache with no etcd behind it, not listed yet.
    fn cache(index: Option<Index>) -> WatchCache {
        WatchCache {
            history: Mutex::new(History {
                covered_from: 1,
                events: VecDeque::new(),
                subscribers: Subscribers::default(),
                objects: BTreeMap::new(),
                revision: 0,
                complete: false,
            }),
            capacity: 10,
            index,
            watching: std::sync::atomic::AtomicBool::new(true),
            advanced: tokio::sync::watch::Sender::new(0),
        }
    }

    fn event(node_before: Option<&str>, node_after: Option<&str>) -> Arc<CachedEvent> {
        let pod = |node: &str| {
            serde_json::to_vec(&serde_json::json!({"spec": {"nodeName": node}})).unwrap_or_default()
        };
        let key = "/registry/pods/default/p".to_string();
        let previous = node_before.map(pod);
        Arc::new(CachedEvent::new(
            match node_after {
                Some(node) => StorageEvent::Put {
                    current: Stored {
                        key,
                        value: pod(node),
                        mod_revision: 2,
                        create_revision: 1,
                    },
                    previous,
                },
                None => StorageEvent::Delete {
                    key,
                    revision: 2,
                    previous,
                },
            },
            Some(Index::POD_NODE),
        ))
    }

    #[test]
    fn a_change_reaches_the_watches_of_its_old_and_new_node_and_the_unindexed_ones() {
        let mut subscribers = Subscribers::default();
        let (all, mut all_rx) = mpsc::channel(4);
        let (a, mut a_rx) = mpsc::channel(4);
        let (b, mut b_rx) = mpsc::channel(4);
        let (unbound, mut unbound_rx) = mpsc::channel(4);
        subscribers.all.push(all);
        subscribers.by_value.entry("a".into()).or_default().push(a);
        subscribers.by_value.entry("b".into()).or_default().push(b);
        subscribers
            .by_value
            .entry(String::new())
            .or_default()
            .push(unbound);
        // Binding: the unscheduled watch and node a's see it; node b's not.
        let binding = event(Some(""), Some("a"));
        let values = binding.index_values(Index::POD_NODE);
        subscribers.send(&binding, &values);
        assert!(all_rx.try_recv().is_ok());
        assert!(a_rx.try_recv().is_ok());
        assert!(unbound_rx.try_recv().is_ok());
        assert!(b_rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn changes_are_parsed_only_once_a_watch_needs_them() {
        let cache = cache(Some(Index::POD_NODE));
        cache.reset(1, Vec::new());
        let binding = event(Some(""), Some("a"));
        let unwatched = CachedEvent::new(
            StorageEvent::Put {
                current: binding.stored.as_deref().cloned().expect("a put"),
                previous: binding.previous_bytes.clone(),
            },
            Some(Index::POD_NODE),
        );
        cache.record(unwatched);
        let recorded = cache.history.lock().expect("lock").events[0].clone();
        assert!(
            recorded.parsed.get().is_none(),
            "parsed with nobody watching"
        );
        assert!(cache.latest("/registry/pods/default/p").is_some());

        // A node's watch replays it, picked by its index values, which
        // are read without parsing it; it is parsed once something asks
        // for its tree.
        let mut for_a = cache
            .subscribe("/registry/pods/", 1, Some("a"))
            .expect("covered");
        let replayed = for_a.next().await.expect("replayed");
        assert!(!recorded.is_parsed(), "parsed to pick its watchers");
        assert_eq!(
            replayed.current().and_then(|p| p.pointer("/spec/nodeName")),
            Some(&Value::from("a"))
        );
        assert!(recorded.parsed.get().is_some());
        assert!(cache
            .subscribe("/registry/pods/", 1, Some("b"))
            .expect("covered")
            .next()
            .now_or_never()
            .is_none());
    }

    #[test]
    fn a_change_is_encoded_once_for_all_its_watchers_with_its_resource_version() {
        let event = CachedEvent::new(
            StorageEvent::Put {
                current: Stored {
                    key: "/registry/pods/default/p".to_string(),
                    value: br#"{"metadata":{"name":"p"}}"#.to_vec(),
                    mod_revision: 7,
                    create_revision: 7,
                },
                previous: None,
            },
            None,
        );
        let first = event.current_json().expect("a JSON object");
        let second = event.current_json().expect("a JSON object");
        assert_eq!(first.as_ptr(), second.as_ptr(), "encoded twice");
        assert!(!event.is_parsed(), "written from the stored bytes");
        let object: Value = serde_json::from_slice(&first).expect("JSON");
        assert_eq!(
            object.pointer("/metadata/resourceVersion"),
            Some(&Value::from("7"))
        );
        assert_eq!(Some(&object), event.current());
    }

    #[test]
    fn snapshots_hold_every_key_of_a_prefix_at_a_whole_revision() {
        let put = |key: &str, revision: i64| {
            CachedEvent::new(
                StorageEvent::Put {
                    current: Stored {
                        key: key.to_string(),
                        value: b"{}".to_vec(),
                        mod_revision: revision,
                        create_revision: revision,
                    },
                    previous: None,
                },
                None,
            )
        };
        let cache = cache(None);
        assert!(
            cache.snapshot("/registry/pods/").is_none(),
            "not listed yet"
        );
        let listed = |key: &str| Stored {
            key: key.to_string(),
            value: b"{}".to_vec(),
            mod_revision: 3,
            create_revision: 3,
        };
        cache.reset(
            5,
            vec![listed("/registry/pods/a/x"), listed("/registry/pods/b/y")],
        );
        cache.record_all(vec![
            put("/registry/pods/a/z", 6),
            put("/registry/pods/ab/w", 6),
        ]);
        cache.record_all(vec![CachedEvent::new(
            StorageEvent::Delete {
                key: "/registry/pods/b/y".into(),
                revision: 7,
                previous: None,
            },
            None,
        )]);
        let (revision, items) = cache.snapshot("/registry/pods/a/").expect("listed");
        assert_eq!(revision, 7);
        let keys: Vec<&str> = items.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["/registry/pods/a/x", "/registry/pods/a/z"]);
        assert_eq!(
            cache.snapshot("/registry/pods/").expect("listed").1.len(),
            3
        );
        // A batch cut at its limit may end inside a revision: the cache
        // claims only the revision before its last.
        let full: Vec<CachedEvent> = (0..BATCH)
            .map(|i| put(&format!("/registry/pods/c/{i}"), 8 + (i / 100) as i64))
            .collect();
        let last = 8 + ((BATCH - 1) / 100) as i64;
        cache.record_all(full);
        assert_eq!(
            cache.snapshot("/registry/pods/c/").expect("listed").0,
            last - 1
        );
    }

    #[test]
    fn ended_watches_are_forgotten_even_when_their_node_never_changes() {
        let mut subscribers = Subscribers::default();
        for _ in 0..3 {
            let (sender, receiver) = mpsc::channel(4);
            subscribers
                .by_value
                .entry("quiet".into())
                .or_default()
                .push(sender);
            drop(receiver);
        }
        let (live, _live_rx) = mpsc::channel(4);
        subscribers
            .by_value
            .entry("busy".into())
            .or_default()
            .push(live);
        subscribers.forget_closed();
        assert!(!subscribers.by_value.contains_key("quiet"));
        assert_eq!(subscribers.by_value["busy"].len(), 1);
    }
}
