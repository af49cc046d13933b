//! The namespace controller: empties a namespace being deleted, then lets
//! it go, as Kubernetes' namespace controller does.
//!
//! Deleting a namespace only marks it (`deletionTimestamp`, phase
//! `Terminating`): the `kubernetes` entry of its `spec.finalizers`, added by
//! the apiserver on create, holds it. For such a namespace `reconcile`
//! discovers every namespaced resource the apiserver serves (`/api`,
//! `/apis`: resources added later are covered without a change here), lists
//! each in the namespace and deletes through the ordinary API what is not
//! already being deleted. Nothing is forced: a pod bound to a node is only
//! marked, and goes when its kubelet has stopped it (or the node lifecycle
//! controller evicts it); an object with finalizers goes when their owners
//! remove them. Once a listing finds nothing left, `kubernetes` is removed
//! through `PUT namespaces/{name}/finalize` and the apiserver deletes the
//! namespace (unless other finalizers still hold it).
//!
//! [`plan`] decides (pure, tested as a table); `reconcile` lists and acts.
//! While content remains the namespace is looked at again after about half
//! the longest grace period left (Kubernetes' estimate), and at once when a
//! pod changes; failed requests are retried with a per-namespace back-off.
//! The namespace's conditions say what is left, with Kubernetes' types and
//! reasons.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_util::{Reflected, StopFlag};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::discovery::{verbs, ApiResource, Discovery, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio_stream::wrappers::WatchStream;

use crate::{Config, Error, Result};

/// The finalizer this controller owns (`spec.finalizers`).
pub const FINALIZER: &str = "kubernetes";

/// Back-off of a namespace whose deletion keeps failing: the first retry
/// after this, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The condition types Kubernetes sets on a namespace being deleted.
pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
/// See [`DISCOVERY_FAILURE`].
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
/// See [`DISCOVERY_FAILURE`].
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
/// See [`DISCOVERY_FAILURE`].
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// One object found in a namespace being deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The resource as Kubernetes names it in conditions: `pods`, or
    /// `leases.coordination.k8s.io` for a named group.
    pub resource: String,
    /// The object's name.
    pub name: String,
    /// Already marked for deletion (`deletionTimestamp` set).
    pub deleting: bool,
    /// Its `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// Seconds until its graceful deletion is due (0 when due or when it
    /// is not being deleted).
    pub grace_left: i64,
}

/// What listing a namespace found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    /// Every object listed.
    pub items: Vec<Item>,
    /// Why discovery failed, if it did (then nothing is known to be empty).
    pub discovery_failure: Option<String>,
    /// Resources that could not be listed or whose objects could not be
    /// deleted, with the error.
    pub failures: Vec<String>,
}

/// What to do for one namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Objects to delete, as (resource, name).
    pub delete: Vec<(String, String)>,
    /// The namespace's new conditions, when they differ from its own.
    pub conditions: Option<Vec<NamespaceCondition>>,
    /// Remove [`FINALIZER`]: the namespace is empty.
    pub finalize: bool,
    /// Look again after this while content remains.
    pub requeue: Option<Duration>,
}

/// Whether the namespace is being deleted and still waits for this
/// controller.
pub fn awaits_us(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_some()
        && namespace
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Decides what to do for `namespace` given what listing it found
/// (`content`, read at `now`). A namespace not being deleted, or already
/// finalized by us, needs nothing.
pub fn plan(namespace: &Namespace, content: &Content, now: jiff::Timestamp) -> Plan {
    if !awaits_us(namespace) {
        return Plan::default();
    }
    let delete = content
        .items
        .iter()
        .filter(|i| !i.deleting)
        .map(|i| (i.resource.clone(), i.name.clone()))
        .collect();
    let have = namespace
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let conditions = merge_conditions(&have, conditions(content), now);
    let finalize = content.items.is_empty()
        && content.failures.is_empty()
        && content.discovery_failure.is_none();
    // Kubernetes' estimate: half the longest grace period left, plus one
    // second (objects held by finalizers give 0: look again in a second).
    let requeue = (!finalize).then(|| {
        let estimate = content
            .items
            .iter()
            .map(|i| i.grace_left)
            .max()
            .unwrap_or(0);
        Duration::from_secs(u64::try_from(estimate.max(0) / 2 + 1).unwrap_or(1))
    });
    Plan {
        delete,
        conditions,
        finalize,
        requeue,
    }
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_transition_time: None,
    }
}

