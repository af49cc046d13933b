//! Events about objects, posted off the caller's path.
//!
//! [`Recorder::record`] never waits: events go to a bounded queue that a
//! task of their own drains into the apiserver. When the apiserver lags
//! far enough behind that the queue is full, the event is dropped and
//! counted ([`Recorder::dropped`]), as client-go's broadcaster drops past
//! its 1,000 queued events: events are advisory, and an unbounded queue
//! would turn a slow apiserver into memory growth, a blocking one into a
//! slower caller (the scheduler binds ~1,400 pods/s).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::Client;

/// Queued events a recorder holds by default (client-go's
/// `maxQueuedEvents`).
pub const DEFAULT_QUEUE: usize = 1000;

/// Queues events for posting. Cloning shares the queue and the count.
#[derive(Clone, Debug)]
pub struct Recorder {
    queue: tokio::sync::mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// A recorder holding up to `capacity` events, and the future that
    /// posts them, `in_flight` at a time (spawn it). The future ends when
    /// every clone of the recorder is gone and the queue is drained. A
    /// failed post is logged at debug and not retried.
    pub fn new(
        client: Client,
        capacity: usize,
        in_flight: usize,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        let recorder = Self {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let post = tokio_stream::wrappers::ReceiverStream::new(rx).for_each_concurrent(
            in_flight.max(1),
            move |event| {
                let client = client.clone();
                async move { post(client, event).await }
            },
        );
        (recorder, post)
    }

    /// Queues `event`; drops (and counts) it when the queue is full or the
    /// poster has stopped.
    pub fn record(&self, event: Event) {
        if self.queue.try_send(event).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // One line per thousand, not one per event: a full queue means
            // the apiserver is already struggling.
            if dropped % 1000 == 1 {
                tracing::warn!(dropped, "event queue full: dropping events");
            }
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn post(client: Client, event: Event) {
    let ns = event.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client, &ns);
    if let Err(error) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(%error, reason = ?event.reason, "posting event");
    }
}

/// A reference to `pod` as events carry it (`involvedObject`): kind,
/// apiVersion, namespace, name, and the uid and resourceVersion the caller
/// saw, as Kubernetes' `GetReference` fills them; `field_path` names a part
/// of it (`spec.containers{name}`).
pub fn pod_reference(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        api_version: Some("v1".into()),
        namespace: Some(
            pod.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        ),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
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
}
