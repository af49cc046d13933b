//! The replication manager: keeps the number of active pods matching each
//! replication controller's selector equal to `spec.replicas`.
//!
//! `reconcile` is level-triggered: it counts the active pods (not finished,
//! not being deleted) that match the selector and are owned by the RC or
//! orphans (which it adopts), and creates or deletes the difference. What
//! it has asked for but not yet seen in the pod cache (expectations: the
//! names it created, the names it deleted) counts as done, so it never
//! overshoots. Pods it owns whose labels stop matching are released (their
//! owner reference removed). It then writes `status` when that changed.
//!
//! The apiserver does no cascading deletion, so the shared garbage
//! collector of owned pods (`ownership::collect_garbage`) deletes pods
//! whose controller owner reference names a replication controller that no
//! longer exists. It also finishes deletes that asked for another
//! propagation: an RC held by the `orphan` finalizer has the owner
//! reference removed from its pods, one held by `foregroundDeletion` has its
//! pods deleted, and then the finalizer is removed (which lets the RC go).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use client_util::{CacheIndex, Reflected, StopFlag};
use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::object_memo::ObjectMemo;
use crate::ownership::{self, delete_only, owner_reference, Expectations, Relation};
use crate::{finished, pod_ready, Config, Error, Result};

/// What `reconcile` needs.
pub struct Context {
    client: Client,
    /// The pod cache by controller ([`ownership::controller_key`]).
    pods: CacheIndex<Pod>,
    config: Config,
    /// Pod names each RC (by `ns/name`) created or deleted and has not yet
    /// seen reflected.
    expectations: Expectations,
    /// What each RC (by `ns/name`) made of its pods on its last pass.
    verdicts: Verdicts,
}

/// Runs the replication manager and its garbage collector until `stop`.
pub async fn run(
    client: Client,
    config: Config,
    pods: Reflected<Pod>,
    by_controller: CacheIndex<Pod>,
    stop: StopFlag,
) {
    let rcs: Api<ReplicationController> = Api::all(client.clone());
    let trigger = client_util::batched_changes(pods.changes.clone(), crate::CHANGES_BATCH);
    let controller = Controller::new(rcs, watcher::Config::default())
        .reconcile_all_on(trigger)
        .graceful_shutdown_on({
            let stop = stop.clone();
            async move { stop.stopped().await }
        });
    let rc_store = controller.store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: by_controller.clone(),
        config,
        expectations: Expectations::default(),
        verdicts: Verdicts::default(),
    });
    let controller = controller
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "replication reconcile");
            }
        });
    let gc =
        ownership::collect_garbage(client, rc_store.clone(), pods, by_controller, stop.clone());
    let forget = ownership::forget_gone(&rc_store, key, &stop, |live| {
        ctx.expectations.retain(live);
        ctx.verdicts.retain(live);
    });
    tokio::join!(controller, gc, forget);
}

/// An RC's key in the expectations: `ns/name`.
fn key(rc: &ReplicationController) -> String {
    format!("{}/{}", rc.namespace().unwrap_or_default(), rc.name_any())
}

fn error_policy(_rc: Arc<ReplicationController>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "replication controller sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// The RC's selector: `spec.selector`, else the template's labels.
fn selector(rc: &ReplicationController) -> BTreeMap<String, String> {
    let spec = rc.spec.as_ref();
    spec.and_then(|s| s.selector.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            spec.and_then(|s| s.template.as_ref())
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
        })
        .unwrap_or_default()
}

fn matches(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Deletion order: unscheduled first, then pending, then not ready, then
/// the newest.
fn deletion_rank(pod: &Pod) -> (bool, u8, bool, std::cmp::Reverse<Option<jiff::Timestamp>>) {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        _ => 2,
    };
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (scheduled, phase, pod_ready(pod), std::cmp::Reverse(created))
}

/// What an RC counts in its status: its active pods, and how many of them
/// are ready and carry all of its template's labels.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    replicas: usize,
    ready: usize,
    fully_labeled: usize,
}

impl Counts {
    fn add(&mut self, pod: Verdict) {
        self.replicas += 1;
        self.ready += usize::from(pod.ready);
        self.fully_labeled += usize::from(pod.fully_labeled);
    }
}

/// What an RC makes of one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    relation: Relation,
    /// Counted (`Owned`) and ready.
    ready: bool,
    /// Counted and carrying all of the template's labels.
    fully_labeled: bool,
}