/// The conditions Kubernetes' namespace controller sets for `content`
/// (without transition times).
pub fn conditions(content: &Content) -> Vec<NamespaceCondition> {
    let discovery = match &content.discovery_failure {
        Some(why) => condition(
            DISCOVERY_FAILURE,
            true,
            "DiscoveryFailed",
            format!("Discovery failed for some groups: {why}"),
        ),
        None => condition(
            DISCOVERY_FAILURE,
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
    };
    let failure = if content.failures.is_empty() {
        condition(
            CONTENT_FAILURE,
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        )
    } else {
        condition(
            CONTENT_FAILURE,
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                content.failures.len(),
                content.failures.join(", ")
            ),
        )
    };
    let mut per_resource: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_finalizer: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &content.items {
        *per_resource.entry(&item.resource).or_default() += 1;
        for f in &item.finalizers {
            *per_finalizer.entry(f).or_default() += 1;
        }
    }
    let remaining = if per_resource.is_empty() {
        condition(
            CONTENT_REMAINING,
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
        )
    } else {
        let counts: Vec<String> = per_resource
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        condition(
            CONTENT_REMAINING,
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", counts.join(", ")),
        )
    };
    let finalizers = if per_finalizer.is_empty() {
        condition(
            FINALIZERS_REMAINING,
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        let counts: Vec<String> = per_finalizer
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        condition(
            FINALIZERS_REMAINING,
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                counts.join(", ")
            ),
        )
    };
    vec![discovery, failure, remaining, finalizers]
}

/// `have` with `want` set: `None` when nothing changes (transition times
/// aside). A condition keeps its transition time while its status stays;
/// conditions of other types are kept.
fn merge_conditions(
    have: &[NamespaceCondition],
    want: Vec<NamespaceCondition>,
    now: jiff::Timestamp,
) -> Option<Vec<NamespaceCondition>> {
    let mut merged = have.to_vec();
    let mut changed = false;
    for mut wanted in want {
        match merged.iter_mut().find(|c| c.type_ == wanted.type_) {
            Some(current) => {
                if (&current.status, &current.reason, &current.message)
                    == (&wanted.status, &wanted.reason, &wanted.message)
                {
                    continue;
                }
                wanted.last_transition_time = if current.status == wanted.status {
                    current.last_transition_time.clone()
                } else {
                    Some(Time(now))
                };
                *current = wanted;
            }
            None => {
                wanted.last_transition_time = Some(Time(now));
                merged.push(wanted);
            }
        }
        changed = true;
    }
    changed.then_some(merged)
}

/// What `reconcile` needs.
pub struct Context {
    client: Client,
    config: Config,
    /// Consecutive failed passes per namespace, for the back-off.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the namespace controller until `stop`. Pod changes wake the
/// namespaces being deleted, so a pod its kubelet finally removes lets
/// its namespace go at once.
pub async fn run(client: Client, config: Config, pods: Reflected<Pod>, stop: StopFlag) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let controller = Controller::new(namespaces, watcher::Config::default());
    let store = controller.store();
    // Pod changes come in bursts while a namespace empties: the watch
    // channel keeps only the latest, and taking one per 200 ms bounds the
    // passes. Namespaces not being deleted cost nothing to reconcile.
    let trigger = WatchStream::from_changes(pods.changes.clone())
        .filter(move |_| {
            let waiting = store.state().iter().any(|ns| awaits_us(ns));
            std::future::ready(waiting)
        })
        .then(|_| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
    let ctx = Arc::new(Context {
        client,
        config,
        failures: Mutex::new(HashMap::new()),
    });
    controller
        .reconcile_all_on(trigger)
        .graceful_shutdown_on(async move { stop.stopped().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "namespace reconcile");
            }
        })
        .await;
}

