//! The DaemonSet controller: one pod of each DaemonSet on every node that
//! should run it, as Kubernetes' `pkg/controller/daemon` decides.
//!
//! A node should run a DaemonSet's pod when the template's `nodeSelector`
//! and required node affinity match it and the pod tolerates its
//! `NoSchedule` and `NoExecute` taints; a pod already there may stay while
//! it tolerates the `NoExecute` ones. Every pod gets Kubernetes' default
//! DaemonSet tolerations (`node.kubernetes.io/not-ready` and `unreachable`
//! `NoExecute` without `tolerationSeconds`, `unschedulable` and the
//! pressure taints `NoSchedule`), so a node that stops reporting keeps its
//! pod: the node lifecycle controller does not evict pods that tolerate
//! its state for ever, and nothing recreates them elsewhere.
//!
//! The controller binds its pods itself (`spec.nodeName`), as Kubernetes
//! did before 1.12, rather than through the scheduler with a node
//! affinity: the scheduler here knows neither taints nor node affinity and
//! skips not-ready and cordoned nodes, all of which a DaemonSet pod must
//! ignore. The price is that no resource fit is checked.
//!
//! `plan` is pure (DaemonSet, nodes, its pods, now → creates, deletes,
//! status) and table-tested; [`reconcile`] adopts orphans, carries the
//! plan out with expectations (what it asked for and has not yet seen in
//! the cache counts as done, as the replication manager's), records
//! `SuccessfulCreate`/`SuccessfulDelete` events and writes the status.
//! Pods tell the template they were made from by their
//! `controller-revision-hash` label (a hash of the template; Kubernetes
//! names a ControllerRevision with it, this controller stores none) and
//! `pod-template-generation`. A `RollingUpdate` deletes old pods, at most
//! `maxUnavailable` unavailable nodes at a time (nodes without an available
//! pod count), and the missing pods are then created from the new
//! template; `OnDelete` replaces only the pods a user deletes. `maxSurge`
//! is accepted but not honoured: updates go without surge.
//!
//! Adoption, release, expectations and the garbage collection of pods
//! whose DaemonSet is gone (the apiserver does no cascading deletion, and
//! deletes that asked to orphan the pods or to wait for them are finished
//! here) are the replication manager's, shared in `ownership`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use api_types::labels::Selector;
use client_util::events::{self, Recorder};
use client_util::{CacheIndex, Reflected, StopFlag};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    EventSource, Node, NodeSelectorRequirement, ObjectReference, Pod, PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::ownership::{self, delete_only, owner_reference, Expectations, Relation};
use crate::{finished, pod_ready, Config, Error, Result};

/// The label holding the hash of the template a pod was made from.
pub const HASH_LABEL: &str = "controller-revision-hash";
/// The label holding the DaemonSet generation a pod was made at
/// (deprecated in Kubernetes, still set).
pub const GENERATION_LABEL: &str = "pod-template-generation";

/// The event source of this controller.
const COMPONENT: &str = "daemonset-controller";

/// `NoExecute` taints of a node that is not ready or not reachable.
pub(crate) const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// See [`TAINT_NOT_READY`].
pub(crate) const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Kubernetes' `AddOrUpdateDaemonPodTolerations`: what every DaemonSet pod
/// tolerates, so that it runs (and stays) where a node's state would keep
/// other pods away. `hostNetwork` pods also tolerate an unready network.
fn default_tolerations(host_network: bool) -> Vec<Toleration> {
    let exists = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    };
    let mut all = vec![
        exists(TAINT_NOT_READY, "NoExecute"),
        exists(TAINT_UNREACHABLE, "NoExecute"),
        exists("node.kubernetes.io/disk-pressure", "NoSchedule"),
        exists("node.kubernetes.io/memory-pressure", "NoSchedule"),
        exists("node.kubernetes.io/pid-pressure", "NoSchedule"),
        exists("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        all.push(exists(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    all
}

/// The template's pod spec with the default tolerations added (those it
/// does not already carry).
fn pod_spec_of(ds: &DaemonSet) -> PodSpec {
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    let mut tolerations = spec.tolerations.take().unwrap_or_default();
    for t in default_tolerations(spec.host_network == Some(true)) {
        if !tolerations.contains(&t) {
            tolerations.push(t);
        }
    }
    spec.tolerations = Some(tolerations);
    spec
}

/// Kubernetes' `Toleration.ToleratesTaint`: the effect matches (or the
/// toleration names none), the key matches (or an `Exists` toleration
/// names none), and `Exists` or `Equal` with the same value.
pub(crate) fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// Whether a node should get a pod, and whether a pod there may stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fit {
    should_run: bool,
    should_continue: bool,
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|b| number(b)),
            ) else {
                return false;
            };
            if req.operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// `nodeSelector` and the required node affinity's terms (any term whose
