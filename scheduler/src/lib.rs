//! The scheduler: binds every pod without `spec.nodeName` to a node.
//!
//! Pipeline: three reflector stores (unscheduled pods, bound pods, nodes)
//! plus services (for spreading), each fed by one `kube::runtime` watcher.
//! Any change (or a resync tick) starts a round: the pending pods are placed
//! one after another on an in-memory snapshot of the nodes, in which every
//! placement — including the bindings this scheduler has sent but not yet
//! seen come back through the watch ("assumed" pods) — already counts, so no
//! node is ever promised more than it holds. Then the round's bindings go
//! out concurrently through `pods/{name}/binding`. A pod that fits nowhere
//! gets `PodScheduled=False` (reason `Unschedulable`) and a
//! `FailedScheduling` event, written only when the explanation changes; it
//! is tried again in every later round, so node or pod changes free it.
//!
//! Each successful binding gets a `Scheduled` event ("Successfully assigned
//! ns/pod to node"), queued on a [`client_util::events::Recorder`] and
//! posted by a task of its own, as many at a time as bindings, so events
//! never hold a binding slot; when
//! the apiserver falls behind even so, the bounded queue drops them
//! (counted).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod algorithm;
pub mod cached_pod;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use client_util::events::{self, Recorder};
use client_util::{reflect, reflect_with, Reflected, StopFlag};
use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Event, EventSource, Node, Pod, Service};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::algorithm::{Demand, NodeInfo, Placement};
use crate::cached_pod::CachedPod;

/// The name pods ask for in `spec.schedulerName` to be placed by us.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// What stops the scheduler from starting. Not retryable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cache's watch task ended before its first list finished.
    #[error("the {0} cache closed before it was ready")]
    CacheClosed(&'static str),
}

/// Tunables.
#[derive(Clone, Debug)]
pub struct Config {
    /// A round runs at least this often even without changes.
    pub resync: Duration,
    /// Bindings in flight at once.
    pub bind_concurrency: usize,
    /// How long a binding this scheduler sent keeps counting against its node
    /// while the watch has not shown the pod bound (or gone).
    pub assume_ttl: Duration,
    /// True while the caches of a running term have their first lists:
    /// the `informer-sync` health check (`LeaderHealth::informer_sync_check`).
    pub caches_synced: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(30),
            bind_concurrency: 128,
            assume_ttl: Duration::from_secs(30),
            caches_synced: std::sync::Arc::default(),
        }
    }
}

/// A pod this scheduler bound (or is binding) but the bound-pod cache has
/// not shown yet.
#[derive(Clone, Debug)]
struct Assumed {
    uid: String,
    node: String,
    demand: Demand,
    groups: Vec<String>,
    since: Instant,
}

struct Caches {
    nodes: Reflected<Node>,
    pending: Reflected<CachedPod>,
    bound: Reflected<CachedPod>,
    services: Reflected<Service>,
}

/// Runs the scheduler until `shutdown` resolves.
///
/// # Errors
///
/// [`Error::CacheClosed`] if a cache could not start. API errors while
/// running are logged and retried in later rounds.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let stop = StopFlag::new(shutdown);
    // Pods and nodes are kept lean (what the filters, scores and events
    // read: pods in a type of their own, cached_pod; nodes trimmed by
    // client_util::lean): at 10,000 pods the whole objects cost more than
    // the apiserver's own cache (#19 item 4).
    let caches = Caches {
        nodes: reflect_with(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            stop.clone(),
            client_util::lean::node,
        ),
        pending: reflect(
            Api::<CachedPod>::all(client.clone()),
            watcher::Config::default().fields("spec.nodeName="),
            stop.clone(),
        ),
        bound: reflect(
            Api::<CachedPod>::all(client.clone()),
            watcher::Config::default().fields("spec.nodeName!="),
            stop.clone(),
        ),
        services: reflect(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            stop.clone(),
        ),
    };
    tokio::select! {
        () = stop.stopped() => return Ok(()),
        ready = wait_ready(&caches) => ready?,
    }
    tracing::info!("scheduler caches ready");
    let synced = SyncedWhileAlive::new(config.caches_synced.clone());
    let (recorder, poster) = event_recorder(client.clone(), &config);
    let poster = AbortOnDrop(tokio::spawn(poster));
    let mut scheduler = Scheduler {
        client,
        config,
        assumed: HashMap::new(),
        reported: HashMap::new(),
        recorder,
        next_start_node: 0,
    };
    let mut node_changes = caches.nodes.changes.clone();
    let mut pending_changes = caches.pending.changes.clone();
    let mut bound_changes = caches.bound.changes.clone();
    let mut service_changes = caches.services.changes.clone();
    loop {
        if stop.is_stopped() {
            break;
        }
        scheduler.round(&caches).await;
        let resync = tokio::time::sleep(scheduler.config.resync);
        tokio::select! {
            () = stop.stopped() => break,
            () = resync => {}
            _ = node_changes.changed() => {}
            _ = pending_changes.changed() => {}
            _ = bound_changes.changed() => {}
            _ = service_changes.changed() => {}
        }
    }
    let dropped = scheduler.recorder.dropped();
    if dropped > 0 {
        tracing::info!(dropped, "events dropped while the apiserver lagged");
    }
    drop(poster);
    drop(synced);
    tracing::info!("scheduler stopped");
    Ok(())
}