fn error_policy(namespace: Arc<Namespace>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = namespace.name_any();
    let attempts = {
        let mut failures = ctx.failures();
        let n = failures.entry(name.clone()).or_default();
        *n = n.saturating_add(1);
        *n
    };
    let delay = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(16)))
        .min(MAX_BACKOFF);
    tracing::warn!(namespace = %name, %error, ?delay, "namespace deletion failed; retrying");
    Action::requeue(delay)
}

/// The name Kubernetes gives a resource in conditions.
fn group_resource(resource: &ApiResource) -> String {
    if resource.group.is_empty() {
        resource.plural.clone()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

/// Every namespaced resource the apiserver serves that can be listed and
/// deleted, by [`group_resource`] name.
async fn namespaced_resources(client: &Client) -> kube::Result<BTreeMap<String, ApiResource>> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut resources = BTreeMap::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE)
            {
                resources.insert(group_resource(&resource), resource);
            }
        }
    }
    Ok(resources)
}

/// Lists every resource of `resources` in `namespace`.
async fn list_content(
    client: &Client,
    namespace: &str,
    resources: &BTreeMap<String, ApiResource>,
    now: jiff::Timestamp,
) -> Content {
    let mut content = Content::default();
    for (name, resource) in resources {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
        match api.list(&ListParams::default()).await {
            Ok(list) => content.items.extend(list.items.iter().map(|object| {
                let deletion = object.metadata.deletion_timestamp.as_ref();
                Item {
                    resource: name.clone(),
                    name: object.name_any(),
                    deleting: deletion.is_some(),
                    finalizers: object.finalizers().to_vec(),
                    grace_left: deletion.map_or(0, |at| (at.0 - now).get_seconds().max(0)),
                }
            })),
            Err(error) => content.failures.push(format!("{name}: {error}")),
        }
    }
    content
}

