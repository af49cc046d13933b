//! One etcd watch per resource, shared by every client watch of it.
//!
//! Without it each `?watch=true` opened its own etcd watch and parsed every
//! change itself, so a thousand kubelets watching pods parsed each pod
//! change a thousand times. The cache watches the resource's prefix once,
//! parses each change once, keeps the recent ones (so watches resuming
//! from a recent resourceVersion replay from memory), and fans them out.
//!
//! A watch the cache cannot serve (its resourceVersion is older than the
//! history kept) falls back to a watch of its own on etcd, which answers
//! `410 Gone` if etcd compacted that revision: correctness never depends on
//! the cache. A subscriber that falls too far behind, or a cache whose etcd
//! watch broke, ends its subscribers' streams; clients then watch again
//! from the last resourceVersion they saw, as Kubernetes clients do.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::broadcast;
use tracing::{debug, warn};

use crate::storage::{Storage, WatchEvent as StorageEvent};

/// One change, parsed once.
#[derive(Debug)]
pub struct CachedEvent {
    /// The etcd key.
    pub key: String,
    /// The revision of the change.
    pub revision: i64,
    /// The object after the change (with its resourceVersion); `None` when
    /// the change deleted it.
    pub current: Option<Value>,
    /// The object before the change, if it existed.
    pub previous: Option<Value>,
}

struct History {
    /// Every change after this revision is in `events`.
    covered_from: i64,
    events: VecDeque<Arc<CachedEvent>>,
    sender: broadcast::Sender<Arc<CachedEvent>>,
}

/// The shared watch of one key prefix.
pub struct WatchCache {
    history: Mutex<History>,
    capacity: usize,
}

impl WatchCache {
    /// Starts watching `prefix` in the background, keeping the last
    /// `capacity` changes. The task ends when the cache is dropped.
    pub fn start(storage: Arc<dyn Storage>, prefix: String, capacity: usize) -> Arc<Self> {
        let (sender, _) = broadcast::channel(capacity.max(16));
        let cache = Arc::new(Self {
            history: Mutex::new(History {
                // Nothing is covered until the first etcd watch is up.
                covered_from: i64::MAX,
                events: VecDeque::new(),
                sender,
            }),
            capacity,
        });
        tokio::spawn(pump(Arc::downgrade(&cache), storage, prefix));
        cache
    }

    /// The changes under `key_prefix` after revision `after`: the kept ones
    /// first, then new ones as they come. `None` when the cache does not
    /// hold every change after `after` (the caller watches etcd instead).
    pub fn subscribe(
        &self,
        key_prefix: &str,
        after: i64,
    ) -> Option<BoxStream<'static, Arc<CachedEvent>>> {
        let history = self.history.lock().ok()?;
        if after < history.covered_from {
            return None;
        }
        let replay: Vec<Arc<CachedEvent>> = history
            .events
            .iter()
            .filter(|e| e.revision > after && e.key.starts_with(key_prefix))
            .cloned()
            .collect();
        // Subscribing under the lock: the pump appends and sends under it
        // too, so nothing falls between the replay and the live events.
        let receiver = history.sender.subscribe();
        drop(history);
        let prefix = key_prefix.to_string();
        let live = futures::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((event, receiver)),
                // Lagged: events were lost to this subscriber; Closed: the
                // cache restarted. Either way the stream ends and the client
                // watches again from what it last saw.
                Err(_) => None,
            }
        })
        .filter(move |e| {
            let keep = e.revision > after && e.key.starts_with(&prefix);
            async move { keep }
        });
        Some(futures::stream::iter(replay).chain(live).boxed())
    }

    fn record(&self, event: CachedEvent) {
        let Ok(mut history) = self.history.lock() else {
            return;
        };
        let event = Arc::new(event);
        history.events.push_back(event.clone());
        while history.events.len() > self.capacity {
            if let Some(dropped) = history.events.pop_front() {
                history.covered_from = dropped.revision;
            }
        }
        // No receiver is fine: nobody is watching right now.
        let _ = history.sender.send(event);
    }

    /// Starts over after a gap: history from `revision` on, and every
    /// current subscriber's stream ended.
    fn reset(&self, revision: i64) {
        if let Ok(mut history) = self.history.lock() {
            history.events.clear();
            history.covered_from = revision;
            let (sender, _) = broadcast::channel(self.capacity.max(16));
            history.sender = sender;
        }
    }
}

fn parse(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

/// A storage change, parsed (the object's resourceVersion filled in).
pub fn cached(event: StorageEvent) -> Option<CachedEvent> {
    Some(match event {
        StorageEvent::Put { current, previous } => {
            let mut object = parse(&current.value)?;
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert(
                    "resourceVersion".into(),
                    Value::String(current.mod_revision.to_string()),
                );
            }
            CachedEvent {
                key: current.key,
                revision: current.mod_revision,
                current: Some(object),
                previous: previous.as_deref().and_then(parse),
            }
        }
        StorageEvent::Delete {
            key,
            revision,
            previous,
        } => CachedEvent {
            key,
            revision,
            current: None,
            previous: previous.as_deref().and_then(parse),
        },
    })
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
        let mut changes = match storage.watch(&prefix, start).await {
            Ok(changes) => changes,
            Err(e) => {
                debug!(%prefix, error = %e, "watch cache cannot watch yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        delay = Duration::from_millis(100);
        match cache.upgrade() {
            Some(cache) => cache.reset(start),
            None => return,
        }
        while let Some(change) = changes.next().await {
            let Some(cache) = cache.upgrade() else {
                return;
            };
            match change {
                Ok(change) => {
                    if let Some(event) = cached(change) {
                        cache.record(event);
                    }
                }
                Err(e) => {
                    warn!(%prefix, error = %e, "watch cache lost its etcd watch; restarting");
                    break;
                }
            }
        }
        // The stream ended or failed: start over (resetting subscribers,
        // who may have missed changes in between).
        tokio::time::sleep(delay).await;
    }
}
