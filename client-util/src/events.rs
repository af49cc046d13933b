//! Events about objects, posted off the caller's path.
//!
//! [`Recorder::record`] never waits: events go to a bounded queue that a
//! task of their own drains into the apiserver. When the apiserver lags
//! far enough behind that the queue is full, the event is dropped and
//! counted ([`Recorder::dropped`]), as client-go's broadcaster drops past
//! its 1,000 queued events: events are advisory, and an unbounded queue
//! would turn a slow apiserver into memory growth, a blocking one into a
//! slower caller (the scheduler binds ~1,400 pods/s).
//!
//! Before posting, the task correlates events as client-go's
//! `tools/record/events_cache.go` does ([`Correlator`]): a spam filter per
//! source and object drops what exceeds a token bucket; events differing
//! only in message are combined into one aggregate event once there are
//! many; and an event seen again is not a new object but a merge patch of
//! the one stored (`count`, `lastTimestamp`, `series`). Without it a pod's
//! life wrote an Event object per occurrence, every one of them kept by
//! etcd for the event TTL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSeries, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;

/// Queued events a recorder holds by default (client-go's
/// `maxQueuedEvents`).
pub const DEFAULT_QUEUE: usize = 1000;

/// Entries each correlation cache keeps at most (client-go's
/// `maxLruCacheEntries`): the least recently used is forgotten first, so
/// memory is bounded however many objects the events are about.
pub const CACHE_ENTRIES: usize = 4096;
/// Distinct messages for one source, object, type and reason within
/// [`AGGREGATE_WINDOW_SECONDS`] before they are combined (client-go's
/// `defaultAggregateMaxEvents`): the first nine are posted as they are, the
/// tenth and later become one aggregate event.
pub const AGGREGATE_MAX_EVENTS: usize = 10;
/// How long distinct messages count toward aggregation (client-go's
/// `defaultAggregateIntervalInSeconds`).
pub const AGGREGATE_WINDOW_SECONDS: i64 = 600;
/// Events per source and object the spam filter lets through at once
/// (client-go's `defaultSpamBurst`).
pub const SPAM_BURST: f64 = 25.0;
/// Seconds for the spam filter to earn back one event (client-go's
/// `defaultSpamQPS` of 1/300).
pub const SPAM_REFILL_SECONDS: f64 = 300.0;
/// What the message of an aggregate event starts with (client-go's).
pub const AGGREGATE_PREFIX: &str = "(combined from similar events): ";

/// Why an event could not be posted. Events are advisory: the poster logs
/// these and goes on.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The apiserver refused or did not answer the create.
    #[error("creating event {name}: {source}")]
    Create {
        /// The event's name.
        name: String,
        /// What the client said.
        source: kube::Error,
    },
    /// The apiserver refused or did not answer the patch.
    #[error("patching event {name}: {source}")]
    Patch {
        /// The event's name.
        name: String,
        /// What the client said.
        source: kube::Error,
    },
}

/// What happened to recorded events, counted since the recorder was made.
#[derive(Clone, Debug, Default)]
struct Counts {
    /// Dropped because the queue was full.
    queue_full: Arc<AtomicU64>,
    /// Dropped by the spam filter.
    spam: Arc<AtomicU64>,
    /// Posted as a patch of an event already stored.
    patched: Arc<AtomicU64>,
    /// Posted as a new Event object.
    created: Arc<AtomicU64>,
}

/// Queues events for posting. Cloning shares the queue and the counts.
#[derive(Clone, Debug)]
pub struct Recorder {
    queue: tokio::sync::mpsc::Sender<Event>,
    counts: Counts,
}

impl Recorder {
    /// A recorder holding up to `capacity` events, and the future that
    /// correlates and posts them, `in_flight` at a time (spawn it). The
    /// future ends when every clone of the recorder is gone and the queue
    /// is drained. A failed post is logged at debug and not retried.
    pub fn new(
        client: Client,
        capacity: usize,
        in_flight: usize,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        let counts = Counts::default();
        let recorder = Self {
            queue,
            counts: counts.clone(),
        };
        let mut correlator = Correlator::new(CACHE_ENTRIES);
        let spam = counts.spam.clone();
        // Correlation runs in order, one event at a time, before the posts
        // (which may overlap): it is all in memory, and its state must see
        // every event in the order recorded.
        let post = tokio_stream::wrappers::ReceiverStream::new(rx)
            .filter_map(move |event| {
                let decided = correlator.correlate(event, jiff::Timestamp::now());
                if decided.is_none() {
                    let spam = spam.fetch_add(1, Ordering::Relaxed) + 1;
                    if spam % 1000 == 1 {
                        tracing::warn!(spam, "event spam filter: dropping events");
                    }
                }
                futures::future::ready(decided)
            })
            .for_each_concurrent(in_flight.max(1), move |post| {
                let (client, counts) = (client.clone(), counts.clone());
                async move {
                    if let Err(error) = send(client, post, &counts).await {
                        tracing::debug!(%error, "posting event");
                    }
                }
            });
        (recorder, post)
    }