/// every expression and field matches).
fn node_matches(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let selected = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|s| s.node_selector_terms.as_slice());
    let affine = terms.is_none_or(|terms| {
        terms.iter().any(|term| {
            let exprs = term.match_expressions.as_deref().unwrap_or_default();
            let fields = term.match_fields.as_deref().unwrap_or_default();
            (!exprs.is_empty() || !fields.is_empty())
                && exprs
                    .iter()
                    .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
                && fields.iter().all(|r| {
                    let value = (r.key == "metadata.name")
                        .then_some(node.metadata.name.as_deref())
                        .flatten();
                    requirement_matches(r, value)
                })
        })
    });
    selected && affine
}

/// Kubernetes' `NodeShouldRunDaemonPod` for the template `spec` (default
/// tolerations included).
fn fit(spec: &PodSpec, node: &Node) -> Fit {
    if !node_matches(spec, node) {
        return Fit {
            should_run: false,
            should_continue: false,
        };
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let untolerated = |effect: &str| {
        taints
            .iter()
            .any(|t| t.effect == effect && !tolerated(tolerations, t))
    };
    let should_continue = !untolerated("NoExecute");
    Fit {
        should_run: should_continue && !untolerated("NoSchedule"),
        should_continue,
    }
}

/// A stable hash of the template (FNV-1a over its JSON, whose maps are
/// sorted): the same template gives the same hash in every process and
/// release, so a restart does not roll every pod.
pub fn template_hash(ds: &DaemonSet) -> String {
    let template = ds.spec.as_ref().map(|s| &s.template);
    let bytes = serde_json::to_vec(&template).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // Kubernetes' SafeEncodeString alphabet: no vowels, no look-alikes.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    for _ in 0..10 {
        out.push(char::from(
            ALPHABET[(hash % ALPHABET.len() as u64) as usize],
        ));
        hash /= ALPHABET.len() as u64;
    }
    out
}

fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.labels().get(HASH_LABEL).map(String::as_str) == Some(hash)
}

/// Ready, and (with `minReadySeconds`) ready for that long at `now`.
fn available(pod: &Pod, min_ready_seconds: i64, now: jiff::Timestamp) -> bool {
    if !pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .is_some_and(|t| now.as_second() - t.0.as_second() >= min_ready_seconds)
}

fn created(pod: &Pod) -> (Option<jiff::Timestamp>, String) {
    (
        pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        pod.name_any(),
    )
}

/// The status counts Kubernetes reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    desired: i32,
    current: i32,
    misscheduled: i32,
    ready: i32,
    updated: i32,
    available: i32,
}

/// What one sync does.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Nodes to create a pod on.
    create_on: Vec<String>,
    /// Pods to delete, each once.
    delete: Vec<Arc<Pod>>,
    /// The counts for the status.
    counts: Counts,
    /// Pods that are ready but not yet available: sync again then.
    waiting_available: bool,
}

impl Plan {
    fn delete(&mut self, pod: &Arc<Pod>) {
        if !self.delete.iter().any(|p| p.uid() == pod.uid()) {
            self.delete.push(pod.clone());
        }
    }
}

/// `maxUnavailable` of `desired` nodes: a number, or a percentage rounded
/// up; at least 1 (Kubernetes' fallback when surge is 0 too).
fn max_unavailable(ds: &DaemonSet, desired: i32) -> i32 {
    let value = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    let n = match value {
        IntOrString::Int(i) => i,
        IntOrString::String(s) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            i32::try_from((i64::from(desired) * percent + 99) / 100).unwrap_or(i32::MAX)
        }
    };
    n.max(1)
}

