//! Pods owned by a controller (a replication controller, a DaemonSet):
//! the owner reference, adoption of orphans, release of strays, the
//! garbage collection of pods whose owner is gone, the `orphan` and
//! `foregroundDeletion` finalizers, and the expectations of creates and
//! deletes not yet seen in the cache. One copy for every controller of
//! pods, as Kubernetes' `ControllerRefManager`, `controller_utils`
//! expectations and garbage collector serve them all.
//!
//! The decisions are pure ([`relation`], [`adoption_patch`],
//! [`release_patch`], [`garbage`], [`propagation`]) and unit-tested; the
//! requests that carry them out are conditional on the cached
//! `resourceVersion` or uid, so a pod that changed since is looked at again
//! on the next pass rather than overwritten.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_util::cache_index::IndexView;
use client_util::{CacheIndex, Reflected, StopFlag};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::finished;

/// The finalizer `propagationPolicy: Orphan` leaves on an owner (the
/// apiserver's name).
pub(crate) const FINALIZER_ORPHAN: &str = "orphan";
/// The finalizer `propagationPolicy: Foreground` leaves on an owner.
pub(crate) const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// How long an unmet expectation is trusted before it is dropped:
/// Kubernetes' `ExpectationsTimeout`. Dropped too soon, while the cache
/// lags behind a burst of creates, the owner counts its pods short and
/// creates more than it wants (60 s did that at 30,000 pods).
pub(crate) const EXPECTATION_TTL: Duration = Duration::from_secs(5 * 60);

/// A kind of namespaced object that owns pods.
pub(crate) trait Owner:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Owner for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// The pod's controller owner reference, if any.
pub(crate) fn controller_ref(pod: &Pod) -> Option<&OwnerReference> {
    pod.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
}

/// A pod's key in the controller manager's pod index: its controller's
/// uid, or its namespace among the pods no controller owns.
pub(crate) fn controller_key(pod: &Pod) -> Option<String> {
    Some(match controller_ref(pod) {
        Some(owner) => format!("controller/{}", owner.uid),
        None => format!("orphans/{}", pod.namespace().unwrap_or_default()),
    })
}

/// The pods in `ns` that the owner whose uid is `owner_uid` may claim: the
/// ones it controls and the ones no controller owns, as `view` shows them.
/// Kubernetes' `ClaimPods` looks at no others (a pod another controller
/// owns is never adopted), so an owner's sync costs its own pods, not every
/// pod of its namespace. A pod of another namespace whose controller
/// reference names the owner's uid is among them: the caller leaves it out
/// (checking here would read every pod's namespace on every pass).
pub(crate) fn claimable<'v>(
    view: &'v IndexView<'_, Pod>,
    ns: &str,
    owner_uid: &str,
) -> impl Iterator<Item = &'v Arc<Pod>> + 'v {
    view.objects(&format!("controller/{owner_uid}"))
        .chain(view.objects(&format!("orphans/{ns}")))
}

/// The reference naming `owner` as its pods' controller.
pub(crate) fn owner_reference<K: Owner>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A delete of exactly this pod: one recreated under the same name since
/// the cache saw it is left alone.
pub(crate) fn delete_only(pod: &Pod) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

/// What a pod is to one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    /// Matching and controlled by the owner (live or not).
    Owned,
    /// Live, matching and controlled by no one: to adopt.
    Orphan,
    /// Live, controlled by the owner, no longer matching: to release.
    Stray,
    /// Anything else: another controller's, not matching, or a finished
    /// or terminating pod nobody needs to adopt or release.
    Unrelated,
}

/// What `pod` is to the owner whose uid is `owner_uid`, given whether the
/// owner's selector `matches` it. Finished and terminating pods are never
/// adopted nor released (Kubernetes' `ClaimPods` skips them too).
pub(crate) fn relation(owner_uid: &str, matches: bool, pod: &Pod) -> Relation {
    let live = pod.metadata.deletion_timestamp.is_none() && !finished(pod);
    match (controller_ref(pod).map(|o| o.uid == owner_uid), matches) {
        (Some(true), true) => Relation::Owned,
        (None, true) if live => Relation::Orphan,
        (Some(true), false) if live => Relation::Stray,
        _ => Relation::Unrelated,
    }
}