    /// Queues `event`; drops (and counts) it when the queue is full or the
    /// poster has stopped.
    pub fn record(&self, event: Event) {
        if self.queue.try_send(event).is_err() {
            let dropped = self.counts.queue_full.fetch_add(1, Ordering::Relaxed) + 1;
            // One line per thousand, not one per event: a full queue means
            // the apiserver is already struggling.
            if dropped % 1000 == 1 {
                tracing::warn!(dropped, "event queue full: dropping events");
            }
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counts.queue_full.load(Ordering::Relaxed)
    }

    /// Events dropped so far by the spam filter.
    pub fn filtered(&self) -> u64 {
        self.counts.spam.load(Ordering::Relaxed)
    }

    /// Events posted so far as new Event objects, and as patches of
    /// stored ones (attempts: a failed post counts too).
    pub fn posted(&self) -> (u64, u64) {
        (
            self.counts.created.load(Ordering::Relaxed),
            self.counts.patched.load(Ordering::Relaxed),
        )
    }
}

/// What the correlator decided to send for one recorded event.
#[derive(Clone, Debug, PartialEq)]
pub enum Post {
    /// A new Event object.
    Create(Event),
    /// A repeat of a stored event: patch it to this (same name, the count
    /// so far, the latest timestamp and message).
    Patch(Event),
}

/// The merge patch of a repeated event (client-go's v1 recorder patches
/// these three; `series` as the events.k8s.io API keeps it).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RepeatPatch<'a> {
    count: Option<i32>,
    last_timestamp: Option<&'a Time>,
    message: Option<&'a str>,
    series: Option<&'a EventSeries>,
}

async fn send(client: Client, post: Post, counts: &Counts) -> Result<(), EventError> {
    let (event, patch) = match post {
        Post::Create(event) => (event, false),
        Post::Patch(event) => (event, true),
    };
    let ns = event.metadata.namespace.clone().unwrap_or_default();
    let name = event.metadata.name.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client, &ns);
    let create = |api: Api<Event>, event: Event| async move {
        counts.created.fetch_add(1, Ordering::Relaxed);
        api.create(&PostParams::default(), &event).await
    };
    if patch {
        counts.patched.fetch_add(1, Ordering::Relaxed);
        let body = RepeatPatch {
            count: event.count,
            last_timestamp: event.last_timestamp.as_ref(),
            message: event.message.as_deref(),
            series: event.series.as_ref(),
        };
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => return Ok(()),
            // Expired (its TTL passed) or never stored (its create failed):
            // store it whole, count and all, as client-go does.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(EventError::Patch { name, source }),
        }
    }
    match create(api, event).await {
        Ok(_) => Ok(()),
        Err(source) => Err(EventError::Create { name, source }),
    }
}