/// Raises the caches' synced flag for as long as it lives (a term).
struct SyncedWhileAlive(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl SyncedWhileAlive {
    fn new(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
        Self(flag)
    }
}

impl Drop for SyncedWhileAlive {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Stops the event poster with the scheduler (what is still queued is lost,
/// as in Kubernetes).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The scheduler's event recorder and the future that posts its events
/// (spawn it), as many at a time as bindings (`bind_concurrency`): every
/// binding makes one `Scheduled` event, and each costs the apiserver about
/// what a binding does.
///
/// One at a time (client-go's sink is sequential) kept up with about 14
/// events a second in the density benchmark, where the apiserver answers a
/// write in ~70 ms, against 300-1,400 bindings a second: the queue filled
/// and dropped 95% of the `Scheduled` events (issue #19: 451 stored for
/// 10,000 pods), which `kubectl describe pod` then lacked; 16 at a time
/// still dropped 61%. Kubernetes writes one per pod.
fn event_recorder(
    client: Client,
    config: &Config,
) -> (Recorder, impl Future<Output = ()> + Send + 'static) {
    Recorder::new(
        client,
        events::DEFAULT_QUEUE,
        config.bind_concurrency.max(1),
    )
}

/// Who the scheduler's events say posted them.
fn source() -> EventSource {
    EventSource {
        component: Some(SCHEDULER_NAME.into()),
        host: None,
    }
}

/// Kubernetes' event for a binding: reason `Scheduled`, in its words.
fn scheduled_event(pod: &CachedPod, node: &str) -> Event {
    let (ns, name) = pod.ns_and_name();
    let mut event = events::event(
        pod.reference(),
        source(),
        "Normal",
        "Scheduled",
        format!("Successfully assigned {ns}/{name} to {node}"),
    );
    event.action = Some("Binding".into());
    event
}

async fn wait_ready(c: &Caches) -> Result<(), Error> {
    c.nodes
        .store
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheClosed("node"))?;
    c.pending
        .store
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheClosed("unscheduled pod"))?;
    c.bound
        .store
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheClosed("bound pod"))?;
    c.services
        .store
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheClosed("service"))?;
    Ok(())
}

fn key(pod: &CachedPod) -> String {
    let (ns, name) = pod.ns_and_name();
    format!("{ns}/{name}")
}

/// The spreading groups that services make: each service with a selector
/// is the group of the pods it selects, in its namespace.
struct ServiceGroups<'s> {
    /// Namespace, selector and group name of each service with a selector.
    services: Vec<(&'s str, &'s BTreeMap<String, String>, String)>,
}

impl<'s> ServiceGroups<'s> {
    fn new(services: &'s [Arc<Service>]) -> Self {
        let services = services
            .iter()
            .filter_map(|svc| {
                let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
                let selector = svc.spec.as_ref()?.selector.as_ref()?;
                let group = format!("service:{ns}/{}", svc.name_any());
                (!selector.is_empty()).then_some((ns, selector, group))
            })
            .collect();
        Self { services }
    }

    /// The groups of the services in `namespace` whose selector `label`
    /// (a pod's labels) matches.
    fn of<'a, 'l>(
        &'a self,
        namespace: &'a str,
        label: impl Fn(&str) -> Option<&'l str> + 'a,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.services
            .iter()
            .filter(move |(ns, selector, _)| {
                *ns == namespace && selector.iter().all(|(k, v)| label(k) == Some(v.as_str()))
            })
            .map(|(_, _, group)| group.as_str())
    }
}