/// What an RC is to each of its claimable pods: its namespace, uid and
/// selector, and the labels it gives the pods it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claimer {
    namespace: String,
    uid: String,
    selector: BTreeMap<String, String>,
    template_labels: BTreeMap<String, String>,
}

impl Claimer {
    fn of(rc: &ReplicationController) -> Self {
        Self {
            namespace: rc.namespace().unwrap_or_default(),
            uid: rc.uid().unwrap_or_default(),
            selector: selector(rc),
            template_labels: template_labels(rc),
        }
    }

    /// Finished pods and pods being deleted are nothing to it: they neither
    /// count towards `spec.replicas` nor get adopted or released. Nor are
    /// pods of another namespace, whatever their controller reference says.
    fn relation(&self, pod: &Pod) -> Relation {
        if finished(pod)
            || pod.metadata.deletion_timestamp.is_some()
            || pod.metadata.namespace.as_deref() != Some(&self.namespace)
        {
            return Relation::Unrelated;
        }
        ownership::relation(&self.uid, matches(&self.selector, pod), pod)
    }

    fn verdict(&self, pod: &Pod) -> Verdict {
        match self.relation(pod) {
            Relation::Owned => self.counted(pod),
            relation => Verdict {
                relation,
                ready: false,
                fully_labeled: false,
            },
        }
    }

    /// `pod` as one of the pods the RC counts.
    fn counted(&self, pod: &Pod) -> Verdict {
        let labels = pod.metadata.labels.as_ref();
        Verdict {
            relation: Relation::Owned,
            ready: pod_ready(pod),
            fully_labeled: self
                .template_labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)),
        }
    }

    /// Sorts `pods` by what the RC does with them, in one pass, judging
    /// only the pods `memo` has not seen in this version; clones only the
    /// orphans and strays (rare).
    fn classify(
        &self,
        pods: &mut dyn Iterator<Item = &Arc<Pod>>,
        memo: &mut ObjectMemo<Pod, Verdict>,
    ) -> Classified {
        let mut out = Classified::default();
        memo.begin();
        for pod in pods {
            let verdict = memo.decision(pod, |pod| self.verdict(pod));
            match verdict.relation {
                Relation::Owned => out.active.add(verdict),
                Relation::Orphan => out.orphans.push(pod.clone()),
                Relation::Stray => out.strays.push(pod.clone()),
                Relation::Unrelated => {}
            }
        }
        memo.end();
        out
    }

    /// The pods of `pods` the RC counts: what a delete chooses from.
    fn active(&self, pods: &mut dyn Iterator<Item = &Arc<Pod>>) -> Vec<Arc<Pod>> {
        pods.filter(|pod| self.relation(pod) == Relation::Owned)
            .cloned()
            .collect()
    }
}

/// Each RC's verdicts on its pods from its last pass, for the claimer it
/// was then ([`ObjectMemo`]: a pass judges only the pods the cache
/// replaced since). A reconcile takes its RC's out and puts them back
/// (kube's `Controller` never runs two reconciles of one RC at once).
#[derive(Default)]
struct Verdicts(std::sync::Mutex<HashMap<String, RcVerdicts>>);

/// An RC's verdicts, and the claimer they were made for.
type RcVerdicts = (Claimer, ObjectMemo<Pod, Verdict>);

impl Verdicts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RcVerdicts>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The RC's memo if it was made for `claimer`, else an empty one (a new
    /// selector or template, or a new RC of the same name).
    fn take(&self, rc_key: &str, claimer: &Claimer) -> ObjectMemo<Pod, Verdict> {
        match self.lock().remove(rc_key) {
            Some((made_for, memo)) if made_for == *claimer => memo,
            _ => ObjectMemo::default(),
        }
    }

    fn put(&self, rc_key: String, claimer: Claimer, memo: ObjectMemo<Pod, Verdict>) {
        self.lock().insert(rc_key, (claimer, memo));
    }

    /// Forgets the RCs not in `live`.
    fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|k, _| live.contains(k));
    }
}

/// An RC's claimable pods, sorted by what it does with them.
#[derive(Debug, Default)]
struct Classified {
    /// Matching and controlled by the RC: the pods it counts.
    active: Counts,
    /// Matching and controlled by no one: to adopt.
    orphans: Vec<Arc<Pod>>,
    /// Controlled by the RC but no longer matching: to release.
    strays: Vec<Arc<Pod>>,
}