/// The merge patch making `owner` the controller of an orphan, conditional
/// on the cached version.
pub(crate) fn adoption_patch(pod: &Pod, owner: OwnerReference) -> serde_json::Value {
    let mut refs = pod.owner_references().to_vec();
    refs.push(owner);
    json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": pod.resource_version(),
    }})
}

/// The merge patch removing the reference to `owner_uid`, conditional on
/// the cached version.
pub(crate) fn release_patch(pod: &Pod, owner_uid: &str) -> serde_json::Value {
    let refs: Vec<&OwnerReference> = pod
        .owner_references()
        .iter()
        .filter(|o| o.uid != owner_uid)
        .collect();
    json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": pod.resource_version(),
    }})
}

async fn patch_pod(api: &Api<Pod>, pod: &Pod, patch: serde_json::Value) -> kube::Result<Pod> {
    api.patch(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
}

/// Makes `owner` the controller of an orphan; false if that failed (the
/// pod is then not counted this pass).
pub(crate) async fn adopt<K: Owner>(api: &Api<Pod>, owner: &K, pod: &Pod) -> bool {
    let kind = K::kind(&());
    match patch_pod(api, pod, adoption_patch(pod, owner_reference(owner))).await {
        Ok(_) => {
            tracing::info!(pod = %pod.name_any(), %kind, owner = %owner.name_any(), "adopted");
            true
        }
        Err(error) => {
            tracing::debug!(pod = %pod.name_any(), %error, "adoption failed");
            false
        }
    }
}

/// Removes the owner reference to `owner_uid` from a pod: one whose labels
/// no longer match, or one orphaned by its owner's deletion. The pod lives
/// on, unowned.
pub(crate) async fn release(api: &Api<Pod>, owner_uid: &str, pod: &Pod, why: &str) {
    match patch_pod(api, pod, release_patch(pod, owner_uid)).await {
        Ok(_) => tracing::info!(pod = %pod.name_any(), why, "released"),
        Err(error) => tracing::debug!(pod = %pod.name_any(), %error, why, "release failed"),
    }
}

/// The pods to collect among `pods`: those whose controller reference is
/// of `kind` and names no owner in `live` (uids), skipping those
/// `already_deleted` (by pod uid).
pub(crate) fn garbage<'a>(
    pods: impl Iterator<Item = &'a Arc<Pod>>,
    kind: &str,
    live: &HashSet<String>,
    already_deleted: impl Fn(&str) -> bool,
) -> Vec<(Arc<Pod>, OwnerReference)> {
    pods.filter_map(|pod| Some((pod, controller_ref(pod)?)))
        .filter(|(pod, owner)| {
            owner.kind == kind
                && !live.contains(&owner.uid)
                && !already_deleted(pod.metadata.uid.as_deref().unwrap_or_default())
        })
        .map(|(pod, owner)| (pod.clone(), owner.clone()))
        .collect()
}