/// The spreading groups of a pod: its controllers and the services
/// selecting it.
fn groups<'a>(
    pod: &'a CachedPod,
    services: &'a ServiceGroups<'_>,
) -> impl Iterator<Item = &'a str> {
    let owners = pod.owner_groups().iter().map(String::as_str);
    owners.chain(services.of(pod.ns_and_name().0, |k| pod.label(k)))
}

struct Scheduler {
    client: Client,
    config: Config,
    assumed: HashMap<String, Assumed>,
    /// The last unschedulable message written per pod key (with the uid).
    reported: HashMap<String, (String, String)>,
    /// `Scheduled` and `FailedScheduling` events.
    recorder: Recorder,
    /// Where the next pod's search for a node starts (`algorithm::place`).
    next_start_node: usize,
}

enum Outcome {
    Bound,
    AlreadyBound,
    Failed,
}

impl Scheduler {
    /// One scheduling round over every pending pod.
    async fn round(&mut self, c: &Caches) {
        let now = Instant::now();
        let services = c.services.store.state();
        let services = ServiceGroups::new(&services);
        let bound = c.bound.store.state();
        // Borrowed from the snapshot: a round allocates nothing per bound
        // pod for this.
        let bound_uids: HashMap<(&str, &str), &str> =
            bound.iter().map(|p| (p.ns_and_name(), p.uid())).collect();
        let ttl = self.config.assume_ttl;
        self.assumed.retain(|k, a| {
            let ns_name = k.split_once('/').unwrap_or(("", k));
            bound_uids.get(&ns_name) != Some(&a.uid.as_str()) && now.duration_since(a.since) < ttl
        });

        let mut nodes: Vec<NodeInfo> = c
            .nodes
            .store
            .state()
            .iter()
            .map(|n| NodeInfo::from_node(n))
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let index: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        for pod in &bound {
            if pod.finished() {
                continue;
            }
            if let Some(&i) = index.get(pod.node_name()) {
                nodes[i].add_pod(pod.demand(), groups(pod, &services));
            }
        }
        for a in self.assumed.values() {
            if let Some(&i) = index.get(&a.node) {
                nodes[i].add(&a.demand, &a.groups);
            }
        }

        let mut pending: Vec<Arc<CachedPod>> = c
            .pending
            .store
            .state()
            .into_iter()
            .filter(|p| {
                !p.deleting()
                    && !p.finished()
                    && p.node_name().is_empty()
                    && p.scheduler_name().is_none_or(|n| n == SCHEDULER_NAME)
                    && !self.assumed.contains_key(&key(p))
                    // The two pod watches are not in step: a pod the bound
                    // cache already shows may still be in the pending one.
                    && bound_uids.get(&p.ns_and_name()).copied() != Some(p.uid())
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        // Creation times are to the second, so most comparisons would tie
        // and format both keys: each key is made once instead.
        pending.sort_by_cached_key(|p| (p.created().map(|t| t.0), key(p)));

        // Placing is lazy: the stream places the next pod when a binding
        // slot frees up, so the first bindings go out at once instead of
        // after every pending pod has been placed, and each placement still
        // sees every earlier one (in flight or done) on `nodes`.
        let mut unschedulable = Vec::new();
        let client = &self.client;
        let recorder = &self.recorder;
        let assumed = &mut self.assumed;
        let next_start = &mut self.next_start_node;
        let placed = stream::iter(pending).filter_map(|pod| {
            let demand = pod.demand();
            let g: Vec<String> = groups(&pod, &services).map(str::to_owned).collect();
            let placement = algorithm::place(&nodes, demand, pod.node_selector(), &g, next_start);
            let binding = match placement {
                Placement::Node(i) => {
                    nodes[i].add(demand, &g);
                    let node = nodes[i].name.clone();
                    assumed.insert(
                        key(&pod),
                        Assumed {
                            uid: pod.uid().to_owned(),
                            node: node.clone(),
                            demand: demand.clone(),
                            groups: g,
                            since: now,
                        },
                    );
                    Some((pod, node))
                }
                Placement::Unschedulable(message) => {
                    unschedulable.push((pod, message));
                    None
                }
            };
            futures::future::ready(binding)
        });
        let results: Vec<(String, Outcome)> = placed
            .map(|(pod, node)| async move {
                let outcome = bind(client, &pod, &node).await;
                // Only a binding this scheduler made is announced: a 409
                // means another one (or an earlier round) bound it.
                if matches!(outcome, Outcome::Bound) {
                    recorder.record(scheduled_event(&pod, &node));
                }
                (key(&pod), outcome)
            })
            .buffer_unordered(self.config.bind_concurrency.max(1))
            .collect()
            .await;
        for (k, outcome) in results {
            match outcome {
                Outcome::Bound | Outcome::AlreadyBound => {
                    self.reported.remove(&k);
                }
                Outcome::Failed => {
                    self.assumed.remove(&k);
                }
            }
        }
        for (pod, message) in unschedulable {
            self.report_unschedulable(&pod, &message).await;
        }
        let live: std::collections::HashSet<String> =
            c.pending.store.state().iter().map(|p| key(p)).collect();
        self.reported.retain(|k, _| live.contains(k));
    }

    /// Writes `PodScheduled=False` and a `FailedScheduling` event, unless
    /// the pod already says exactly this.
    async fn report_unschedulable(&mut self, pod: &CachedPod, message: &str) {
        let k = key(pod);
        let uid = pod.uid().to_owned();
        if self.reported.get(&k) == Some(&(uid.clone(), message.to_string())) {
            return;
        }
        if pod.unschedulable_message() == Some(message) {
            self.reported.insert(k, (uid, message.to_string()));
            return;
        }
        tracing::info!(pod = %k, %message, "unschedulable");
        let (ns, name) = pod.ns_and_name();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let now = jiff::Timestamp::now().to_string();
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": now,
        }]}});
        if let Err(error) = pods
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            tracing::warn!(pod = %k, %error, "writing the PodScheduled condition");
            return;
        }
        self.recorder.record(events::event(
            pod.reference(),
            source(),
            "Warning",
            "FailedScheduling",
            message.to_string(),
        ));
        self.reported.insert(k, (uid, message.to_string()));
    }
}