/// What one sync does about the number of pods.
#[derive(Debug)]
enum Scale {
    /// The count is right (or will be once what was asked shows up).
    Hold,
    /// Create this many pods.
    Create(usize),
    /// Delete these pods.
    Delete(Vec<Arc<Pod>>),
}

/// Compares the `active` pods, plus creates and minus deletes asked for
/// but not yet seen, with `want`; at most `burst` pods either way. Victims
/// are taken from `active_pods()` (read only then) in [`deletion_rank`]
/// order, never one already being deleted.
fn scale(
    active: usize,
    want: usize,
    pending_creates: usize,
    pending_deletes: &HashSet<String>,
    burst: usize,
    active_pods: impl FnOnce() -> Vec<Arc<Pod>>,
) -> Scale {
    let effective = (active + pending_creates).saturating_sub(pending_deletes.len());
    if effective < want {
        Scale::Create((want - effective).min(burst))
    } else if effective > want {
        let n = (effective - want).min(burst);
        let mut victims = active_pods();
        victims.retain(|p| !pending_deletes.contains(&p.name_any()));
        victims.sort_by_key(|p| deletion_rank(p));
        victims.truncate(n);
        Scale::Delete(victims)
    } else {
        Scale::Hold
    }
}

/// Makes the number of active pods of `rc` equal `spec.replicas`, adopting
/// orphans, then writes the status if it changed.
///
/// # Errors
///
/// [`Error::Api`] when a status write fails (retryable); failed creates and
/// deletes are logged and retried on the next pass.
pub async fn reconcile(rc: Arc<ReplicationController>, ctx: Arc<Context>) -> Result<Action> {
    if rc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rc.namespace().unwrap_or_default();
    let uid = rc.uid().unwrap_or_default();
    let rc_key = key(&rc);
    let want = rc
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let claimer = Claimer::of(&rc);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);

    // The pods this RC may claim, and the expectations (what we did that
    // the cache does not show yet), read from one state of the cache, in
    // place, and let go before any request: a reconcile that held its own
    // copy of every pod across its creates kept every replaced version of
    // every pod alive (once per RC reconciling at the time). Its own and
    // the orphans alone: reading every pod of the namespace, for every RC
    // on every batch of changes, was a fifth of the machine at 10,000 pods
    // in 10 RCs.
    let mut memo = ctx.verdicts.take(&rc_key, &claimer);
    let (classified, pending_creates, pending_deletes) = {
        let view = ctx.pods.view();
        let cached = |name: &str| view.object(&ObjectRef::new(name).within(&ns));
        let (pending_creates, pending_deletes) = ctx.expectations.pending(
            &rc_key,
            |n| cached(n).is_some(),
            |n| !cached(n).is_some_and(|p| p.metadata.deletion_timestamp.is_none() && !finished(p)),
        );
        let classified = claimer.classify(&mut ownership::claimable(&view, &ns, &uid), &mut memo);
        (classified, pending_creates, pending_deletes)
    };
    ctx.verdicts.put(rc_key.clone(), claimer.clone(), memo);
    let Classified {
        mut active,
        orphans,
        strays,
    } = classified;
    let mut adopted = Vec::new();
    for orphan in orphans {
        if ownership::adopt(&pod_api, rc.as_ref(), &orphan).await {
            active.add(claimer.counted(&orphan));
            adopted.push(orphan);
        }
    }
    for stray in strays {
        ownership::release(&pod_api, &uid, &stray, "its labels no longer match").await;
    }

    let active_pods = || {
        let mut pods = claimer.active(&mut ownership::claimable(&ctx.pods.view(), &ns, &uid));
        // Adopted just now: the cache may not show them as ours yet.
        for orphan in &adopted {
            if !pods.iter().any(|p| p.metadata.name == orphan.metadata.name) {
                pods.push(orphan.clone());
            }
        }
        pods
    };
    match scale(
        active.replicas,
        want,
        pending_creates.len(),
        &pending_deletes,
        ctx.config.burst_replicas,
        active_pods,
    ) {
        Scale::Hold => {}
        Scale::Create(n) => create_pods(&ctx, &rc, &rc_key, &pod_api, n).await,
        Scale::Delete(victims) => delete_pods(&ctx, &rc_key, &pod_api, victims).await,
    }

    write_status(&ctx, &rc, active).await?;
    Ok(if ctx.expectations.waiting(&rc_key) {
        Action::requeue(Duration::from_secs(1))
    } else {
        Action::requeue(ctx.config.resync)
    })
}