/// A map of at most `capacity` entries that forgets the least recently
/// used one first.
#[derive(Debug)]
struct Lru<K, V> {
    capacity: usize,
    tick: u64,
    entries: HashMap<K, (V, u64)>,
    by_use: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            tick: 0,
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
        }
    }

    /// The entry for `key`, made by `make` if absent; marks it used.
    fn entry(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, used)) = self.entries.get(key) {
            self.by_use.remove(used);
        } else if self.entries.len() >= self.capacity {
            if let Some((_, oldest)) = self.by_use.pop_first() {
                self.entries.remove(&oldest);
            }
        }
        self.by_use.insert(tick, key.clone());
        let slot = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| (make(), tick));
        slot.1 = tick;
        &mut slot.0
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Forgets every entry `keep` says no to.
    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let by_use = &mut self.by_use;
        self.entries.retain(|_, (value, used)| {
            let kept = keep(value);
            if !kept {
                by_use.remove(used);
            }
            kept
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A token bucket with time passed in (seconds since the epoch as f64):
/// `burst` tokens, one more every `refill` seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: f64,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(now: f64) -> Self {
        Self {
            tokens: SPAM_BURST,
            at: now,
        }
    }

    /// Whether the bucket has earned back every token by `now`: then it
    /// is no different from a new one and may be forgotten.
    pub fn full_at(&self, now: f64) -> bool {
        self.tokens + (now - self.at).max(0.0) / SPAM_REFILL_SECONDS >= SPAM_BURST
    }

    /// Takes a token at `now` if there is one.
    pub fn take(&mut self, now: f64) -> bool {
        let earned = (now - self.at).max(0.0) / SPAM_REFILL_SECONDS;
        self.tokens = (self.tokens + earned).min(SPAM_BURST);
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The parts of an event the spam filter tells sources and objects by
/// (client-go's `getSpamKey`).
pub fn spam_key(event: &Event) -> String {
    let source = event.source.clone().unwrap_or_default();
    let o = &event.involved_object;
    join(&[
        source.component.as_deref(),
        source.host.as_deref(),
        o.kind.as_deref(),
        o.namespace.as_deref(),
        o.name.as_deref(),
        o.uid.as_deref(),
        o.api_version.as_deref(),
    ])
}

/// The parts that make events "similar" (client-go's
/// `EventAggregatorByReasonFunc`): everything but the message.
pub fn aggregate_key(event: &Event) -> String {
    let o = &event.involved_object;
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        spam_key(event),
        join(&[o.field_path.as_deref()]),
        join(&[event.type_.as_deref()]),
        join(&[event.reason.as_deref()]),
    )
}

/// The parts that make events the same (client-go's `getEventKey`): the
/// similar ones' and the message.
pub fn event_key(event: &Event) -> String {
    format!(
        "{}\u{0}{}",
        aggregate_key(event),
        event.message.as_deref().unwrap_or_default()
    )
}

/// Joined with NUL, which no field holds, so that two different tuples
/// never make one key (client-go joins with "", where they can).
fn join(parts: &[Option<&str>]) -> String {
    parts
        .iter()
        .map(|p| p.unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\u{0}")
}

/// Distinct messages seen for one aggregate key, and when last.
#[derive(Debug, Default)]
struct Similar {
    messages: HashSet<String>,
    last: i64,
}

/// The stored event an event key was last posted as.
#[derive(Clone, Debug)]
struct Seen {
    name: String,
    count: i32,
    first: Option<Time>,
    /// When it was last observed (seconds).
    last: i64,
}

/// Client-go's `EventCorrelator`: spam filter, aggregation, then
/// deduplication, each cache bounded ([`CACHE_ENTRIES`]). Pure: time is
/// an argument.
#[derive(Debug)]
pub struct Correlator {
    buckets: Lru<String, Bucket>,
    similar: Lru<String, Similar>,
    seen: Lru<String, Seen>,
    /// When [`Correlator::forget_idle`] last ran (seconds).
    swept: i64,
}

impl Correlator {
    /// A correlator whose caches keep `entries` keys each.
    pub fn new(entries: usize) -> Self {
        Self {
            buckets: Lru::new(entries),
            similar: Lru::new(entries),
            seen: Lru::new(entries),
            swept: 0,
        }
    }

    /// Forgets what no longer changes an answer, at most once a minute:
    /// spam buckets that are full again, and similar-event and seen-event
    /// entries idle for the aggregation window. client-go keeps all three
    /// until its LRU bound pushes them out, so a recorder's memory grows
    /// with every object it ever saw until 4,096 of each; here it follows
    /// the recent events (a component's RSS stays flat under steady
    /// churn). The one difference: an event recurring after ten quiet
    /// minutes is posted as a new Event rather than counted on the old one.
    fn forget_idle(&mut self, now: jiff::Timestamp) {
        let seconds = now.as_second();
        if seconds - self.swept < 60 {
            return;
        }
        self.swept = seconds;
        let precise = now.as_millisecond() as f64 / 1000.0;
        self.buckets.retain(|bucket| !bucket.full_at(precise));
        self.similar
            .retain(|similar| seconds - similar.last <= AGGREGATE_WINDOW_SECONDS);
        self.seen
            .retain(|seen| seconds - seen.last <= AGGREGATE_WINDOW_SECONDS);
    }

    /// What to post for `event` recorded at `now`, or `None` when the spam
    /// filter drops it.
    pub fn correlate(&mut self, event: Event, now: jiff::Timestamp) -> Option<Post> {
        self.forget_idle(now);
        let seconds = now.as_millisecond() as f64 / 1000.0;
        if !self
            .buckets
            .entry(&spam_key(&event), || Bucket::full(seconds))
            .take(seconds)
        {
            return None;
        }
        let (event, key) = self.aggregate(event, now);
        Some(self.observe(event, key, now))
    }

    /// The event as it is, keyed by [`event_key`]; or, from the
    /// [`AGGREGATE_MAX_EVENTS`]th distinct message within the window on,
    /// an aggregate event keyed by [`aggregate_key`], so that all the
    /// later ones patch one object.
    fn aggregate(&mut self, event: Event, now: jiff::Timestamp) -> (Event, String) {
        let key = aggregate_key(&event);
        let seconds = now.as_second();
        let similar = self.similar.entry(&key, Similar::default);
        if seconds - similar.last > AGGREGATE_WINDOW_SECONDS {
            similar.messages.clear();
        }
        similar.last = seconds;
        let message = event.message.clone().unwrap_or_default();
        similar.messages.insert(message.clone());
        if similar.messages.len() < AGGREGATE_MAX_EVENTS {
            let key = event_key(&event);
            return (event, key);
        }
        // Keep the set bounded: one message out for each one in, as
        // client-go does (the set only decides "many or not").
        if let Some(any) = similar.messages.iter().find(|m| **m != message).cloned() {
            similar.messages.remove(&any);
        }
        let mut combined = event;
        combined.message = Some(format!("{AGGREGATE_PREFIX}{message}"));
        (combined, key)
    }

    /// A create the first time `key` is seen; a patch of the stored event
    /// (its name, first timestamp, count plus one) after.
    fn observe(&mut self, mut event: Event, key: String, now: jiff::Timestamp) -> Post {
        let fresh = Seen {
            name: event.metadata.name.clone().unwrap_or_default(),
            count: event.count.unwrap_or(1),
            first: event.first_timestamp.clone(),
            last: now.as_second(),
        };
        let repeat = self.seen.get(&key).is_some();
        let seen = self.seen.entry(&key, || fresh);
        seen.last = now.as_second();
        if !repeat {
            return Post::Create(event);
        }
        seen.count += 1;
        event.metadata.name = Some(seen.name.clone());
        event.count = Some(seen.count);
        event.first_timestamp = seen.first.clone();
        event.last_timestamp = Some(Time(now));
        event.series = Some(EventSeries {
            count: Some(seen.count),
            last_observed_time: Some(MicroTime(now)),
        });
        Post::Patch(event)
    }

    /// Keys held in the largest cache (for tests of the bound).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.buckets
            .len()
            .max(self.similar.len())
            .max(self.seen.len())
    }
}

/// A reference to `pod` as events carry it (`involvedObject`): kind,
/// apiVersion, namespace, name, and the uid and resourceVersion the caller
/// saw, as Kubernetes' `GetReference` fills them; `field_path` names a part
/// of it (`spec.containers{name}`).
pub fn pod_reference(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    pod_reference_of(&pod.metadata, field_path)
}

/// [`pod_reference`] from a pod's metadata alone (for a cache that keeps
/// pods in a type of its own).
pub fn pod_reference_of(metadata: &ObjectMeta, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        api_version: Some("v1".into()),
        namespace: Some(
            metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        ),
        name: metadata.name.clone(),
        uid: metadata.uid.clone(),
        resource_version: metadata.resource_version.clone(),
        field_path,
    }
}