/// The least time between two garbage-collection passes.
const GC_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// True when the apiserver has no `K` with the owner's name and uid (a
/// failed read says no: nothing is deleted on a guess).
async fn owner_missing<K: Owner>(client: &Client, ns: &str, owner: &OwnerReference) -> bool {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.get_opt(&owner.name).await {
        Ok(Some(found)) => found.uid().as_deref() != Some(owner.uid.as_str()),
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Deletes pods whose controller owner reference names a `K` that no
/// longer exists (checked against the apiserver, not only the cache,
/// before deleting), and finishes the deletes of owners held by the
/// `orphan` or `foregroundDeletion` finalizer ([`finalize_deleted`]). The
/// apiserver does no cascading deletion: this is its garbage collector for
/// pods. Runs on pod changes (at most once a second) and every few
/// seconds until `stop`.
pub(crate) async fn collect_garbage<K: Owner>(
    client: Client,
    owners: Store<K>,
    pods: Reflected<Pod>,
    by_controller: CacheIndex<Pod>,
    stop: StopFlag,
) {
    if owners.wait_until_ready().await.is_err() {
        return;
    }
    let kind = K::kind(&()).into_owned();
    let mut changes = pods.changes.clone();
    // Pods deleted and still cached (being deleted), by uid.
    let mut gone: HashMap<String, ObjectRef<Pod>> = HashMap::new();
    loop {
        let started = tokio::time::Instant::now();
        for owner in owners.state() {
            if owner.meta().deletion_timestamp.is_some() {
                finalize_deleted(&client, owner.as_ref(), &pods.store.state()).await;
            }
        }
        let live: HashSet<String> = owners.state().iter().filter_map(|o| o.uid()).collect();
        // Only the pods under controllers of this kind no longer cached:
        // the index has them by controller, so a pass costs the
        // controllers, not every cached pod (30,000 of them, once a
        // second, while pods churn). A uid names one object, so the first
        // pod under it tells its kind: another kind's controllers (live
        // for their own collector) are passed over whole.
        let collectable = {
            let view = by_controller.view();
            let orphaned = view.keys().filter(|key| {
                key.strip_prefix("controller/")
                    .is_some_and(|uid| !live.contains(uid))
                    && view
                        .objects(key)
                        .next()
                        .and_then(|pod| controller_ref(pod))
                        .is_some_and(|owner| owner.kind == kind)
            });
            garbage(
                orphaned.flat_map(|key| view.objects(key)),
                &kind,
                &live,
                |uid| gone.contains_key(uid),
            )
        };
        let mut confirmed: HashMap<String, bool> = HashMap::new();
        for (pod, owner) in collectable {
            let ns = pod.namespace().unwrap_or_default();
            let missing = match confirmed.get(&owner.uid) {
                Some(m) => *m,
                None => {
                    let m = owner_missing::<K>(&client, &ns, &owner).await;
                    confirmed.insert(owner.uid.clone(), m);
                    m
                }
            };
            if !missing {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            match api.delete(&pod.name_any(), &delete_only(&pod)).await {
                Ok(_) | Err(kube::Error::Api(_)) => {
                    tracing::info!(pod = %pod.name_any(), %kind, owner = %owner.name, "deleted a pod whose owner is gone");
                    gone.insert(
                        pod.uid().unwrap_or_default(),
                        ObjectRef::new(&pod.name_any()).within(&ns),
                    );
                }
                Err(error) => tracing::warn!(%error, "garbage collection delete"),
            }
        }
        // Forget the deleted pods the cache no longer has (nor a successor
        // of the same name counts).
        if !gone.is_empty() {
            let view = by_controller.view();
            gone.retain(|uid, r| {
                view.object(r)
                    .is_some_and(|p| p.uid().as_deref() == Some(uid))
            });
        }
        tokio::select! {
            () = stop.stopped() => return,
            () = tokio::time::sleep_until(started + GC_MIN_INTERVAL) => {}
        }
        tokio::select! {
            () = stop.stopped() => return,
            _ = changes.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// What a deleted owner's finalizers ask for its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// `orphan`: remove the owner reference, keep the pods.
    Orphan,
    /// `foregroundDeletion`: delete the pods, then let the owner go.
    Foreground,
}

/// The propagation `finalizers` ask for (orphaning wins if both are
/// there), `None` when neither is.
pub(crate) fn propagation(finalizers: &[String]) -> Option<Propagation> {
    let has = |name: &str| finalizers.iter().any(|f| f == name);
    if has(FINALIZER_ORPHAN) {
        Some(Propagation::Orphan)
    } else if has(FINALIZER_FOREGROUND) {
        Some(Propagation::Foreground)
    } else {
        None
    }
}

/// For an owner marked for deletion: orphans or deletes its pods as its
/// finalizer asks, and removes the finalizer once no pod (read from the
/// apiserver, not the cache) still names it as owner. Failures are
/// retried on the next pass.
pub(crate) async fn finalize_deleted<K: Owner>(client: &Client, owner: &K, cached: &[Arc<Pod>]) {
    let finalizers = owner.finalizers();
    let Some(propagation) = propagation(finalizers) else {
        return;
    };
    let ns = owner.namespace().unwrap_or_default();
    let Some(uid) = owner.uid() else {
        return;
    };
    let kind = K::kind(&());
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let owned = |pod: &Pod| pod.owner_references().iter().any(|o| o.uid == uid);
    for pod in cached
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && owned(p))
    {
        match propagation {
            Propagation::Orphan => {
                release(&api, &uid, pod, "its owner is deleted with orphaning").await;
            }
            Propagation::Foreground if pod.metadata.deletion_timestamp.is_none() => {
                if let Err(error) = api.delete(&pod.name_any(), &delete_only(pod)).await {
                    tracing::debug!(pod = %pod.name_any(), %error, "foreground deletion of a pod");
                }
            }
            Propagation::Foreground => {}
        }
    }
    let remaining = match api.list(&ListParams::default()).await {
        Ok(list) => list.items.iter().filter(|p| owned(p)).count(),
        Err(error) => {
            tracing::debug!(%kind, %error, "listing pods to finish an owner's deletion");
            return;
        }
    };
    if remaining > 0 {
        return;
    }
    let kept: Vec<&String> = finalizers
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND)
        .collect();
    let patch =
        json!({"metadata": {"finalizers": kept, "resourceVersion": owner.resource_version()}});
    let owners: Api<K> = Api::namespaced(client.clone(), &ns);
    match owners
        .patch(
            &owner.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(%kind, owner = %owner.name_any(), ?propagation, "owner's pods handled; its finalizer removed");
        }
        Err(error) => {
            tracing::debug!(%kind, owner = %owner.name_any(), %error, "removing a deletion finalizer");
        }
    }
}

/// What one owner asked for and has not yet seen in the cache.
#[derive(Debug, Default)]
struct Pending {
    creates: HashSet<String>,
    deletes: HashSet<String>,
    since: Option<Instant>,
}

/// The creates and deletes each owner (by key) asked for and has not yet
/// seen reflected: they count as done, so a controller never overshoots
/// while its requests are in flight. The keys of creates and deletes are
/// the controller's own (pod names, node names, pod uids). An owner's
/// expectations older than [`EXPECTATION_TTL`] are dropped whole, so one
/// never seen does not block it for ever.
#[derive(Debug, Default)]
pub(crate) struct Expectations(Mutex<HashMap<String, Pending>>);

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The creates and deletes of `owner` still pending, once those the
    /// cache shows are settled: a create is settled when `created` says
    /// so, a delete when `deleted` does.
    pub(crate) fn pending(
        &self,
        owner: &str,
        created: impl Fn(&str) -> bool,
        deleted: impl Fn(&str) -> bool,
    ) -> (HashSet<String>, HashSet<String>) {
        let mut all = self.lock();
        let e = all.entry(owner.to_string()).or_default();
        if e.since.is_some_and(|s| s.elapsed() > EXPECTATION_TTL) {
            tracing::warn!(%owner, "expectations expired; recounting");
            *e = Pending::default();
        }
        e.creates.retain(|n| !created(n));
        e.deletes.retain(|n| !deleted(n));
        if e.creates.is_empty() && e.deletes.is_empty() {
            e.since = None;
        }
        (e.creates.clone(), e.deletes.clone())
    }

    /// Expects `creates` and `deletes` of `owner`.
    pub(crate) fn expect(
        &self,
        owner: &str,
        creates: impl IntoIterator<Item = String>,
        deletes: impl IntoIterator<Item = String>,
    ) {
        let mut all = self.lock();
        let e = all.entry(owner.to_string()).or_default();
        // Each batch of requests starts the window again, as Kubernetes'
        // `SetExpectations` does: an owner that keeps creating in bursts
        // otherwise saw its earlier expectations, and the later ones with
        // them, expire in the middle of its work.
        e.since = Some(Instant::now());
        e.creates.extend(creates);
        e.deletes.extend(deletes);
    }

    /// Stops expecting the creates and deletes that failed, so the next
    /// sync counts without them.
    pub(crate) fn forget(&self, owner: &str, creates: &[String], deletes: &[String]) {
        if let Some(e) = self.lock().get_mut(owner) {
            for c in creates {
                e.creates.remove(c);
            }
            for d in deletes {
                e.deletes.remove(d);
            }
        }
    }

    /// True while `owner` has anything pending.
    pub(crate) fn waiting(&self, owner: &str) -> bool {
        self.lock()
            .get(owner)
            .is_some_and(|e| !e.creates.is_empty() || !e.deletes.is_empty())
    }

    /// Forgets the owners not in `live`.
    pub(crate) fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|k, _| live.contains(k));
    }

    /// Every 30 s until `stop`, forgets the owners `store` no longer
    /// holds (by `key`).
    pub(crate) async fn forget_gone<K: Owner>(
        &self,
        store: &Store<K>,
        key: impl Fn(&K) -> String,
        stop: &StopFlag,
    ) {
        forget_gone(store, key, stop, |live| self.retain(live)).await;
    }
}