/// The labels the RC's template gives its pods.
fn template_labels(rc: &ReplicationController) -> BTreeMap<String, String> {
    rc.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

async fn create_pods(
    ctx: &Context,
    rc: &ReplicationController,
    rc_key: &str,
    api: &Api<Pod>,
    n: usize,
) {
    let template = rc
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let base = rc.name_any();
    let pods: Vec<Pod> = (0..n)
        .map(|_| {
            let mut metadata = template.metadata.clone().unwrap_or_default();
            metadata.name = Some(api_types::validation::generated_name(
                &format!("{base}-"),
                *uuid::Uuid::new_v4().as_bytes(),
            ));
            metadata.generate_name = None;
            metadata.namespace = rc.namespace();
            metadata.owner_references = Some(vec![owner_reference(rc)]);
            Pod {
                metadata,
                spec: template.spec.clone(),
                status: None,
            }
        })
        .collect();
    ctx.expectations
        .expect(rc_key, pods.iter().map(ResourceExt::name_any), []);
    tracing::info!(rc = %rc_key, count = n, "creating pods");
    let failed: Vec<String> = stream::iter(pods)
        .map(|pod| async move {
            let name = pod.name_any();
            match api.create(&PostParams::default(), &pod).await {
                Ok(_) => None,
                Err(error) => {
                    tracing::warn!(rc = %rc_key, pod = %name, %error, "creating a pod failed");
                    Some(name)
                }
            }
        })
        .buffer_unordered(16)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    ctx.expectations.forget(rc_key, &failed, &[]);
}

async fn delete_pods(ctx: &Context, rc_key: &str, api: &Api<Pod>, victims: Vec<Arc<Pod>>) {
    ctx.expectations
        .expect(rc_key, [], victims.iter().map(|p| p.name_any()));
    tracing::info!(rc = %rc_key, count = victims.len(), "deleting pods");
    let failed: Vec<String> = stream::iter(victims)
        .map(|pod| async move {
            let name = pod.name_any();
            match api.delete(&name, &delete_only(&pod)).await {
                Ok(_) => None,
                Err(kube::Error::Api(s)) if s.code == 404 => None,
                Err(error) => {
                    tracing::warn!(rc = %rc_key, pod = %name, %error, "deleting a pod failed");
                    Some(name)
                }
            }
        })
        .buffer_unordered(16)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    ctx.expectations.forget(rc_key, &[], &failed);
}

/// The status patch `rc` needs given what its active pods count; `None`
/// when its status already says so.
fn status_patch(rc: &ReplicationController, active: Counts) -> Option<serde_json::Value> {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let (replicas, ready, fully_labeled) = (
        count(active.replicas),
        count(active.ready),
        count(active.fully_labeled),
    );
    let generation = rc.meta().generation;
    let status = rc.status.clone().unwrap_or_default();
    let same = status.replicas == replicas
        && status.ready_replicas.unwrap_or(0) == ready
        && status.available_replicas.unwrap_or(0) == ready
        && status.fully_labeled_replicas.unwrap_or(0) == fully_labeled
        && status.observed_generation == generation;
    (!same).then(|| {
        json!({"status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "fullyLabeledReplicas": fully_labeled,
            "observedGeneration": generation,
        }})
    })
}