/// Empties a namespace being deleted, then removes [`FINALIZER`].
///
/// # Errors
///
/// [`Error::Api`] when a delete or a namespace write failed,
/// [`Error::NamespaceContent`] when discovery or a listing did (the
/// namespace is retried with back-off).
pub async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action> {
    let name = namespace.name_any();
    if !awaits_us(&namespace) {
        ctx.failures().remove(&name);
        return Ok(Action::requeue(ctx.config.resync));
    }
    let now = jiff::Timestamp::now();
    let (resources, mut content) = match namespaced_resources(&ctx.client).await {
        Ok(resources) => {
            let content = list_content(&ctx.client, &name, &resources, now).await;
            (resources, content)
        }
        Err(error) => (
            BTreeMap::new(),
            Content {
                discovery_failure: Some(error.to_string()),
                ..Content::default()
            },
        ),
    };
    let mut plan = plan(&namespace, &content, now);
    let mut first_error = None;
    for (resource, object) in &plan.delete {
        let Some(api_resource) = resources.get(resource) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, api_resource);
        // Background, as Kubernetes' namespace controller deletes: no
        // grace period of ours, so a pod keeps its own.
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(object, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => {
                content
                    .failures
                    .push(format!("{resource} {object}: {error}"));
                first_error.get_or_insert(error);
            }
        }
    }
    if first_error.is_some() {
        // The conditions say which deletes failed.
        plan = self::plan(&namespace, &content, now);
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let mut current = (*namespace).clone();
    if let Some(conditions) = plan.conditions.take() {
        // A merge patch replaces the list whole and needs no
        // resourceVersion: the cached copy may lag our own last write.
        let patch = serde_json::json!({ "status": { "conditions": conditions } });
        current = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(Error::Api)?;
    }
    if let Some(error) = first_error {
        return Err(Error::Api(error));
    }
    if let Some(why) = content.discovery_failure {
        return Err(Error::NamespaceContent(format!("discovery: {why}")));
    }
    if !content.failures.is_empty() {
        return Err(Error::NamespaceContent(content.failures.join("; ")));
    }
    if plan.finalize {
        if let Some(finalizers) = current.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
            finalizers.retain(|f| f != FINALIZER);
        }
        // Conditional on the copy's resourceVersion, so that finalizers
        // changed meanwhile are not written back.
        match api
            .replace_subresource("finalize", &name, &PostParams::default(), &current)
            .await
        {
            Ok(_) => tracing::info!(namespace = %name, "namespace emptied and finalized"),
            // Already gone: someone finished before us.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            // A stale copy: the watch brings the newer one, look again.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(error) => return Err(Error::Api(error)),
        }
        ctx.failures().remove(&name);
        return Ok(Action::await_change());
    }
    ctx.failures().remove(&name);
    Ok(Action::requeue(plan.requeue.unwrap_or(ctx.config.resync)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn namespace(deleting: bool, finalizers: &[&str], conditions: serde_json::Value) -> Namespace {
        let mut ns = json!({
            "metadata": {"name": "team"},
            "spec": {"finalizers": finalizers},
            "status": {"phase": if deleting {"Terminating"} else {"Active"}, "conditions": conditions}
        });
        if deleting {
            ns["metadata"]["deletionTimestamp"] = json!("2025-12-31T23:59:00Z");
            ns["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        serde_json::from_value(ns).unwrap()
    }

    fn item(
        resource: &str,
        name: &str,
        deleting: bool,
        finalizers: &[&str],
        grace_left: i64,
    ) -> Item {
        Item {
            resource: resource.into(),
            name: name.into(),
            deleting,
            finalizers: finalizers.iter().map(ToString::to_string).collect(),
            grace_left,
        }
    }

    fn content(items: Vec<Item>) -> Content {
        Content {
            items,
            ..Content::default()
        }
    }

    /// The conditions an emptied namespace ends with, as stored.
    fn settled() -> serde_json::Value {
        let mut all = serde_json::to_value(conditions(&Content::default())).unwrap();
        for c in all.as_array_mut().unwrap() {
            c["lastTransitionTime"] = json!("2025-12-31T23:59:30Z");
        }
        all
    }

    fn statuses(plan: &Plan) -> BTreeMap<String, String> {
        plan.conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    }

    #[test]
    fn decisions() {
        let k = &[FINALIZER][..];
        let pod_bound = item("pods", "web", false, &[], 0);
        let pod_going = item("pods", "web", true, &[], 30);
        let held = item("services", "db", true, &["example.com/hold"], 0);
        let lease = item("leases.coordination.k8s.io", "l", false, &[], 0);
        // (case, namespace, content, deletes, finalize, requeue seconds,
        //  conditions written: (remaining, finalizers remaining))
        type Row<'a> = (
            &'a str,
            Namespace,
            Content,
            Vec<(&'a str, &'a str)>,
            bool,
            Option<u64>,
            Option<(&'a str, &'a str)>,
        );
        let table: Vec<Row<'_>> = vec![
            (
                "active namespace: nothing, whatever it holds",
                namespace(false, k, json!([])),
                content(vec![pod_bound.clone()]),
                vec![],
                false,
                None,
                None,
            ),
            (
                "already finalized by us: nothing",
                namespace(true, &["example.com/other"], json!([])),
                content(vec![]),
                vec![],
                false,
                None,
                None,
            ),
            (
                "content is deleted, kinds from every group",
                namespace(true, k, json!([])),
                content(vec![pod_bound.clone(), lease.clone()]),
                vec![("pods", "web"), ("leases.coordination.k8s.io", "l")],
                false,
                Some(1),
                Some(("True", "False")),
            ),
            (
                "a pod being deleted is waited for, not deleted again or forced",
                namespace(true, k, json!([])),
                content(vec![pod_going.clone()]),
                vec![],
                false,
                Some(16),
                Some(("True", "False")),
            ),
            (
                "an object held by a finalizer is waited for",
                namespace(true, k, json!([])),
                content(vec![held.clone()]),
                vec![],
                false,
                Some(1),
                Some(("True", "True")),
            ),
            (
                "empty: finalize",
                namespace(true, k, json!([])),
                content(vec![]),
                vec![],
                true,
                None,
                Some(("False", "False")),
            ),
            (
                "empty with conditions already set: finalize, no status write",
                namespace(true, k, settled()),
                content(vec![]),
                vec![],
                true,
                None,
                None,
            ),
            (
                "a failed listing never finalizes",
                namespace(true, k, settled()),
                Content {
                    failures: vec!["pods: boom".into()],
                    ..Content::default()
                },
                vec![],
                false,
                Some(1),
                Some(("False", "False")),
            ),
            (
                "failed discovery never finalizes",
                namespace(true, k, settled()),
                Content {
                    discovery_failure: Some("boom".into()),
                    ..Content::default()
                },
                vec![],
                false,
                Some(1),
                Some(("False", "False")),
            ),
        ];
        for (case, ns, content, deletes, finalize, requeue, written) in table {
            let plan = plan(&ns, &content, now());
            let deletes: Vec<(String, String)> = deletes
                .iter()
                .map(|(r, n)| (r.to_string(), n.to_string()))
                .collect();
            assert_eq!(plan.delete, deletes, "{case}");
            assert_eq!(plan.finalize, finalize, "{case}");
            assert_eq!(plan.requeue, requeue.map(Duration::from_secs), "{case}");
            match written {
                None => assert_eq!(plan.conditions, None, "{case}"),
                Some((remaining, finalizers)) => {
                    let s = statuses(&plan);
                    assert_eq!(s[CONTENT_REMAINING], remaining, "{case}");
                    assert_eq!(s[FINALIZERS_REMAINING], finalizers, "{case}");
                }
            }
        }
    }

    #[test]
    fn conditions_say_what_remains_as_kubernetes_words_it() {
        let c = conditions(&Content {
            items: vec![
                item("pods", "a", true, &[], 0),
                item("pods", "b", false, &[], 0),
                item("services", "s", true, &["example.com/hold"], 0),
            ],
            failures: vec!["pods b: 500".into()],
            discovery_failure: None,
        });
        let by_type: BTreeMap<&str, &NamespaceCondition> =
            c.iter().map(|c| (c.type_.as_str(), c)).collect();
        assert_eq!(
            by_type[CONTENT_REMAINING].message.as_deref(),
            Some("Some resources are remaining: pods has 2 resource instances, services has 1 resource instances")
        );
        assert_eq!(
            by_type[FINALIZERS_REMAINING].message.as_deref(),
            Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
        );
        assert_eq!(by_type[CONTENT_FAILURE].status, "True");
        assert_eq!(
            by_type[CONTENT_FAILURE].reason.as_deref(),
            Some("ContentDeletionFailed")
        );
        assert_eq!(by_type[DISCOVERY_FAILURE].status, "False");
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_stays() {
        let ns = namespace(true, &[FINALIZER], settled());
        let have = ns.status.unwrap().conditions.unwrap();
        let want = conditions(&content(vec![item("pods", "a", true, &[], 0)]));
        let merged = merge_conditions(&have, want, now()).unwrap();
        let remaining = merged
            .iter()
            .find(|c| c.type_ == CONTENT_REMAINING)
            .unwrap();
        assert_eq!(remaining.last_transition_time, Some(Time(now())));
        let discovered = merged
            .iter()
            .find(|c| c.type_ == DISCOVERY_FAILURE)
            .unwrap();
        assert_eq!(
            discovered.last_transition_time,
            have[0].last_transition_time
        );
    }
}