async fn bind(client: &Client, pod: &CachedPod, node: &str) -> Outcome {
    let (ns, name) = pod.ns_and_name();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": Some(pod.uid()).filter(|u| !u.is_empty())},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    match pods
        .create_subresource::<_, serde_json::Value>(
            "binding",
            name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => {
            tracing::debug!(pod = %format!("{ns}/{name}"), %node, "bound");
            Outcome::Bound
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Outcome::AlreadyBound,
        Err(error) => {
            tracing::warn!(pod = %format!("{ns}/{name}"), %node, %error, "binding failed");
            Outcome::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    fn pod(i: usize) -> CachedPod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p{i}"), "namespace": "default", "uid": format!("u{i}")},
            "spec": {"containers": [{"name": "c"}]},
        }))
        .unwrap()
    }

    /// Issue #19: posted one at a time, the `Scheduled` events of a
    /// density run fell behind the bindings and 95% were dropped. Here
    /// every event create is answered only once eight are pending at once:
    /// a recorder posting fewer at a time never finishes.
    #[tokio::test(start_paused = true)]
    async fn scheduled_events_are_posted_several_at_a_time() {
        const AT_ONCE: usize = 8;
        let barrier = Arc::new(tokio::sync::Barrier::new(AT_ONCE));
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let service = {
            let answered = answered.clone();
            tower::service_fn(move |request: http::Request<kube::client::Body>| {
                let (barrier, answered) = (barrier.clone(), answered.clone());
                async move {
                    barrier.wait().await;
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = request
                        .into_body()
                        .collect_bytes()
                        .await
                        .unwrap_or_default();
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .status(201)
                            .header("content-type", "application/json")
                            .body(kube::client::Body::from(body.to_vec()))
                            .unwrap(),
                    )
                }
            })
        };
        let (recorder, poster) =
            event_recorder(Client::new(service, "default"), &Config::default());
        let poster = tokio::spawn(poster);
        for i in 0..AT_ONCE {
            recorder.record(scheduled_event(&pod(i), "n1"));
        }
        // Bounded by the timeout (virtual time: it passes at once when
        // every task is stuck).
        let all_answered = tokio::time::timeout(Duration::from_secs(60), async {
            while answered.load(std::sync::atomic::Ordering::SeqCst) < AT_ONCE {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        poster.abort();
        assert!(
            all_answered.is_ok(),
            "the posts never overlapped {AT_ONCE} at once"
        );
        assert_eq!(recorder.dropped(), 0);
    }
}