fn rolling(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// Decides one sync of `ds` given every node and the pods it controls
/// (terminating and finished ones included), at `now`.
///
/// Per node, as Kubernetes' `podsShouldBeOnNode`: finished pods are
/// deleted; a node that should run the pod and has none gets one (not
/// while an old one is still terminating); one that may keep it keeps the
/// oldest and loses the rest; one that may not loses them all. Pods bound
/// to no node or to a node that no longer exists are deleted. Then a
/// rolling update deletes old pods: unavailable ones at once, available
/// ones only while fewer than `maxUnavailable` nodes lack an available pod.
pub(crate) fn plan(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    hash: &str,
    now: jiff::Timestamp,
) -> Plan {
    let spec = pod_spec_of(ds);
    let min_ready = i64::from(
        ds.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0),
    );
    let mut out = Plan::default();
    let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for pod in pods {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        by_node.entry(node).or_default().push(pod.clone());
    }
    let mut nodes: Vec<&Arc<Node>> = nodes.iter().collect();
    nodes.sort_by_key(|n| n.name_any());
    // Per node that should run the pod: its surviving pod, if any.
    let mut kept: Vec<(String, Option<Arc<Pod>>)> = Vec::new();
    for node in nodes {
        let name = node.name_any();
        let fit = fit(&spec, node);
        let here = by_node.remove(&name).unwrap_or_default();
        let mut live: Vec<Arc<Pod>> = Vec::new();
        for pod in &here {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if finished(pod) {
                out.delete(pod);
            } else {
                live.push(pod.clone());
            }
        }
        live.sort_by_key(|p| created(p));
        let scheduled = here.iter().any(|p| !finished(p));
        if fit.should_run {
            out.counts.desired += 1;
            if scheduled {
                out.counts.current += 1;
            }
        } else if scheduled {
            out.counts.misscheduled += 1;
        }
        if fit.should_run && here.is_empty() {
            out.create_on.push(name.clone());
        }
        if !fit.should_continue {
            for pod in &live {
                out.delete(pod);
            }
            continue;
        }
        for extra in live.iter().skip(1) {
            out.delete(extra);
        }
        let oldest = live.first().cloned();
        if let Some(pod) = oldest.as_ref().filter(|_| fit.should_run) {
            if pod_ready(pod) {
                out.counts.ready += 1;
                if available(pod, min_ready, now) {
                    out.counts.available += 1;
                } else {
                    out.waiting_available = true;
                }
            }
            if is_updated(pod, hash) {
                out.counts.updated += 1;
            }
        }
        if fit.should_run {
            kept.push((name, oldest));
        }
    }
    // Bound nowhere, or to a node that is gone.
    for pod in by_node.into_values().flatten() {
        if pod.metadata.deletion_timestamp.is_none() {
            out.delete(&pod);
        }
    }
    if rolling(ds) {
        let budget = max_unavailable(ds, out.counts.desired);
        let mut unavailable = 0;
        let mut candidates: Vec<Arc<Pod>> = Vec::new();
        let mut replace_now: Vec<Arc<Pod>> = Vec::new();
        for (_, pod) in &kept {
            match pod {
                None => unavailable += 1,
                Some(p) if is_updated(p, hash) => {
                    if !available(p, min_ready, now) {
                        unavailable += 1;
                    }
                }
                Some(p) if !available(p, min_ready, now) => replace_now.push(p.clone()),
                Some(p) => candidates.push(p.clone()),
            }
        }
        let room = usize::try_from(budget - unavailable).unwrap_or(0);
        for pod in replace_now.iter().chain(candidates.iter().take(room)) {
            out.delete(pod);
        }
    }
    out
}

/// The status patch for `counts`; `None` when the status already says so.
fn status_patch(ds: &DaemonSet, counts: &Counts) -> Option<serde_json::Value> {
    let status = ds.status.clone().unwrap_or_default();
    let generation = ds.meta().generation;
    let unavailable = counts.desired - counts.available;
    let same = status.desired_number_scheduled == counts.desired
        && status.current_number_scheduled == counts.current
        && status.number_misscheduled == counts.misscheduled
        && status.number_ready == counts.ready
        && status.updated_number_scheduled.unwrap_or(0) == counts.updated
        && status.number_available.unwrap_or(0) == counts.available
        && status.number_unavailable.unwrap_or(0) == unavailable
        && status.observed_generation == generation;
    (!same).then(|| {
        json!({"status": {
            "desiredNumberScheduled": counts.desired,
            "currentNumberScheduled": counts.current,
            "numberMisscheduled": counts.misscheduled,
            "numberReady": counts.ready,
            "updatedNumberScheduled": counts.updated,
            "numberAvailable": counts.available,
            "numberUnavailable": unavailable,
            "observedGeneration": generation,
        }})
    })
}

/// What `reconcile` needs.
pub struct Context {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    config: Config,
    recorder: Recorder,
    /// Nodes each DaemonSet (by `ns/name`) asked a pod for, and pods
    /// (uids) it asked to delete, not yet seen in the cache.
    expectations: Expectations,
}

/// Runs the DaemonSet controller and its garbage collector until `stop`.
pub async fn run(
    client: Client,
    config: Config,
    pods: Reflected<Pod>,
    pods_by_controller: CacheIndex<Pod>,
    nodes: Reflected<Node>,
    stop: StopFlag,
) {
    let daemon_sets: Api<DaemonSet> = Api::all(client.clone());
    let trigger = futures::stream::select(
        client_util::batched_changes(pods.changes.clone(), crate::CHANGES_BATCH),
        client_util::batched_changes(nodes.changes.clone(), crate::CHANGES_BATCH),
    );
    let controller = Controller::new(daemon_sets, watcher::Config::default())
        .reconcile_all_on(trigger)
        .graceful_shutdown_on({
            let stop = stop.clone();
            async move { stop.stopped().await }
        });
    let store = controller.store();
    let (recorder, poster) = Recorder::new(client.clone(), events::DEFAULT_QUEUE, 1);
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: pods.store.clone(),
        nodes: nodes.store.clone(),
        config,
        recorder,
        expectations: Expectations::default(),
    });
    let controller = controller
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "daemon set reconcile");
            }
        });
    let gc = ownership::collect_garbage(
        client,
        store.clone(),
        pods,
        pods_by_controller,
        stop.clone(),
    );
    let forget = async move {
        ctx.expectations.forget_gone(&store, key, &stop).await;
        // The poster ends once the last recorder clone is gone.
        drop(ctx);
    };
    tokio::join!(controller, gc, forget, poster);
}