async fn write_status(ctx: &Context, rc: &ReplicationController, active: Counts) -> Result<()> {
    let Some(patch) = status_patch(rc, active) else {
        return Ok(());
    };
    let api: Api<ReplicationController> =
        Api::namespaced(ctx.client.clone(), &rc.namespace().unwrap_or_default());
    api.patch_status(
        &rc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(Error::Api)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const RC_UID: &str = "rc-uid";

    fn rc(replicas: i32, status: serde_json::Value) -> ReplicationController {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": RC_UID, "generation": 1},
            "spec": {"replicas": replicas, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": status,
        }))
        .unwrap()
    }

    fn settled(replicas: i32, ready: i32) -> serde_json::Value {
        json!({"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
            "fullyLabeledReplicas": replicas, "observedGeneration": 1})
    }

    /// A pod of `web` created at second `created`; `node` empty for an
    /// unscheduled one.
    fn pod(name: &str, created: i64, node: &str, phase: &str, ready: bool) -> Arc<Pod> {
        let created = jiff::Timestamp::from_second(1_700_000_000 + created).unwrap();
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
                "labels": {"app": "web"}, "creationTimestamp": created.to_string(),
                "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
                    "name": "web", "uid": RC_UID, "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase,
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap();
        if !node.is_empty() {
            pod.spec.as_mut().unwrap().node_name = Some(node.into());
        }
        Arc::new(pod)
    }

    fn running(name: &str, created: i64) -> Arc<Pod> {
        pod(name, created, "minion-1", "Running", true)
    }

    fn plan(rc: &ReplicationController, pods: &[Arc<Pod>]) -> (Classified, Scale) {
        let claimer = Claimer::of(rc);
        let classified = claimer.classify(&mut pods.iter(), &mut ObjectMemo::default());
        let want = rc.spec.as_ref().unwrap().replicas.unwrap() as usize;
        let scale = scale(
            classified.active.replicas,
            want,
            0,
            &HashSet::new(),
            500,
            || claimer.active(&mut pods.iter()),
        );
        (classified, scale)
    }

    /// The names of the pods `rc` counts among `pods`.
    fn active_names(rc: &ReplicationController, pods: &[Arc<Pod>]) -> Vec<String> {
        names(&Claimer::of(rc).active(&mut pods.iter()))
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn converged_state_does_nothing() {
        let rc = rc(2, settled(2, 2));
        let pods = [running("a", 1), running("b", 2)];
        let (classified, scale) = plan(&rc, &pods);
        assert!(matches!(scale, Scale::Hold), "{scale:?}");
        assert!(classified.orphans.is_empty() && classified.strays.is_empty());
        assert_eq!(status_patch(&rc, classified.active), None);
    }

    #[test]
    fn one_pod_too_few_creates_one() {
        let rc = rc(3, settled(3, 3));
        let (classified, scale) = plan(&rc, &[running("a", 1), running("b", 2)]);
        assert!(matches!(scale, Scale::Create(1)), "{scale:?}");
        let patch = status_patch(&rc, classified.active).expect("status is behind");
        assert_eq!(patch["status"]["replicas"], 2);
    }

    #[test]
    fn one_pod_too_many_deletes_the_newest_of_equals() {
        let rc = rc(2, settled(3, 3));
        let (_, scale) = plan(&rc, &[running("a", 1), running("c", 3), running("b", 2)]);
        let Scale::Delete(victims) = scale else {
            panic!("{scale:?}")
        };
        assert_eq!(names(&victims), ["c"]);
    }

    #[test]
    fn the_victim_is_unscheduled_before_pending_before_not_ready_before_ready() {
        let rc = rc(1, settled(5, 2));
        let ready_old = running("ready-old", 1);
        let ready_new = running("ready-new", 9);
        let not_ready = pod("not-ready", 2, "minion-1", "Running", false);
        let pending = pod("pending", 3, "minion-1", "Pending", false);
        let unscheduled = pod("unscheduled", 4, "", "Pending", false);
        let all = [
            ready_old.clone(),
            ready_new.clone(),
            not_ready.clone(),
            pending.clone(),
            unscheduled.clone(),
        ];
        for (keep, victim) in [
            (4, "unscheduled"),
            (3, "pending"),
            (2, "not-ready"),
            (1, "ready-new"),
        ] {
            let rc = self::rc(keep, settled(5, 2));
            let (_, scale) = plan(&rc, &all);
            let Scale::Delete(victims) = scale else {
                panic!("{scale:?}")
            };
            assert_eq!(victims.len(), 5 - keep as usize);
            assert_eq!(victims.last().unwrap().name_any(), victim, "keeping {keep}");
        }
        let (_, scale) = plan(&rc, &all);
        let Scale::Delete(victims) = scale else {
            panic!("{scale:?}")
        };
        assert_eq!(
            names(&victims),
            ["unscheduled", "pending", "not-ready", "ready-new"]
        );
    }

    #[test]
    fn terminating_and_finished_pods_are_not_counted() {
        let rc = rc(2, settled(2, 2));
        let mut terminating = (*running("terminating", 2)).clone();
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let done = pod("done", 3, "minion-1", "Succeeded", false);
        let failed = pod("failed", 4, "minion-1", "Failed", false);
        let pods = [running("a", 1), Arc::new(terminating), done, failed];
        let (classified, scale) = plan(&rc, &pods);
        assert_eq!(classified.active.replicas, 1);
        assert_eq!(active_names(&rc, &pods), ["a"]);
        assert!(matches!(scale, Scale::Create(1)), "{scale:?}");
    }

    #[test]
    fn orphans_are_adopted_and_strays_released_and_others_ignored() {
        let rc = rc(2, settled(2, 2));
        let mut orphan = (*running("orphan", 1)).clone();
        orphan.metadata.owner_references = None;
        let mut stray = (*running("stray", 2)).clone();
        stray.metadata.labels = Some([("app".into(), "other".into())].into());
        let mut theirs = (*running("theirs", 3)).clone();
        theirs.metadata.owner_references.as_mut().unwrap()[0].uid = "other-rc".into();
        let mut unlabelled = (*running("unlabelled", 4)).clone();
        unlabelled.metadata.owner_references = None;
        unlabelled.metadata.labels = None;
        let pods = [
            running("a", 0),
            Arc::new(orphan),
            Arc::new(stray),
            Arc::new(theirs),
            Arc::new(unlabelled),
        ];
        let classified = Claimer::of(&rc).classify(&mut pods.iter(), &mut ObjectMemo::default());
        assert_eq!(classified.active.replicas, 1);
        assert_eq!(active_names(&rc, &pods), ["a"]);
        assert_eq!(names(&classified.orphans), ["orphan"]);
        assert_eq!(names(&classified.strays), ["stray"]);
    }

    #[test]
    fn what_was_asked_but_not_yet_seen_counts_as_done() {
        let pods = [running("a", 1), running("b", 2), running("c", 3)];
        // Three seen, one create in flight: four, as wanted.
        assert!(matches!(
            scale(pods.len(), 4, 1, &HashSet::new(), 500, || pods.to_vec()),
            Scale::Hold
        ));
        // Three seen, "c" being deleted: two, as wanted.
        let deleting: HashSet<String> = ["c".to_string()].into();
        assert!(matches!(
            scale(pods.len(), 2, 0, &deleting, 500, || pods.to_vec()),
            Scale::Hold
        ));
        // One more to delete: never "c" again, though it ranks first.
        let Scale::Delete(victims) = scale(pods.len(), 1, 0, &deleting, 500, || pods.to_vec())
        else {
            panic!("expected a delete")
        };
        assert_eq!(names(&victims), ["b"]);
    }

    #[test]
    fn one_sync_creates_or_deletes_at_most_a_burst() {
        assert!(matches!(
            scale(0, 10, 0, &HashSet::new(), 3, Vec::new),
            Scale::Create(3)
        ));
        let pods: Vec<Arc<Pod>> = (0..10).map(|i| running(&format!("p{i}"), i)).collect();
        let Scale::Delete(victims) = scale(pods.len(), 0, 0, &HashSet::new(), 3, || pods.to_vec())
        else {
            panic!("expected a delete")
        };
        assert_eq!(victims.len(), 3);
    }

    #[test]
    fn the_status_is_written_only_when_it_changed() {
        let pods = [running("a", 1), pod("b", 2, "minion-1", "Running", false)];
        let counts = Claimer::of(&rc(2, settled(2, 1)))
            .classify(&mut pods.iter(), &mut ObjectMemo::default())
            .active;
        assert_eq!(
            counts,
            Counts {
                replicas: 2,
                ready: 1,
                fully_labeled: 2
            }
        );
        assert_eq!(status_patch(&rc(2, settled(2, 1)), counts), None);
        let patch = status_patch(&rc(2, settled(2, 2)), counts).expect("one pod went unready");
        assert_eq!(patch["status"]["readyReplicas"], 1);
        assert_eq!(patch["status"]["availableReplicas"], 1);
        let mut newer = rc(2, settled(2, 1));
        newer.metadata.generation = Some(2);
        let patch = status_patch(&newer, counts).expect("a new generation is observed");
        assert_eq!(patch["status"]["observedGeneration"], 2);
    }

    /// A pass judges again only the pods the cache replaced, and an RC
    /// whose selector or template changed, or a new RC of the same name,
    /// starts from no verdicts.
    #[test]
    fn verdicts_hold_for_the_same_pod_versions_and_the_same_rc() {
        let verdicts = Verdicts::default();
        let rc = rc(2, settled(2, 1));
        let claimer = Claimer::of(&rc);
        let a = running("a", 1);
        let b = pod("b", 2, "minion-1", "Running", false);
        let mut memo = verdicts.take("default/web", &claimer);
        let first = claimer.classify(&mut [a.clone(), b.clone()].iter(), &mut memo);
        assert_eq!(first.active.ready, 1);
        verdicts.put("default/web".into(), claimer.clone(), memo);

        // b turns ready: the cache holds a new version of it.
        let b_ready = running("b", 2);
        let mut memo = verdicts.take("default/web", &claimer);
        assert_eq!(memo.len(), 2);
        let second = claimer.classify(&mut [a.clone(), b_ready.clone()].iter(), &mut memo);
        assert_eq!(second.active.ready, 2);
        assert_eq!(memo.len(), 2, "the old b is forgotten");
        verdicts.put("default/web".into(), claimer.clone(), memo);

        // A new selector: b's labels no longer match, so b is a stray.
        let mut changed = rc.clone();
        let spec = changed.spec.as_mut().unwrap();
        spec.selector = Some(
            [
                ("app".to_string(), "web".to_string()),
                ("tier".to_string(), "x".to_string()),
            ]
            .into(),
        );
        let changed = Claimer::of(&changed);
        let mut memo = verdicts.take("default/web", &changed);
        assert_eq!(memo.len(), 0);
        let third = changed.classify(&mut [a, b_ready].iter(), &mut memo);
        assert_eq!(third.active.replicas, 0);
        assert_eq!(names(&third.strays), ["a", "b"]);

        verdicts.put("default/web".into(), changed, memo);
        verdicts.retain(&HashSet::new());
        assert!(verdicts.lock().is_empty());
    }

    fn context(client: Client, pods: &[Arc<Pod>]) -> Arc<Context> {
        Arc::new(Context {
            client,
            pods: CacheIndex::new(
                crate::testing::store(pods.iter().map(|p| (**p).clone())),
                ownership::controller_key,
            ),
            config: Config::default(),
            expectations: Expectations::default(),
            verdicts: Verdicts::default(),
        })
    }

    /// A pod the RC does not own is not held while the RC writes: a
    /// reconcile that kept the cache's snapshot across its requests kept
    /// every pod replaced meanwhile alive, once per RC reconciling.
    #[tokio::test]
    async fn reconcile_holds_no_other_pod_while_it_writes() {
        let other: Pod = serde_json::from_value(json!({
            "metadata": {"name": "other", "namespace": "default", "uid": "other-uid",
                "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap();
        let cached: Arc<Mutex<Option<std::sync::Weak<Pod>>>> = Arc::default();
        let holders: Arc<Mutex<Vec<usize>>> = Arc::default();
        let (client, _api) = crate::testing::ApiServer::scripted({
            let (cached, holders) = (cached.clone(), holders.clone());
            move |_request| {
                if let Some(other) = cached.lock().unwrap().as_ref() {
                    holders.lock().unwrap().push(other.strong_count());
                }
                None
            }
        });
        let store = crate::testing::store([(*running("a", 1)).clone(), other]);
        let ctx = Arc::new(Context {
            client,
            pods: CacheIndex::new(store.clone(), ownership::controller_key),
            config: Config::default(),
            expectations: Expectations::default(),
            verdicts: Verdicts::default(),
        });
        let in_store = store
            .get(&kube::runtime::reflector::ObjectRef::new("other").within("default"))
            .unwrap();
        *cached.lock().unwrap() = Some(Arc::downgrade(&in_store));
        drop(in_store);
        // The store and its index share the one copy.
        let cache_only = cached.lock().unwrap().as_ref().unwrap().strong_count();
        assert_eq!(cache_only, 2);
        reconcile(Arc::new(rc(3, settled(1, 1))), ctx)
            .await
            .unwrap();
        let holders = holders.lock().unwrap().clone();
        // The two creates (the status is right), each seeing the cache
        // alone hold the pod.
        assert_eq!(holders, [cache_only, cache_only]);
    }

    #[tokio::test]
    async fn reconcile_of_a_converged_rc_sends_no_request() {
        let (client, api) = crate::testing::ApiServer::client();
        let ctx = context(client, &[running("a", 1), running("b", 2)]);
        let action = reconcile(Arc::new(rc(2, settled(2, 2))), ctx.clone())
            .await
            .unwrap();
        assert_eq!(api.lines(), Vec::<String>::new());
        assert_eq!(action, Action::requeue(ctx.config.resync));
    }

    /// The request line of a pod creation, as the fake apiserver logs it.
    const CREATE_POD: &str = "POST /api/v1/namespaces/default/pods";

    #[tokio::test(start_paused = true)]
    async fn reconcile_creates_a_missing_pod_once_until_the_expectation_expires() {
        let (client, api) = crate::testing::ApiServer::client();
        let ctx = context(client, &[running("a", 1), running("b", 2)]);
        let rc = Arc::new(rc(3, settled(2, 2)));
        let action = reconcile(rc.clone(), ctx.clone()).await.unwrap();
        assert_eq!(api.lines(), [CREATE_POD]);
        let created = &api.requests()[0].body;
        assert_eq!(created["metadata"]["labels"]["app"], "web");
        assert_eq!(created["metadata"]["ownerReferences"][0]["uid"], RC_UID);
        assert_eq!(
            created["metadata"]["ownerReferences"][0]["controller"],
            true
        );
        // Not yet in the cache: waiting for it, not creating another.
        assert_eq!(action, Action::requeue(Duration::from_secs(1)));
        reconcile(rc.clone(), ctx.clone()).await.unwrap();
        assert_eq!(api.requests().len(), 1);
        // A create never seen is given up after the TTL and made again.
        tokio::time::sleep(ownership::EXPECTATION_TTL + Duration::from_secs(1)).await;
        reconcile(rc, ctx).await.unwrap();
        assert_eq!(api.lines(), [CREATE_POD, CREATE_POD]);
    }

    #[tokio::test]
    async fn a_failed_create_is_not_expected_and_is_tried_again() {
        let (client, api) = crate::testing::ApiServer::scripted(|r| {
            (r.method == http::Method::POST).then(|| {
                (
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    crate::testing::status(
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalError",
                    ),
                )
            })
        });
        let ctx = context(client, &[running("a", 1)]);
        let rc = Arc::new(rc(2, settled(1, 1)));
        reconcile(rc.clone(), ctx.clone()).await.unwrap();
        reconcile(rc, ctx).await.unwrap();
        assert_eq!(api.lines(), [CREATE_POD, CREATE_POD]);
    }

    #[tokio::test]
    async fn reconcile_deletes_exactly_the_worst_ranked_pod() {
        let (client, api) = crate::testing::ApiServer::client();
        let pods = [
            running("a", 1),
            pod("pending", 2, "minion-1", "Pending", false),
            running("c", 3),
        ];
        let ctx = context(client, &pods);
        let rc = Arc::new(rc(2, settled(3, 2)));
        reconcile(rc.clone(), ctx.clone()).await.unwrap();
        let requests = api.requests();
        assert_eq!(
            api.lines(),
            ["DELETE /api/v1/namespaces/default/pods/pending"]
        );
        // Only this incarnation of the pod: a same-named successor is safe.
        assert_eq!(requests[0].body["preconditions"]["uid"], "pending-uid");
        // The delete in flight is not repeated on the next pass.
        reconcile(rc, ctx).await.unwrap();
        assert_eq!(api.requests().len(), 1);
    }

    #[tokio::test]
    async fn reconcile_adopts_an_orphan_and_counts_it() {
        let (client, api) = crate::testing::ApiServer::client();
        let mut orphan = (*running("orphan", 2)).clone();
        orphan.metadata.owner_references = None;
        orphan.metadata.resource_version = Some("42".into());
        let ctx = context(client, &[running("a", 1), Arc::new(orphan)]);
        reconcile(Arc::new(rc(2, settled(2, 2))), ctx)
            .await
            .unwrap();
        assert_eq!(
            api.lines(),
            ["PATCH /api/v1/namespaces/default/pods/orphan"]
        );
        let patch = &api.requests()[0].body["metadata"];
        assert_eq!(patch["ownerReferences"][0]["uid"], RC_UID);
        assert_eq!(patch["resourceVersion"], "42");
    }

    #[tokio::test]
    async fn reconcile_writes_a_changed_status() {
        let (client, api) = crate::testing::ApiServer::client();
        let ctx = context(client, &[running("a", 1), running("b", 2)]);
        reconcile(Arc::new(rc(2, settled(2, 1))), ctx)
            .await
            .unwrap();
        assert_eq!(
            api.lines(),
            ["PATCH /api/v1/namespaces/default/replicationcontrollers/web/status"]
        );
        assert_eq!(api.requests()[0].body["status"]["readyReplicas"], 2);
    }
}