/// A new core/v1 Event about `object` in its namespace, named as
/// Kubernetes names them (`{name}.{nanoseconds in hex}`), count 1, first
/// and last seen now. `source.component` is also the
/// `reportingComponent`, `source.host` the `reportingInstance`.
pub fn event(
    object: ObjectReference,
    source: EventSource,
    type_: &str,
    reason: &str,
    message: String,
) -> Event {
    let now = jiff::Timestamp::now();
    let name = object.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: object.namespace.clone(),
            ..ObjectMeta::default()
        },
        involved_object: object,
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        reporting_component: source.component.clone(),
        reporting_instance: source.host.clone(),
        source: Some(source),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_pod_as_kubernetes_does() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"}
        }))
        .unwrap();
        let source = EventSource {
            component: Some("default-scheduler".into()),
            host: None,
        };
        let e = event(
            pod_reference(&pod, None),
            source,
            "Normal",
            "Scheduled",
            "Successfully assigned ns/web to n1".into(),
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
        assert!(e.metadata.name.unwrap().starts_with("web."));
        let o = &e.involved_object;
        assert_eq!(
            (
                o.kind.as_deref(),
                o.uid.as_deref(),
                o.resource_version.as_deref()
            ),
            (Some("Pod"), Some("u-1"), Some("7"))
        );
        assert_eq!(e.reporting_component.as_deref(), Some("default-scheduler"));
        assert_eq!(e.count, Some(1));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // A client that is never reached: the poster future is not run.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let (recorder, _poster) = Recorder::new(client, 2, 1);
        let e = || Event::default();
        for _ in 0..5 {
            recorder.record(e());
        }
        assert_eq!(recorder.dropped(), 3);
    }

    fn occurrence(object: &str, reason: &str, message: &str) -> Event {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": object, "namespace": "ns", "uid": format!("u-{object}")}
        }))
        .unwrap();
        let source = EventSource {
            component: Some("kubelet".into()),
            host: Some("n1".into()),
        };
        event(
            pod_reference(&pod, None),
            source,
            "Normal",
            reason,
            message.into(),
        )
    }

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn keys_tell_same_similar_and_other_events_apart() {
        let a = occurrence("web", "Pulled", "image a");
        let cases = [
            // (other event, same event key, same aggregate key, same spam key)
            (occurrence("web", "Pulled", "image a"), true, true, true),
            (occurrence("web", "Pulled", "image b"), false, true, true),
            (occurrence("web", "Started", "image a"), false, false, true),
            (occurrence("db", "Pulled", "image a"), false, false, false),
        ];
        for (b, same, similar, spam) in cases {
            assert_eq!(event_key(&a) == event_key(&b), same, "{b:?}");
            assert_eq!(aggregate_key(&a) == aggregate_key(&b), similar, "{b:?}");
            assert_eq!(spam_key(&a) == spam_key(&b), spam, "{b:?}");
        }
        // Fields are kept apart: "ab"+"c" is not "a"+"bc".
        let mut x = occurrence("web", "ab", "c");
        let mut y = occurrence("web", "a", "bc");
        x.type_ = None;
        y.type_ = None;
        assert_ne!(event_key(&x), event_key(&y));
    }

    #[test]
    fn the_spam_bucket_lets_25_through_then_one_per_five_minutes() {
        // (seconds since the burst, tokens taken then, how many succeed)
        let cases = [
            (0.0, 30, 25),
            (299.0, 1, 0),
            (300.0, 1, 1),
            (300.0, 1, 0),
            (3000.0, 30, 9),
        ];
        let mut bucket = Bucket::full(0.0);
        for (now, tries, ok) in cases {
            let got = (0..tries).filter(|_| bucket.take(now)).count();
            assert_eq!(got, ok, "at {now}");
        }
        // A clock going back earns nothing.
        let mut bucket = Bucket::full(100.0);
        for _ in 0..25 {
            bucket.take(100.0);
        }
        assert!(!bucket.take(50.0));
        assert!(!bucket.take(100.0));
    }

    #[test]
    fn a_repeated_event_patches_the_first_with_its_count() {
        let mut c = Correlator::new(CACHE_ENTRIES);
        let first = c.correlate(occurrence("web", "BackOff", "back-off"), at(0));
        let Some(Post::Create(created)) = first else {
            panic!("first is not a create: {first:?}");
        };
        for n in 2..=20 {
            match c.correlate(occurrence("web", "BackOff", "back-off"), at(n)) {
                Some(Post::Patch(e)) => {
                    assert_eq!(e.metadata.name, created.metadata.name);
                    assert_eq!(e.count, Some(n as i32));
                    assert_eq!(e.first_timestamp, created.first_timestamp);
                    assert_eq!(e.last_timestamp, Some(Time(at(n))));
                    let series = e.series.unwrap();
                    assert_eq!(series.count, Some(n as i32));
                }
                other => panic!("occurrence {n}: {other:?}"),
            }
        }
        // Another object's event is its own.
        let other = c.correlate(occurrence("db", "BackOff", "back-off"), at(21));
        assert!(matches!(other, Some(Post::Create(_))));
    }

    #[test]
    fn distinct_messages_aggregate_from_the_tenth_within_ten_minutes() {
        // (seconds, message index) → posted as: create / patch, aggregate?
        let mut c = Correlator::new(CACHE_ENTRIES);
        let mut posts = Vec::new();
        for i in 0..30 {
            posts.push(c.correlate(occurrence("web", "Failed", &format!("m{i}")), at(i)));
        }
        // The spam filter (25 per object) has the last five, as in client-go.
        assert!(posts[25..].iter().all(Option::is_none), "{posts:?}");
        let kinds: Vec<(bool, bool)> = posts[..25]
            .iter()
            .flatten()
            .map(|p| match p {
                Post::Create(e) => (
                    true,
                    e.message
                        .as_deref()
                        .unwrap_or("")
                        .starts_with(AGGREGATE_PREFIX),
                ),
                Post::Patch(e) => (
                    false,
                    e.message
                        .as_deref()
                        .unwrap_or("")
                        .starts_with(AGGREGATE_PREFIX),
                ),
            })
            .collect();
        // Nine as they are, one aggregate created, fifteen patches of it.
        assert_eq!(kinds.len(), 25);
        assert!(kinds[..9].iter().all(|k| *k == (true, false)), "{kinds:?}");
        assert_eq!(kinds[9], (true, true));
        assert!(kinds[10..].iter().all(|k| *k == (false, true)), "{kinds:?}");
        let Some(Post::Patch(last)) = &posts[24] else {
            panic!("{:?}", posts[24]);
        };
        assert_eq!(
            last.message.as_deref(),
            Some("(combined from similar events): m24")
        );
        assert_eq!(last.count, Some(16));
        // The bucket refilled (a fresh correlator) and ten minutes of quiet:
        // counting starts again.
        let mut c = Correlator::new(CACHE_ENTRIES);
        for i in 0..12 {
            c.correlate(occurrence("web", "Failed", &format!("m{i}")), at(i));
        }
        // Ten minutes of quiet: counting starts again.
        let later = c.correlate(occurrence("web", "Failed", "m-late"), at(11 + 601));
        assert!(
            matches!(&later, Some(Post::Create(e)) if e.message.as_deref() == Some("m-late")),
            "{later:?}"
        );
    }

    #[test]
    fn the_spam_filter_cuts_a_burst_at_25_per_object() {
        let mut c = Correlator::new(CACHE_ENTRIES);
        let through = (0..40)
            .filter(|i| {
                c.correlate(occurrence("web", "R", &format!("{i}")), at(0))
                    .is_some()
            })
            .count();
        assert_eq!(through, 25);
        // Another object has a bucket of its own.
        assert!(c.correlate(occurrence("db", "R", "x"), at(0)).is_some());
        // Five minutes later, one more.
        assert!(c.correlate(occurrence("web", "R", "y"), at(300)).is_some());
        assert!(c.correlate(occurrence("web", "R", "z"), at(300)).is_none());
    }

    #[test]
    fn idle_entries_are_forgotten_once_they_change_no_answer() {
        let mut c = Correlator::new(CACHE_ENTRIES);
        // One event each for 50 pods, then 2 more for p0 (3 tokens taken).
        for i in 0..50 {
            c.correlate(occurrence(&format!("p{i}"), "R", "m"), at(0));
        }
        c.correlate(occurrence("p0", "R", "m"), at(1));
        c.correlate(occurrence("p0", "R", "m"), at(2));
        assert_eq!(c.entries(), 50);
        // 301 s on, the pods with one token taken are full again; p0 is
        // not (3 taken), and its seen entry keeps counting its repeats.
        assert!(matches!(
            c.correlate(occurrence("p0", "R", "m"), at(302)),
            Some(Post::Patch(_))
        ));
        assert_eq!(c.buckets.len(), 1);
        // Past the aggregation window, everything idle goes: memory follows
        // recent events, not every object ever seen.
        c.correlate(occurrence("new", "R", "m"), at(2000));
        assert_eq!(c.entries(), 1);
        // A recurrence after the window is a new event.
        assert!(matches!(
            c.correlate(occurrence("p0", "R", "m"), at(2001)),
            Some(Post::Create(_))
        ));
    }

    #[test]
    fn caches_stay_bounded_and_forget_the_least_recently_used() {
        let mut c = Correlator::new(8);
        for i in 0..100 {
            c.correlate(occurrence(&format!("p{i}"), "R", "m"), at(0));
        }
        assert_eq!(c.entries(), 8);
        let mut lru = Lru::new(2);
        *lru.entry(&"a", || 0) += 1;
        *lru.entry(&"b", || 0) += 1;
        *lru.entry(&"a", || 0) += 1; // a is now the most recent
        *lru.entry(&"c", || 0) += 1; // b goes
        assert_eq!(
            (lru.get(&"a"), lru.get(&"b"), lru.get(&"c")),
            (Some(&2), None, Some(&1))
        );
    }
}