fn error_policy(_ds: Arc<DaemonSet>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "daemon set sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

fn key(ds: &DaemonSet) -> String {
    format!("{}/{}", ds.namespace().unwrap_or_default(), ds.name_any())
}

fn reference(ds: &DaemonSet) -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("DaemonSet".into()),
        name: ds.metadata.name.clone(),
        namespace: ds.metadata.namespace.clone(),
        uid: ds.metadata.uid.clone(),
        resource_version: ds.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn record(ctx: &Context, ds: &DaemonSet, type_: &str, reason: &str, message: String) {
    let source = EventSource {
        component: Some(COMPONENT.into()),
        host: None,
    };
    ctx.recorder
        .record(events::event(reference(ds), source, type_, reason, message));
}

/// Makes the pods of `ds` what `plan` says, adopting orphans first,
/// then writes the status if it changed.
///
/// # Errors
///
/// [`Error::Api`] when the status write fails (retryable); failed creates
/// and deletes are logged, recorded as events and retried on the next
/// pass.
pub async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action> {
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = ds.namespace().unwrap_or_default();
    let uid = ds.uid().unwrap_or_default();
    let ds_key = key(&ds);
    let Some(selector) = ds
        .spec
        .as_ref()
        .and_then(|s| Selector::try_from(&s.selector).ok())
        .filter(|s| !s.is_empty())
    else {
        return Ok(Action::await_change());
    };
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut ours: Vec<Arc<Pod>> = Vec::new();
    let mut cached_uids: HashSet<String> = HashSet::new();
    let mut nodes_with_pods: HashSet<String> = HashSet::new();
    for pod in ctx.pods.state() {
        if pod.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        match ownership::relation(&uid, selector.matches(pod.labels()), &pod) {
            Relation::Owned => ours.push(pod.clone()),
            Relation::Orphan => {
                if ownership::adopt(&pod_api, ds.as_ref(), &pod).await {
                    ours.push(pod.clone());
                }
            }
            Relation::Stray => {
                ownership::release(&pod_api, &uid, &pod, "its labels no longer match").await;
                continue;
            }
            Relation::Unrelated => continue,
        }
        cached_uids.insert(pod.uid().unwrap_or_default());
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            nodes_with_pods.insert(node);
        }
    }
    let (pending_creates, pending_deletes) = ctx.expectations.pending(
        &ds_key,
        |node| nodes_with_pods.contains(node),
        |u| {
            !ours.iter().any(|p| {
                p.uid().as_deref() == Some(u)
                    && p.metadata.deletion_timestamp.is_none()
                    && !finished(p)
            })
        },
    );
    let hash = template_hash(&ds);
    let nodes = ctx.nodes.state();
    let plan = plan(&ds, &nodes, &ours, &hash, jiff::Timestamp::now());
    // What is asked for and not yet seen is not asked again; while any is
    // pending, no rolling delete is added on top of it.
    let creates: Vec<String> = plan
        .create_on
        .iter()
        .filter(|n| !pending_creates.contains(*n))
        .take(ctx.config.burst_replicas)
        .cloned()
        .collect();
    let deletes: Vec<Arc<Pod>> = plan
        .delete
        .iter()
        .filter(|p| !pending_deletes.contains(&p.uid().unwrap_or_default()))
        .take(ctx.config.burst_replicas)
        .cloned()
        .collect();
    if !creates.is_empty() {
        create_pods(&ctx, &ds, &ds_key, &pod_api, &hash, creates).await;
    }
    if !deletes.is_empty() {
        delete_pods(&ctx, &ds, &ds_key, &pod_api, deletes).await;
    }
    if let Some(patch) = status_patch(&ds, &plan.counts) {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &ds.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .map_err(Error::Api)?;
    }
    Ok(
        if ctx.expectations.waiting(&ds_key) || plan.waiting_available {
            Action::requeue(Duration::from_secs(1))
        } else {
            Action::requeue(ctx.config.resync)
        },
    )
}