/// Every 30 s until `stop`, hands `forget` the owners `store` holds (by
/// `key`), so that what is kept per owner goes with the owner.
pub(crate) async fn forget_gone<K: Owner>(
    store: &Store<K>,
    key: impl Fn(&K) -> String,
    stop: &StopFlag,
    forget: impl Fn(&HashSet<String>),
) {
    loop {
        tokio::select! {
            () = stop.stopped() => return,
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        let live: HashSet<String> = store.state().iter().map(|o| key(o)).collect();
        forget(&live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ReplicationController;

    const OWNER_UID: &str = "owner-uid";

    fn rc() -> ReplicationController {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": OWNER_UID,
                "resourceVersion": "5"},
        }))
        .unwrap()
    }

    /// A pod controlled by `owner` (none when empty), with `patch`'s
    /// top-level maps merged in one level deep.
    fn pod(name: &str, owner: &str, patch: serde_json::Value) -> Arc<Pod> {
        let mut value = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"),
                "resourceVersion": "42"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        });
        if !owner.is_empty() {
            value["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1",
                "kind": "ReplicationController", "name": "web", "uid": owner,
                "controller": true}]);
        }
        for (section, fields) in patch.as_object().unwrap() {
            for (k, v) in fields.as_object().unwrap() {
                value[section][k] = v.clone();
            }
        }
        Arc::new(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn an_owner_may_claim_its_own_pods_and_its_namespace_s_orphans_only() {
        let elsewhere = |name: &str, owner: &str| {
            pod(name, owner, json!({"metadata": {"namespace": "elsewhere"}}))
        };
        let pods = [
            pod("mine", OWNER_UID, json!({})),
            pod("orphan", "", json!({})),
            pod("theirs", "other", json!({})),
            elsewhere("orphan-elsewhere", ""),
            elsewhere("mine-elsewhere", OWNER_UID),
        ];
        let index = CacheIndex::new(
            crate::testing::store(pods.iter().map(|p| (**p).clone())),
            controller_key,
        );
        let mut names: Vec<String> = claimable(&index.view(), "default", OWNER_UID)
            .map(|p| p.name_any())
            .collect();
        names.sort();
        // Its own pod in another namespace too: the caller leaves it out.
        assert_eq!(names, ["mine", "mine-elsewhere", "orphan"]);
    }

    #[test]
    fn relations_follow_the_controller_reference_the_selector_and_liveness() {
        let mine = pod("a", OWNER_UID, json!({}));
        let orphan = pod("b", "", json!({}));
        let theirs = pod("c", "other", json!({}));
        let terminating = pod(
            "d",
            "",
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        let failed = pod("e", OWNER_UID, json!({"status": {"phase": "Failed"}}));
        assert_eq!(relation(OWNER_UID, true, &mine), Relation::Owned);
        assert_eq!(relation(OWNER_UID, false, &mine), Relation::Stray);
        assert_eq!(relation(OWNER_UID, true, &orphan), Relation::Orphan);
        assert_eq!(relation(OWNER_UID, false, &orphan), Relation::Unrelated);
        assert_eq!(relation(OWNER_UID, true, &theirs), Relation::Unrelated);
        // Neither adopted nor released once finished or terminating, but
        // still owned (a plan may count a failed pod).
        assert_eq!(relation(OWNER_UID, true, &terminating), Relation::Unrelated);
        assert_eq!(relation(OWNER_UID, true, &failed), Relation::Owned);
        assert_eq!(relation(OWNER_UID, false, &failed), Relation::Unrelated);
    }

    #[test]
    fn adoption_and_release_keep_other_references_and_are_conditional() {
        let mut shared = (*pod("a", "", json!({}))).clone();
        shared.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "cm".into(),
            uid: "cm-uid".into(),
            ..OwnerReference::default()
        }]);
        let adopted = adoption_patch(&shared, owner_reference(&rc()));
        assert_eq!(adopted["metadata"]["resourceVersion"], "42");
        let refs = adopted["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0]["uid"], "cm-uid");
        assert_eq!(
            refs[1],
            json!({"apiVersion": "v1", "kind": "ReplicationController", "name": "web",
                "uid": OWNER_UID, "controller": true, "blockOwnerDeletion": true})
        );
        shared.metadata.owner_references = serde_json::from_value(refs.clone().into()).unwrap();
        let released = release_patch(&shared, OWNER_UID);
        assert_eq!(
            released["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "cm-uid"}])
        );
        assert_eq!(released["metadata"]["resourceVersion"], "42");
    }

    #[test]
    fn garbage_is_of_the_kind_with_no_live_owner_and_not_yet_deleted() {
        let pods = [
            pod("live", OWNER_UID, json!({})),
            pod("gone", "dead", json!({})),
            pod("deleted", "dead", json!({})),
            pod("unowned", "", json!({})),
            pod(
                "other-kind",
                "",
                json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1",
                    "kind": "DaemonSet", "name": "d", "uid": "dead", "controller": true}]}}),
            ),
        ];
        let live: HashSet<String> = [OWNER_UID.to_string()].into();
        let found: Vec<(String, String)> =
            garbage(pods.iter(), "ReplicationController", &live, |uid| {
                uid == "deleted-uid"
            })
            .into_iter()
            .map(|(p, o)| (p.name_any(), o.uid.clone()))
            .collect();
        assert_eq!(found, [("gone".to_string(), "dead".to_string())]);
    }

    #[test]
    fn finalizers_choose_the_propagation() {
        let f = |names: &[&str]| -> Vec<String> { names.iter().map(|n| n.to_string()).collect() };
        assert_eq!(propagation(&f(&[])), None);
        assert_eq!(propagation(&f(&["x"])), None);
        assert_eq!(
            propagation(&f(&["x", FINALIZER_ORPHAN])),
            Some(Propagation::Orphan)
        );
        assert_eq!(
            propagation(&f(&[FINALIZER_FOREGROUND])),
            Some(Propagation::Foreground)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expectations_settle_as_the_cache_shows_them_and_expire() {
        let e = Expectations::default();
        e.expect(
            "ns/web",
            ["a".to_string(), "b".to_string()],
            ["c".to_string()],
        );
        assert!(e.waiting("ns/web"));
        let (creates, deletes) = e.pending("ns/web", |n| n == "a", |_| false);
        assert_eq!(creates, ["b".to_string()].into());
        assert_eq!(deletes, ["c".to_string()].into());
        e.forget("ns/web", &["b".to_string()], &[]);
        let (creates, _) = e.pending("ns/web", |_| false, |_| false);
        assert!(creates.is_empty());
        // A delete never seen is given up after the TTL.
        tokio::time::sleep(EXPECTATION_TTL + Duration::from_secs(1)).await;
        let (_, deletes) = e.pending("ns/web", |_| false, |_| false);
        assert!(deletes.is_empty());
        assert!(!e.waiting("ns/web"));
        e.expect("ns/other", ["x".to_string()], []);
        e.retain(&["ns/web".to_string()].into());
        assert!(!e.waiting("ns/other"));
    }

    /// A new batch of requests starts the window again: an owner creating
    /// in bursts keeps its earlier expectations while the cache catches up.
    #[tokio::test(start_paused = true)]
    async fn expectations_last_a_whole_ttl_after_the_latest_batch() {
        let e = Expectations::default();
        e.expect("ns/web", ["a".to_string()], []);
        tokio::time::sleep(EXPECTATION_TTL - Duration::from_secs(10)).await;
        e.expect("ns/web", ["b".to_string()], []);
        tokio::time::sleep(Duration::from_secs(20)).await;
        let (creates, _) = e.pending("ns/web", |_| false, |_| false);
        assert_eq!(creates, ["a".to_string(), "b".to_string()].into());
        tokio::time::sleep(EXPECTATION_TTL).await;
        let (creates, _) = e.pending("ns/web", |_| false, |_| false);
        assert!(creates.is_empty(), "{creates:?}");
    }

    /// Between passes the collector holds no cached pod: a snapshot kept
    /// across its waits kept every pod replaced meanwhile alive.
    #[tokio::test(start_paused = true)]
    async fn the_garbage_collector_holds_no_pod_between_passes() {
        let (client, api) = crate::testing::ApiServer::client();
        let owners = crate::testing::store([rc()]);
        let pods = crate::testing::store([(*pod("a", OWNER_UID, json!({}))).clone()]);
        let (_tick, changes) = tokio::sync::watch::channel(0);
        let cached = Arc::downgrade(
            &pods
                .get(&kube::runtime::reflector::ObjectRef::new("a").within("default"))
                .unwrap(),
        );
        let index = CacheIndex::new(pods.clone(), controller_key);
        let collector = tokio::spawn(collect_garbage(
            client,
            owners,
            client_util::Reflected {
                store: pods,
                changes,
            },
            index,
            client_util::StopFlag::new(std::future::pending()),
        ));
        // Time stands still while this task is ready: the collector runs
        // its pass and waits for the next.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!collector.is_finished());
        assert_eq!(
            cached.strong_count(),
            2,
            "only the store and its index hold the pod"
        );
        assert!(api.lines().is_empty(), "{:?}", api.lines());
        collector.abort();
    }

    /// A pass looks at the pods under controllers of its kind that are
    /// gone, confirms the owner is gone with the apiserver, and deletes
    /// them; another kind's pods and live owners' pods are not touched.
    #[tokio::test(start_paused = true)]
    async fn the_garbage_collector_deletes_only_pods_of_its_kind_whose_owner_is_gone() {
        let (client, api) = crate::testing::ApiServer::scripted(|r| {
            (r.method == http::Method::GET).then(|| {
                (
                    http::StatusCode::NOT_FOUND,
                    crate::testing::status(http::StatusCode::NOT_FOUND, "NotFound"),
                )
            })
        });
        let daemon_pod = pod(
            "daemon",
            "",
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "DaemonSet", "name": "d", "uid": "dead-ds", "controller": true}]}}),
        );
        let pods = crate::testing::store(
            [
                pod("live", OWNER_UID, json!({})),
                pod("left", "dead-rc", json!({})),
                daemon_pod,
                pod("unowned", "", json!({})),
            ]
            .into_iter()
            .map(Arc::unwrap_or_clone),
        );
        let (_tick, changes) = tokio::sync::watch::channel(0);
        let collector = tokio::spawn(collect_garbage(
            client,
            crate::testing::store([rc()]),
            client_util::Reflected {
                store: pods.clone(),
                changes,
            },
            CacheIndex::new(pods, controller_key),
            client_util::StopFlag::new(std::future::pending()),
        ));
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        collector.abort();
        assert_eq!(
            api.lines(),
            [
                "GET /api/v1/namespaces/default/replicationcontrollers/web",
                "DELETE /api/v1/namespaces/default/pods/left",
            ]
        );
        assert_eq!(api.requests()[1].body["preconditions"]["uid"], "left-uid");
    }

    #[tokio::test]
    async fn adopt_patches_the_orphan_and_a_refusal_is_false() {
        let (client, api) = crate::testing::ApiServer::client();
        let pods: Api<Pod> = Api::namespaced(client, "default");
        assert!(adopt(&pods, &rc(), &pod("orphan", "", json!({}))).await);
        assert_eq!(
            api.lines(),
            ["PATCH /api/v1/namespaces/default/pods/orphan"]
        );
        assert_eq!(
            api.requests()[0].body["metadata"]["ownerReferences"][0]["uid"],
            OWNER_UID
        );
        let (client, _) = crate::testing::ApiServer::scripted(|_| {
            Some((
                http::StatusCode::CONFLICT,
                crate::testing::status(http::StatusCode::CONFLICT, "Conflict"),
            ))
        });
        let pods: Api<Pod> = Api::namespaced(client, "default");
        assert!(!adopt(&pods, &rc(), &pod("orphan", "", json!({}))).await);
    }

    /// A scripted apiserver whose pod lists hold `items`.
    fn listing(items: serde_json::Value) -> (Client, crate::testing::ApiServer) {
        crate::testing::ApiServer::scripted(move |r| {
            (r.method == http::Method::GET).then(|| {
                let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
                    "items": items.clone()});
                (http::StatusCode::OK, list)
            })
        })
    }

    /// The RC, deleted and held by `finalizers`.
    fn deleted(finalizers: &[&str]) -> ReplicationController {
        let mut owner = rc();
        owner.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        owner.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
        owner
    }

    #[tokio::test]
    async fn an_orphaning_delete_releases_the_pods_then_drops_its_finalizer() {
        let (client, api) = listing(json!([]));
        let owner = deleted(&[FINALIZER_ORPHAN, "keep"]);
        let cached = [
            pod("mine", OWNER_UID, json!({})),
            pod("theirs", "other", json!({})),
        ];
        finalize_deleted(&client, &owner, &cached).await;
        assert_eq!(
            api.lines(),
            [
                "PATCH /api/v1/namespaces/default/pods/mine",
                "GET /api/v1/namespaces/default/pods",
                "PATCH /api/v1/namespaces/default/replicationcontrollers/web",
            ]
        );
        let requests = api.requests();
        assert_eq!(requests[0].body["metadata"]["ownerReferences"], json!([]));
        assert_eq!(
            requests[2].body["metadata"],
            json!({"finalizers": ["keep"], "resourceVersion": "5"})
        );
    }

    #[tokio::test]
    async fn a_foreground_delete_waits_while_a_pod_still_names_the_owner() {
        // The delete is not yet done: the list still shows the pod owned,
        // so the finalizer stays.
        let (client, api) = listing(json!([{"metadata": {"name": "mine", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ReplicationController",
             "name": "web", "uid": OWNER_UID, "controller": true}]}}]));
        let owner = deleted(&[FINALIZER_FOREGROUND]);
        finalize_deleted(&client, &owner, &[pod("mine", OWNER_UID, json!({}))]).await;
        assert_eq!(
            api.lines(),
            [
                "DELETE /api/v1/namespaces/default/pods/mine",
                "GET /api/v1/namespaces/default/pods",
            ]
        );
        assert_eq!(api.requests()[0].body["preconditions"]["uid"], "mine-uid");
    }
}
