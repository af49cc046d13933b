//! The kubelet: runs the pods bound to its node as containers and reports
//! their status.
//!
//! Pipeline: a `kube` watcher/reflector on `spec.nodeName=<node>` (plus the
//! static pods of `--manifest-dir`) → [`Kubelet::sync_pods`] with the whole
//! desired set, on every change and on a resync timer → one worker task per
//! pod uid ([`pod::sync_pod`], never two syncs of one pod at once, requests
//! merged while one runs) → the [`runtime::Runtime`] → status through
//! `pods/{name}/status`, written only when it changed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod dns;
pub mod docker;
pub mod envvars;
pub mod exec;
pub mod hollow;
pub mod node;
pub mod objects;
pub mod pod;
pub mod portforward;
pub mod probe;
pub mod runtime;
pub mod server;
pub mod server_auth;
pub mod static_pods;
pub mod volume;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_util::events::{self, Recorder};
use k8s_openapi::api::core::v1::{Event, EventSource, Node, Pod, PodStatus, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

pub use node::NodeConfig;
pub use pod::SyncConfig;
pub use runtime::Runtime;

/// Everything a kubelet is told.
#[derive(Debug, Clone)]
pub struct Config {
    /// What pod syncs need (node name, host IP, infra image, root dir, back-off).
    pub sync: SyncConfig,
    /// What the Node offers.
    pub node: NodeConfig,
    /// Every pod is synced at least this often (and orphans are looked for).
    pub resync_period: Duration,
    /// The node's Lease (`kube-node-lease/<node>`) is renewed this often:
    /// the heartbeat the node lifecycle controller reads.
    pub heartbeat_period: Duration,
    /// The Lease's `leaseDurationSeconds`.
    pub node_lease_duration_seconds: i32,
    /// The Node status is computed this often and written when it changed.
    pub node_status_update_frequency: Duration,
    /// An unchanged Node status is written again after this long.
    pub node_status_report_frequency: Duration,
    /// Bounds of exec and attach streams (`--streaming-connection-idle-timeout`).
    pub exec: exec::Limits,
    /// Static pod manifests.
    pub manifest_dir: Option<PathBuf>,
    /// Pod syncs running at once (they queue beyond it).
    pub parallel_syncs: usize,
    /// Bounds of `/portForward` sessions.
    pub port_forward: portforward::Limits,
    /// Marked by every pass of the sync loop: the `syncloop` health check
    /// ([`Kubelet::health`]).
    pub sync_loop: client_util::health::Heartbeat,
}

impl Config {
    /// Defaults for node `name` at `address`: infra image
    /// `mini-k8s/pause:latest`, root dir `/var/lib/mini-k8s/kubelet`,
    /// resync 10 s, Lease renewed every 10 s for 40 s, Node status computed
    /// every 10 s and written on change or every 5 min (Kubernetes'
    /// defaults), back-off 10 s doubling to 5 min.
    pub fn new(name: &str, address: &str) -> Self {
        let (cpus, memory_kib) = NodeConfig::host_resources();
        let beats = node::Heartbeats::default();
        Self {
            sync: SyncConfig {
                node_name: name.into(),
                host_ip: address.into(),
                infra_image: "mini-k8s/pause:latest".into(),
                root_dir: PathBuf::from("/var/lib/mini-k8s/kubelet"),
                backoff_base: Duration::from_secs(10),
                backoff_max: Duration::from_secs(300),
                backoff_reset: Duration::from_secs(600),
                extra_labels: Default::default(),
                dns: dns::ClusterDns::default(),
            },
            node: NodeConfig {
                name: name.into(),
                address: address.into(),
                cpus,
                memory_kib,
                max_pods: 110,
                kubelet_port: 10250,
            },
            resync_period: Duration::from_secs(10),
            heartbeat_period: beats.lease_renew_interval,
            node_lease_duration_seconds: beats.lease_duration_seconds,
            node_status_update_frequency: beats.status_update_frequency,
            node_status_report_frequency: beats.status_report_frequency,
            exec: exec::Limits::default(),
            manifest_dir: None,
            parallel_syncs: 8,
            port_forward: portforward::Limits::default(),
            sync_loop: client_util::health::Heartbeat::new(),
        }
    }
}

/// What a pod worker is asked to do.
#[derive(Clone)]
enum Desired {
    /// Run (or, with a deletionTimestamp, terminate) this pod.
    Pod(Arc<Pod>),
    /// The pod is gone: stop and remove its containers.
    Gone,
}

struct Worker {
    desired: watch::Sender<Desired>,
    task: tokio::task::JoinHandle<()>,
}

/// What the HTTP server shows: the pods with their last status.
#[derive(Default)]
struct Shown {
    pods: HashMap<String, Pod>,
}

struct Inner {
    client: kube::Client,
    runtime: Arc<dyn Runtime>,
    config: Config,
    workers: Mutex<HashMap<String, Worker>>,
    services: Store<Service>,
    /// The ConfigMaps and Secrets pods refer to (a cache over the apiserver).
    objects: Arc<dyn objects::ObjectSource>,
    syncs: Semaphore,
    shown: Mutex<Shown>,
    /// Open exec and attach streams.
    exec_streams: exec::Streams,
    /// Static pods by uid (their mirror pods are found by name).
    static_pods: Mutex<HashMap<String, Arc<Pod>>>,
    /// Events to post (bounded: dropped when the apiserver lags far behind).
    events: Recorder,
    /// The task posting them, started by [`Kubelet::run`].
    events_poster: Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
    /// Open `/portForward` sessions and connections.
    port_forwards: portforward::Registry,
}

/// A kubelet. Cloning shares it.
#[derive(Clone)]
pub struct Kubelet {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key(pod: &Pod) -> (String, String) {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

impl Kubelet {
    /// A kubelet talking to the apiserver through `client` and running
    /// containers through `runtime`. Nothing runs until [`Kubelet::run`].
    pub fn new(
        client: kube::Client,
        runtime: Arc<dyn Runtime>,
        config: Config,
    ) -> (Self, ServiceFeed) {
        let (services, writer) = reflector::store();
        let parallel = config.parallel_syncs.max(1);
        // One post at a time: a kubelet's events come a few per pod change.
        let (events, poster) = Recorder::new(client.clone(), events::DEFAULT_QUEUE, 1);
        // A sync period's TTL: an edited object reaches a volume within
        // two sync periods.
        let objects = Arc::new(objects::ApiObjects::new(
            client.clone(),
            config.resync_period,
        ));
        let kubelet = Self {
            inner: Arc::new(Inner {
                objects,
                client,
                runtime,
                config,
                workers: Mutex::new(HashMap::new()),
                services,
                syncs: Semaphore::new(parallel),
                shown: Mutex::new(Shown::default()),
                exec_streams: exec::Streams::default(),
                static_pods: Mutex::new(HashMap::new()),
                events,
                events_poster: Mutex::new(Some(Box::pin(poster))),
                port_forwards: portforward::Registry::default(),
            }),
        };
        (kubelet, ServiceFeed { writer })
    }

    /// The open exec and attach streams.
    pub fn exec_streams(&self) -> &exec::Streams {
        &self.inner.exec_streams
    }

    /// The bounds of exec and attach streams.
    pub fn exec_limits(&self) -> exec::Limits {
        self.inner.config.exec
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.inner.runtime
    }

    /// The open `/portForward` sessions and connections.
    pub fn port_forwards(&self) -> &portforward::Registry {
        &self.inner.port_forwards
    }

    /// What the kubelet was told.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// `/healthz`, `/livez`, `/readyz`, as Kubernetes' kubelet: `syncloop`
    /// on all three (the sync loop ran within twice the resync period, at
    /// least 5 minutes: its `syncLoopHealthCheck`), and on `/readyz` the
    /// container runtime answering a ping (a restart would not help it).
    pub fn health(&self) -> client_util::health::Health {
        let max_age = (self.inner.config.resync_period * 2).max(Duration::from_secs(300));
        let runtime = self.inner.runtime.clone();
        client_util::health::Health::new()
            .with_check(self.inner.config.sync_loop.check("syncloop", max_age))
            .with_readyz_check(client_util::health::Check::new("runtime", move || {
                let runtime = runtime.clone();
                async move {
                    runtime
                        .ping()
                        .await
                        .map_err(|e| format!("container runtime is down: {e}"))
                }
            }))
    }

    /// Runs until dropped (abort the task): node registration, status and
    /// Lease, the pod and service watches, the static pods, the
    /// resync timer. Running containers are left running when it stops.
    pub async fn run(self, services: ServiceFeed) {
        let inner = &self.inner;
        let node_name = inner.config.sync.node_name.clone();
        let beats = node::Heartbeats {
            lease_renew_interval: inner.config.heartbeat_period,
            lease_duration_seconds: inner.config.node_lease_duration_seconds,
            status_update_frequency: inner.config.node_status_update_frequency,
            status_report_frequency: inner.config.node_status_report_frequency,
        };
        let heartbeat = tokio::spawn(node::run(
            Api::<Node>::all(inner.client.clone()),
            inner.config.node.clone(),
            inner.runtime.clone(),
            beats,
        ));
        let lease = tokio::spawn(node::run_lease(
            Api::namespaced(inner.client.clone(), node::NODE_LEASE_NAMESPACE),
            Api::<Node>::all(inner.client.clone()),
            node_name.clone(),
            beats,
        ));
        // Both watches go through client_util, as every component's do: watch
        // errors are logged and retried, never dropped.
        let service_watch = tokio::spawn(client_util::reflect_into(
            services.writer,
            Api::<Service>::all(inner.client.clone()),
            watcher::Config::default(),
            watch::channel(0).0,
        ));
        let (pod_reader, pod_writer) = reflector::store::<Pod>();
        let (pod_changes, mut pods_changed) = watch::channel(0u64);
        let pod_watch = tokio::spawn(client_util::reflect_into(
            pod_writer,
            Api::<Pod>::all(inner.client.clone()),
            watcher::Config::default().fields(&format!("spec.nodeName={node_name}")),
            pod_changes,
        ));
        let mut tasks = vec![heartbeat, lease, service_watch, pod_watch];
        if let Some(poster) = lock(&inner.events_poster).take() {
            tasks.push(tokio::spawn(poster));
        }
        let _guards = AbortOnDrop(tasks);
        let _workers = StopWorkers(self.inner.clone());
        // Service variables need the services: wait briefly for the first list.
        let _ =
            tokio::time::timeout(Duration::from_secs(5), inner.services.wait_until_ready()).await;
        let mut ready = false;
        let mut next_resync = Instant::now();
        loop {
            if !ready {
                ready =
                    tokio::time::timeout(Duration::from_millis(100), pod_reader.wait_until_ready())
                        .await
                        .is_ok();
            }
            let now = Instant::now();
            let resync = now >= next_resync;
            if resync {
                next_resync = now + inner.config.resync_period;
                self.refresh_static_pods();
            }
            if ready {
                inner.config.sync_loop.beat();
                let api_pods = pod_reader.state();
                self.sync_pods(&api_pods);
                if resync {
                    self.mirror_pods(&api_pods).await;
                    self.remove_orphans().await;
                }
            }
            tokio::select! {
                Ok(()) = pods_changed.changed() => {
                    // Let a burst of events land before the next full pass.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                () = tokio::time::sleep_until(next_resync) => {}
                () = tokio::time::sleep(Duration::from_millis(200)), if !ready => {}
            }
        }
    }

    fn refresh_static_pods(&self) {
        let Some(dir) = &self.inner.config.manifest_dir else {
            return;
        };
        let pods = static_pods::read_dir(&self.inner.config.sync.node_name, dir);
        let mut current = lock(&self.inner.static_pods);
        *current = pods
            .into_iter()
            .map(|p| (pod::pod_uid(&p).to_string(), Arc::new(p)))
            .collect();
    }

    /// The level-triggered heart: `api_pods` is every pod the apiserver has
    /// bound to this node (mirror pods are ignored: their static pods are
    /// added here). Every desired pod gets a worker (a changed pod wakes
    /// its worker); every worker whose pod is no longer desired is told to
    /// remove it. Cheap: no runtime call.
    pub fn sync_pods(&self, api_pods: &[Arc<Pod>]) {
        let statics: Vec<Arc<Pod>> = lock(&self.inner.static_pods).values().cloned().collect();
        let desired: Vec<Arc<Pod>> = api_pods
            .iter()
            .filter(|p| !static_pods::is_mirror(p))
            .cloned()
            .chain(statics)
            .collect();
        let mut workers = lock(&self.inner.workers);
        let mut wanted = HashSet::new();
        for pod in desired {
            let uid = pod::pod_uid(&pod).to_string();
            if uid.is_empty() {
                continue;
            }
            wanted.insert(uid.clone());
            match workers.get(&uid) {
                Some(worker) => {
                    worker.desired.send_if_modified(|current| match current {
                        Desired::Pod(old)
                            if old.metadata.resource_version == pod.metadata.resource_version =>
                        {
                            false
                        }
                        _ => {
                            *current = Desired::Pod(pod.clone());
                            true
                        }
                    });
                }
                None => {
                    let worker = self.spawn_worker(uid.clone(), Desired::Pod(pod));
                    workers.insert(uid, worker);
                }
            }
        }
        for (uid, worker) in workers.iter() {
            if !wanted.contains(uid) {
                worker.desired.send_if_modified(|current| {
                    if matches!(current, Desired::Gone) {
                        false
                    } else {
                        *current = Desired::Gone;
                        true
                    }
                });
            }
        }
    }

    /// Containers of pods nobody wants (e.g. deleted while the kubelet was
    /// down) get a worker that removes them.
    async fn remove_orphans(&self) {
        let Ok(containers) = self.inner.runtime.list_pod_containers(None).await else {
            return;
        };
        let uids: HashSet<String> = containers
            .iter()
            .filter_map(|c| c.label(runtime::LABEL_POD_UID).map(str::to_string))
            .collect();
        let mut workers = lock(&self.inner.workers);
        for uid in uids {
            if let std::collections::hash_map::Entry::Vacant(entry) = workers.entry(uid) {
                tracing::info!(uid = %entry.key(), "removing the containers of an unknown pod");
                let worker = self.spawn_worker(entry.key().clone(), Desired::Gone);
                entry.insert(worker);
            }
        }
    }

    /// Creates the mirror pods of static pods that have none, and deletes
    /// mirror pods whose static pod is gone.
    async fn mirror_pods(&self, api_pods: &[Arc<Pod>]) {
        let statics: Vec<Arc<Pod>> = lock(&self.inner.static_pods).values().cloned().collect();
        for s in &statics {
            let (ns, name) = key(s);
            let exists = api_pods
                .iter()
                .any(|p| key(p) == (ns.clone(), name.clone()) && static_pods::is_mirror(p));
            if !exists {
                let api: Api<Pod> = Api::namespaced(self.inner.client.clone(), &ns);
                if let Err(e) = api
                    .create(&PostParams::default(), &static_pods::mirror_of(s))
                    .await
                {
                    tracing::debug!(pod = %name, error = %e, "creating mirror pod");
                }
            }
        }
        for p in api_pods.iter().filter(|p| static_pods::is_mirror(p)) {
            let annotation = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(static_pods::MIRROR_ANNOTATION));
            let wanted = statics
                .iter()
                .any(|s| key(s) == key(p) && Some(&pod::pod_uid(s).to_string()) == annotation);
            // A mirror deleted by a user is finished here (and made again next resync).
            if !wanted || p.metadata.deletion_timestamp.is_some() {
                let (ns, name) = key(p);
                let api: Api<Pod> = Api::namespaced(self.inner.client.clone(), &ns);
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
            }
        }
    }

    fn spawn_worker(&self, uid: String, desired: Desired) -> Worker {
        let (tx, rx) = watch::channel(desired);
        let this = self.clone();
        let task = tokio::spawn(async move { this.worker(uid, rx).await });
        Worker { desired: tx, task }
    }

    /// One pod's worker: syncs on every change and when its timer fires.
    async fn worker(self, uid: String, mut rx: watch::Receiver<Desired>) {
        let inner = &self.inner;
        let mut state = pod::PodState::default();
        let mut initialised = false;
        // Killing events go out once per pod, not at every retry.
        let mut killing_posted = false;
        // The resourceVersion our last status write produced: a newer copy
        // whose status is not ours was changed by someone else (the node
        // lifecycle controller marks pods not ready while the node seems
        // silent), and gets our status again, as Kubernetes' status
        // manager reconciles it.
        let mut written_version: Option<u64> = None;
        loop {
            let desired = rx.borrow_and_update().clone();
            let mut wake = Instant::now() + inner.config.resync_period;
            match desired {
                Desired::Pod(pod) if pod.metadata.deletion_timestamp.is_none() => {
                    if !initialised {
                        state.last_status = pod.status.clone();
                        initialised = true;
                    }
                    let result = {
                        let _permit = inner.syncs.acquire().await;
                        let ns = key(&pod).0;
                        let all = inner.services.state();
                        let mut services: Vec<&Service> = all
                            .iter()
                            .map(AsRef::as_ref)
                            .filter(|s| s.metadata.namespace.as_deref() == Some(ns.as_str()))
                            .collect();
                        if ns != "default" {
                            services.extend(all.iter().map(AsRef::as_ref).filter(|s| {
                                s.metadata.namespace.as_deref() == Some("default")
                                    && s.metadata.name.as_deref() == Some("kubernetes")
                            }));
                        }
                        let src = pod::Sources {
                            runtime: inner.runtime.as_ref(),
                            services: &services,
                            objects: inner.objects.as_ref(),
                        };
                        pod::sync_pod(src, &inner.config.sync, &pod, &mut state).await
                    };
                    let status = result.as_ref().ok().map(|r| &r.status);
                    for e in pod::events::coalesce(std::mem::take(&mut state.events), status) {
                        inner
                            .events
                            .record(event_for(&pod, &inner.config.sync.node_name, e));
                    }
                    match result {
                        Ok(result) => {
                            if let Some(at) = result.wake_at {
                                wake = wake.min(at);
                            }
                            self.show(&pod, &result.status);
                            let changed_by_others = pod.status != state.last_status
                                && newer_than(&pod, written_version);
                            if state.last_status.as_ref() != Some(&result.status)
                                || changed_by_others
                            {
                                match self.write_status(&pod, &result.status).await {
                                    Ok(version) => {
                                        written_version = version;
                                        state.last_status = Some(result.status);
                                    }
                                    Err(e) => {
                                        tracing::warn!(%uid, error = %e, "writing pod status");
                                        wake = wake.min(Instant::now() + Duration::from_secs(1));
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%uid, pod = ?pod.metadata.name, error = %e, "pod sync failed");
                            wake = wake.min(Instant::now() + Duration::from_secs(2));
                        }
                    }
                }
                Desired::Pod(pod) => {
                    // Terminating: stop everything, then finish the deletion.
                    let grace = pod::grace_period(&pod);
                    if !killing_posted {
                        killing_posted = true;
                        let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
                        for c in containers.unwrap_or_default() {
                            let killing = pod::PodEvent {
                                container: Some(c.name.clone()),
                                kind: "Normal",
                                reason: "Killing",
                                message: format!(
                                    "Stopping container {} (grace period {}s)",
                                    c.name,
                                    grace.as_secs()
                                ),
                            };
                            inner.events.record(event_for(
                                &pod,
                                &inner.config.sync.node_name,
                                killing,
                            ));
                        }
                    }
                    let killed = {
                        let _permit = inner.syncs.acquire().await;
                        pod::kill_pod(
                            inner.runtime.as_ref(),
                            &uid,
                            Some(grace),
                            &inner.config.sync.root_dir,
                        )
                        .await
                    };
                    match killed {
                        Ok(()) => {
                            let (ns, name) = key(&pod);
                            let api: Api<Pod> = Api::namespaced(inner.client.clone(), &ns);
                            let params = DeleteParams {
                                grace_period_seconds: Some(0),
                                preconditions: Some(Preconditions {
                                    uid: pod.metadata.uid.clone(),
                                    resource_version: None,
                                }),
                                ..DeleteParams::default()
                            };
                            match api.delete(&name, &params).await {
                                Ok(_) => {}
                                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                                Err(e) => {
                                    tracing::warn!(%uid, error = %e, "deleting terminated pod");
                                    wake = Instant::now() + Duration::from_secs(1);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%uid, error = %e, "stopping pod");
                            wake = Instant::now() + Duration::from_secs(1);
                        }
                    }
                    lock(&inner.shown).pods.remove(&uid);
                }
                Desired::Gone => {
                    let killed = {
                        let _permit = inner.syncs.acquire().await;
                        pod::kill_pod(
                            inner.runtime.as_ref(),
                            &uid,
                            None,
                            &inner.config.sync.root_dir,
                        )
                        .await
                    };
                    lock(&inner.shown).pods.remove(&uid);
                    match killed {
                        Ok(()) => {
                            let mut workers = lock(&inner.workers);
                            if !rx.has_changed().unwrap_or(false) {
                                workers.remove(&uid);
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%uid, error = %e, "removing containers of a deleted pod");
                            wake = Instant::now() + Duration::from_secs(1);
                        }
                    }
                }
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn show(&self, pod: &Pod, status: &PodStatus) {
        let mut shown = pod.clone();
        shown.status = Some(status.clone());
        lock(&self.inner.shown)
            .pods
            .insert(pod::pod_uid(pod).to_string(), shown);
    }

    /// The pods this kubelet runs, with the status it computed last.
    pub fn pods(&self) -> Vec<Pod> {
        let mut pods: Vec<Pod> = lock(&self.inner.shown).pods.values().cloned().collect();
        pods.sort_by_key(key);
        pods
    }

    /// Patches the pod's status; the resourceVersion written, when the
    /// answer carries one.
    async fn write_status(&self, pod: &Pod, status: &PodStatus) -> kube::Result<Option<u64>> {
        let (ns, name) = key(pod);
        let api: Api<Pod> = Api::namespaced(self.inner.client.clone(), &ns);
        let mut value = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
        if let Some(map) = value.as_object_mut() {
            for absent in ["podIP", "podIPs", "reason", "message"] {
                map.entry(absent).or_insert(serde_json::Value::Null);
            }
        }
        let written = api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": value })),
            )
            .await?;
        Ok(resource_version(&written))
    }
}

/// A pod's resourceVersion as a number: this apiserver's are etcd
/// revisions, which only grow.
fn resource_version(pod: &Pod) -> Option<u64> {
    pod.metadata.resource_version.as_deref()?.parse().ok()
}

/// Whether `pod` is a later copy than the one our write produced (any copy,
/// when we have not written or cannot tell).
fn newer_than(pod: &Pod, written: Option<u64>) -> bool {
    match (resource_version(pod), written) {
        (Some(seen), Some(written)) => seen > written,
        _ => true,
    }
}

/// A core/v1 Event about `pod` from this node's kubelet.
fn event_for(pod: &Pod, node: &str, e: pod::PodEvent) -> Event {
    let field_path = e.container.map(|c| format!("spec.containers{{{c}}}"));
    events::event(
        events::pod_reference(pod, field_path),
        EventSource {
            component: Some("kubelet".into()),
            host: Some(node.into()),
        },
        e.kind,
        e.reason,
        e.message,
    )
}

/// The writer half of the kubelet's service cache (handed to [`Kubelet::run`]).
pub struct ServiceFeed {
    writer: reflector::store::Writer<Service>,
}

/// Stops every pod worker when the kubelet's run ends (containers stay).
struct StopWorkers(Arc<Inner>);

impl Drop for StopWorkers {
    fn drop(&mut self) {
        for (_, worker) in lock(&self.0.workers).drain() {
            worker.task.abort();
        }
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