/// The pod `ds` runs on `node`: its template, labelled with the template
/// hash and generation, owned by `ds`, bound to `node`, with the default
/// tolerations.
fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut metadata = template.metadata.unwrap_or_default();
    metadata.name = None;
    metadata.generate_name = Some(format!("{}-", ds.name_any()));
    metadata.namespace = ds.namespace();
    metadata.owner_references = Some(vec![owner_reference(ds)]);
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(HASH_LABEL.into(), hash.into());
    labels.insert(
        GENERATION_LABEL.into(),
        ds.meta().generation.unwrap_or(1).to_string(),
    );
    let mut spec = pod_spec_of(ds);
    spec.node_name = Some(node.into());
    Pod {
        metadata,
        spec: Some(spec),
        status: None,
    }
}

async fn create_pods(
    ctx: &Context,
    ds: &DaemonSet,
    ds_key: &str,
    api: &Api<Pod>,
    hash: &str,
    nodes: Vec<String>,
) {
    ctx.expectations.expect(ds_key, nodes.iter().cloned(), []);
    tracing::info!(daemonset = %ds_key, count = nodes.len(), "creating pods");
    let results = futures::stream::iter(nodes)
        .map(|node| async move {
            let result = api
                .create(&PostParams::default(), &new_pod(ds, &node, hash))
                .await;
            (node, result)
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut failed = Vec::new();
    for (node, result) in results {
        match result {
            Ok(pod) => record(
                ctx,
                ds,
                "Normal",
                "SuccessfulCreate",
                format!("Created pod: {}", pod.name_any()),
            ),
            Err(error) => {
                tracing::warn!(daemonset = %ds_key, %node, %error, "creating a pod failed");
                record(
                    ctx,
                    ds,
                    "Warning",
                    "FailedCreate",
                    format!("Error creating: {error}"),
                );
                failed.push(node);
            }
        }
    }
    ctx.expectations.forget(ds_key, &failed, &[]);
}

async fn delete_pods(
    ctx: &Context,
    ds: &DaemonSet,
    ds_key: &str,
    api: &Api<Pod>,
    victims: Vec<Arc<Pod>>,
) {
    ctx.expectations.expect(
        ds_key,
        [],
        victims.iter().map(|p| p.uid().unwrap_or_default()),
    );
    tracing::info!(daemonset = %ds_key, count = victims.len(), "deleting pods");
    let results = futures::stream::iter(victims)
        .map(|pod| async move {
            let result = api.delete(&pod.name_any(), &delete_only(&pod)).await;
            (pod, result)
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut failed = Vec::new();
    for (pod, result) in results {
        match result {
            Ok(_) => record(
                ctx,
                ds,
                "Normal",
                "SuccessfulDelete",
                format!("Deleted pod: {}", pod.name_any()),
            ),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(error) => {
                tracing::warn!(daemonset = %ds_key, pod = %pod.name_any(), %error, "deleting a pod failed");
                record(
                    ctx,
                    ds,
                    "Warning",
                    "FailedDelete",
                    format!("Error deleting: {error}"),
                );
                failed.push(pod.uid().unwrap_or_default());
            }
        }
    }
    ctx.expectations.forget(ds_key, &[], &failed);
}

#[cfg(test)]
mod tests {
    use super::*;

    const DS_UID: &str = "ds-uid";

    fn ds(patch: serde_json::Value) -> DaemonSet {
        let mut base = json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "uid": DS_UID, "generation": 1},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            },
        });
        api_types::patch::apply_merge_patch(&mut base, &patch);
        serde_json::from_value(base).unwrap()
    }

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {"taints": taints},
            }))
            .unwrap(),
        )
    }

    fn plain(name: &str) -> Arc<Node> {
        node(name, json!({}), json!([]))
    }

    /// A pod of `agent` on `node`, created at second `created`, made from
    /// the template hashed `hash`.
    fn pod(name: &str, node: &str, created: i64, hash: &str, ready: bool) -> Arc<Pod> {
        let created = jiff::Timestamp::from_second(1_700_000_000 + created).unwrap();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
                    "labels": {"app": "agent", HASH_LABEL: hash},
                    "creationTimestamp": created.to_string(),
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                        "name": "agent", "uid": DS_UID, "controller": true}]},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready",
                    "status": if ready {"True"} else {"False"},
                    "lastTransitionTime": created.to_string()}]},
            }))
            .unwrap(),
        )
    }

    fn with(pod: &Arc<Pod>, change: impl FnOnce(&mut Pod)) -> Arc<Pod> {
        let mut p = (**pod).clone();
        change(&mut p);
        Arc::new(p)
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_001_000).unwrap()
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn one_pod_goes_to_each_node_that_has_none() {
        let d = ds(json!({}));
        let h = template_hash(&d);
        let nodes = [plain("n1"), plain("n2"), plain("n3")];
        let p = plan(&d, &nodes, &[pod("a", "n2", 1, &h, true)], &h, now());
        assert_eq!(p.create_on, ["n1", "n3"]);
        assert!(p.delete.is_empty());
        assert_eq!(
            p.counts,
            Counts {
                desired: 3,
                current: 1,
                ready: 1,
                updated: 1,
                available: 1,
                misscheduled: 0
            }
        );
    }

    #[test]
    fn a_converged_daemon_set_does_nothing() {
        let d = ds(json!({}));
        let h = template_hash(&d);
        let nodes = [plain("n1"), plain("n2")];
        let pods = [pod("a", "n1", 1, &h, true), pod("b", "n2", 2, &h, true)];
        let p = plan(&d, &nodes, &pods, &h, now());
        assert!(p.create_on.is_empty() && p.delete.is_empty(), "{p:?}");
        let mut settled = d.clone();
        settled.status = Some(
            serde_json::from_value(json!({"desiredNumberScheduled": 2,
                "currentNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": 2,
                "updatedNumberScheduled": 2, "numberAvailable": 2, "numberUnavailable": 0,
                "observedGeneration": 1}))
            .unwrap(),
        );
        assert_eq!(status_patch(&settled, &p.counts), None);
        assert!(status_patch(&d, &p.counts).is_some());
    }

    #[test]
    fn node_selectors_affinity_and_taints_choose_the_nodes() {
        let ssd = json!({"disk": "ssd"});
        let nodes = [
            node("ssd", ssd.clone(), json!([])),
            node("hdd", json!({"disk": "hdd"}), json!([])),
            node(
                "ssd-dedicated",
                ssd.clone(),
                json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
            ),
            node(
                "ssd-evicting",
                ssd.clone(),
                json!([{"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
            ),
            // Default tolerations: a node not ready, unreachable or cordoned
            // still runs the pod.
            node(
                "ssd-unreachable",
                ssd.clone(),
                json!([{"key": TAINT_UNREACHABLE, "effect": "NoExecute"},
                    {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
            ),
        ];
        let cases: &[(&str, serde_json::Value, &[&str])] = &[
            (
                "nodeSelector",
                json!({"nodeSelector": {"disk": "ssd"}}),
                &["ssd", "ssd-unreachable"],
            ),
            (
                "tolerating NoSchedule",
                json!({"nodeSelector": {"disk": "ssd"}, "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
                &["ssd", "ssd-dedicated", "ssd-unreachable"],
            ),
            (
                "tolerating every taint",
                json!({"nodeSelector": {"disk": "ssd"}, "tolerations": [{"operator": "Exists"}]}),
                &["ssd", "ssd-dedicated", "ssd-evicting", "ssd-unreachable"],
            ),
            (
                "node affinity",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]},
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["ssd"]}]}]}}}}),
                &["hdd", "ssd"],
            ),
        ];
        for (what, spec, want) in cases {
            let d = ds(json!({"spec": {"template": {"spec": spec}}}));
            let h = template_hash(&d);
            let p = plan(&d, &nodes, &[], &h, now());
            let mut got = p.create_on.clone();
            got.sort();
            assert_eq!(got, *want, "{what}");
            assert_eq!(p.counts.desired as usize, want.len(), "{what}");
        }
    }

    #[test]
    fn pods_leave_nodes_that_no_longer_match_or_are_gone() {
        let d = ds(json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}}));
        let h = template_hash(&d);
        let nodes = [
            node("ssd", json!({"disk": "ssd"}), json!([])),
            plain("plain"),
            node(
                "evicting",
                json!({"disk": "ssd"}),
                json!([{"key": "k", "effect": "NoExecute"}]),
            ),
            // NoSchedule alone lets a pod already there stay.
            node(
                "closed",
                json!({"disk": "ssd"}),
                json!([{"key": "k", "effect": "NoSchedule"}]),
            ),
        ];
        let pods = [
            pod("on-ssd", "ssd", 1, &h, true),
            pod("on-plain", "plain", 2, &h, true),
            pod("on-evicting", "evicting", 3, &h, true),
            pod("on-closed", "closed", 4, &h, true),
            pod("on-gone", "gone", 5, &h, true),
            pod("unbound", "", 6, &h, false),
        ];
        let p = plan(&d, &nodes, &pods, &h, now());
        let mut deleted = names(&p.delete);
        deleted.sort();
        assert_eq!(deleted, ["on-evicting", "on-gone", "on-plain", "unbound"]);
        assert!(p.create_on.is_empty());
        assert_eq!(p.counts.desired, 1);
        assert_eq!(p.counts.misscheduled, 3);
    }

    #[test]
    fn extra_pods_go_oldest_stays_and_failed_or_terminating_ones_block_a_create() {
        let d = ds(json!({}));
        let h = template_hash(&d);
        let nodes = [plain("n1"), plain("n2"), plain("n3")];
        let failed = with(&pod("failed", "n2", 1, &h, false), |p| {
            p.status.as_mut().unwrap().phase = Some("Failed".into());
        });
        let terminating = with(&pod("terminating", "n3", 1, &h, true), |p| {
            p.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            );
        });
        let pods = [
            pod("new", "n1", 9, &h, true),
            pod("old", "n1", 1, &h, true),
            failed,
            terminating,
        ];
        let p = plan(&d, &nodes, &pods, &h, now());
        assert_eq!(names(&p.delete), ["new", "failed"]);
        // Their replacements come once they are gone.
        assert!(p.create_on.is_empty(), "{:?}", p.create_on);
    }

    #[test]
    fn a_rolling_update_replaces_at_most_max_unavailable_at_a_time() {
        let d = ds(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}}));
        let h = template_hash(&d);
        let nodes: Vec<Arc<Node>> = (1..=5).map(|i| plain(&format!("n{i}"))).collect();
        // (pods, deleted): each pod is (node, template, ready) where the
        // template is "new" or "old".
        type Case<'a> = (&'a [(&'a str, &'a str, bool)], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            // All old and available: two go.
            (
                &[
                    ("n1", "old", true),
                    ("n2", "old", true),
                    ("n3", "old", true),
                    ("n4", "old", true),
                    ("n5", "old", true),
                ],
                &["n1", "n2"],
            ),
            // One node has no pod yet (its replacement is coming): one more.
            (
                &[
                    ("n2", "old", true),
                    ("n3", "old", true),
                    ("n4", "old", true),
                    ("n5", "old", true),
                ],
                &["n2"],
            ),
            // Two new pods not yet available: none.
            (
                &[
                    ("n1", "new", false),
                    ("n2", "new", false),
                    ("n3", "old", true),
                    ("n4", "old", true),
                    ("n5", "old", true),
                ],
                &[],
            ),
            // An old pod already unavailable goes at once, budget or not.
            (
                &[
                    ("n1", "new", false),
                    ("n2", "new", false),
                    ("n3", "old", false),
                    ("n4", "old", true),
                    ("n5", "old", true),
                ],
                &["n3"],
            ),
            // Done.
            (
                &[
                    ("n1", "new", true),
                    ("n2", "new", true),
                    ("n3", "new", true),
                    ("n4", "new", true),
                    ("n5", "new", true),
                ],
                &[],
            ),
        ];
        for (i, (state, want)) in cases.iter().enumerate() {
            let pods: Vec<Arc<Pod>> = state
                .iter()
                .map(|(n, t, ready)| {
                    let hash = if *t == "new" { h.as_str() } else { "old-hash" };
                    pod(&format!("{t}-{n}"), n, 1, hash, *ready)
                })
                .collect();
            let p = plan(&d, &nodes, &pods, &h, now());
            let deleted: Vec<String> = p
                .delete
                .iter()
                .map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap())
                .collect();
            assert_eq!(deleted, *want, "case {i}");
        }
    }

    #[test]
    fn on_delete_and_percentages() {
        let h = "new";
        let nodes: Vec<Arc<Node>> = (1..=4).map(|i| plain(&format!("n{i}"))).collect();
        let pods: Vec<Arc<Pod>> = (1..=4)
            .map(|i| pod(&format!("p{i}"), &format!("n{i}"), 1, "old", true))
            .collect();
        let on_delete =
            ds(json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}}));
        assert!(plan(&on_delete, &nodes, &pods, h, now()).delete.is_empty());
        // 30% of 4 nodes, rounded up: 2.
        let percent =
            ds(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": "30%"}}}}));
        assert_eq!(plan(&percent, &nodes, &pods, h, now()).delete.len(), 2);
        let p = plan(&percent, &nodes, &pods, h, now());
        assert_eq!(p.counts.updated, 0);
    }

    #[test]
    fn min_ready_seconds_delays_availability() {
        let d = ds(json!({"spec": {"minReadySeconds": 600}}));
        let h = template_hash(&d);
        // Ready since second 1, now is second 1000: available.
        let p = plan(
            &d,
            &[plain("n1")],
            &[pod("a", "n1", 1, &h, true)],
            &h,
            now(),
        );
        assert_eq!((p.counts.ready, p.counts.available), (1, 1));
        let late = plan(
            &d,
            &[plain("n1")],
            &[pod("a", "n1", 900, &h, true)],
            &h,
            now(),
        );
        assert_eq!((late.counts.ready, late.counts.available), (1, 0));
        assert!(late.waiting_available);
    }

    #[test]
    fn the_template_hash_follows_the_template_only() {
        let a = ds(json!({}));
        let b = ds(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 3}}}}));
        let c = ds(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        );
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_ne!(template_hash(&a), template_hash(&c));
        assert_eq!(template_hash(&a).len(), 10);
    }

    #[test]
    fn tolerations_match_as_kubernetes_matches_them() {
        let taint = |key: &str, value: Option<&str>, effect: &str| Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        };
        let t = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
        let k = taint("k", Some("v"), "NoSchedule");
        assert!(tolerates(&t(json!({"key": "k", "value": "v"})), &k));
        assert!(tolerates(
            &t(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})),
            &k
        ));
        assert!(tolerates(&t(json!({"operator": "Exists"})), &k));
        assert!(!tolerates(&t(json!({"key": "k", "value": "w"})), &k));
        assert!(!tolerates(
            &t(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})),
            &k
        ));
        assert!(!tolerates(&t(json!({"value": "v"})), &k));
    }

    fn context(client: Client, pods: &[Arc<Pod>], nodes: &[Arc<Node>]) -> Arc<Context> {
        // The poster is not run: events stay queued, out of the request log.
        let (recorder, _poster) = Recorder::new(client.clone(), 100, 1);
        Arc::new(Context {
            client,
            pods: crate::testing::store(pods.iter().map(|p| (**p).clone())),
            nodes: crate::testing::store(nodes.iter().map(|n| (**n).clone())),
            config: Config::default(),
            recorder,
            expectations: Expectations::default(),
        })
    }

    #[tokio::test]
    async fn reconcile_creates_bound_labelled_tolerating_pods_once() {
        let (client, api) = crate::testing::ApiServer::client();
        let d = Arc::new(ds(json!({})));
        let h = template_hash(&d);
        let ctx = context(
            client,
            &[pod("a", "n1", 1, &h, true)],
            &[plain("n1"), plain("n2")],
        );
        let action = reconcile(d.clone(), ctx.clone()).await.unwrap();
        assert_eq!(
            api.lines(),
            [
                "POST /api/v1/namespaces/default/pods",
                "PATCH /apis/apps/v1/namespaces/default/daemonsets/agent/status"
            ]
        );
        let created = &api.requests()[0].body;
        assert_eq!(created["metadata"]["generateName"], "agent-");
        assert_eq!(created["spec"]["nodeName"], "n2");
        assert_eq!(created["metadata"]["labels"][HASH_LABEL], h.as_str());
        assert_eq!(created["metadata"]["labels"][GENERATION_LABEL], "1");
        assert_eq!(
            created["metadata"]["ownerReferences"][0]["kind"],
            "DaemonSet"
        );
        assert_eq!(
            created["metadata"]["ownerReferences"][0]["controller"],
            true
        );
        let tolerations = created["spec"]["tolerations"].as_array().unwrap();
        assert!(tolerations.iter().any(|t| t["key"] == TAINT_UNREACHABLE
            && t["effect"] == "NoExecute"
            && t["tolerationSeconds"].is_null()));
        let status = &api.requests()[1].body["status"];
        assert_eq!(status["desiredNumberScheduled"], 2);
        assert_eq!(status["currentNumberScheduled"], 1);
        assert_eq!(status["numberUnavailable"], 1);
        assert_eq!(action, Action::requeue(Duration::from_secs(1)));
        // The create is expected: not made again before the cache shows it.
        reconcile(d, ctx).await.unwrap();
        assert_eq!(
            api.lines().iter().filter(|l| l.starts_with("POST")).count(),
            1
        );
    }

    #[tokio::test]
    async fn reconcile_deletes_exactly_the_pod_planned_and_adopts_orphans() {
        let (client, api) = crate::testing::ApiServer::client();
        let d = Arc::new(ds(json!({})));
        let h = template_hash(&d);
        let orphan = with(&pod("orphan", "n2", 1, &h, true), |p| {
            p.metadata.owner_references = None;
            p.metadata.resource_version = Some("7".into());
        });
        let ctx = context(
            client,
            &[
                pod("gone", "n9", 1, &h, true),
                pod("a", "n1", 1, &h, true),
                orphan,
            ],
            &[plain("n1"), plain("n2")],
        );
        reconcile(d.clone(), ctx.clone()).await.unwrap();
        let lines = api.lines();
        assert!(
            lines.contains(&"PATCH /api/v1/namespaces/default/pods/orphan".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"DELETE /api/v1/namespaces/default/pods/gone".to_string()),
            "{lines:?}"
        );
        assert!(!lines.iter().any(|l| l.starts_with("POST")), "{lines:?}");
        let delete = api
            .requests()
            .into_iter()
            .find(|r| r.method == http::Method::DELETE)
            .unwrap();
        assert_eq!(delete.body["preconditions"]["uid"], "gone-uid");
    }
}
