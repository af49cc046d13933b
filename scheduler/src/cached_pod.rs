//! The scheduler's cache entry for a pod: only what placing a pod, counting
//! a bound one against its node and spreading read, decoded straight from
//! the watch's JSON.
//!
//! Every pod of the cluster sits in one of the scheduler's two pod caches
//! (to place, or bound). As a `Pod`, even one trimmed by a transform as
//! `client_util::lean` trims the controller manager's, each weighs about
//! 8 KiB: the typed `Pod` and each `Container` are about 2 KiB inline
//! whatever they hold, and a label map is a 0.5 KiB B-tree node. At
//! 30,000 pods that put the scheduler's RSS above the apiserver's (issue
//! #19, item 4). A transform cannot help: the reflector decodes the whole
//! `Pod` before it runs. So this type has its own decoding, which skips
//! every field it does not keep and works out the pod's demand once, when
//! the pod arrives.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerPort, ObjectReference, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Deserialize;

use crate::algorithm::{self, Demand};

/// A pod as the scheduler keeps it.
///
/// Its `metadata` holds the pod's identity (name, namespace, uid,
/// resourceVersion: what the reflector's store keys by and events name)
/// and its creation and deletion times; the labels are in
/// [`CachedPod::label`], the controllers in [`CachedPod::owner_groups`].
/// A reader of another field must add it here.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "wire::Pod")]
pub struct CachedPod {
    metadata: ObjectMeta,
    node_name: String,
    scheduler_name: Option<String>,
    node_selector: Option<BTreeMap<String, String>>,
    demand: Demand,
    /// `owner:{uid}` of each controller reference (spreading's group).
    owner_groups: Vec<String>,
    /// Sorted by key: pods have a handful of labels, and a sorted slice of
    /// them costs a tenth of a map.
    labels: Box<[(String, String)]>,
    /// The message of a `PodScheduled=False` condition with reason
    /// `Unschedulable`: what the scheduler last wrote.
    unschedulable: Option<String>,
    finished: bool,
}

impl CachedPod {
    /// The node it is bound to; empty while it is not.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// `spec.schedulerName`.
    pub fn scheduler_name(&self) -> Option<&str> {
        self.scheduler_name.as_deref()
    }

    /// `spec.nodeSelector`.
    pub fn node_selector(&self) -> Option<&BTreeMap<String, String>> {
        self.node_selector.as_ref()
    }

    /// What it takes of its node.
    pub fn demand(&self) -> &Demand {
        &self.demand
    }

    /// Its spreading groups from its controller references.
    pub fn owner_groups(&self) -> &[String] {
        &self.owner_groups
    }

    /// The value of its label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }

    /// The message of its `PodScheduled=False` (`Unschedulable`) condition.
    pub fn unschedulable_message(&self) -> Option<&str> {
        self.unschedulable.as_deref()
    }

    /// Whether it has finished (`Succeeded` or `Failed`): it no longer
    /// takes anything of its node.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Whether it is being deleted.
    pub fn deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    /// `metadata.creationTimestamp`.
    pub fn created(&self) -> Option<&Time> {
        self.metadata.creation_timestamp.as_ref()
    }

    /// Its namespace and name.
    pub fn ns_and_name(&self) -> (&str, &str) {
        (
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// Its uid.
    pub fn uid(&self) -> &str {
        self.metadata.uid.as_deref().unwrap_or_default()
    }

    /// The reference an event about it names.
    pub fn reference(&self) -> ObjectReference {
        client_util::events::pod_reference_of(&self.metadata, None)
    }
}

impl k8s_openapi::Resource for CachedPod {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Pod";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for CachedPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The pod's JSON as far as [`CachedPod`] reads it: serde skips every
/// other field without keeping it. Every field may be absent or `null`, as
/// in a `Pod`.
mod wire {
    use super::*;

    #[derive(Deserialize)]
    pub(super) struct Pod {
        metadata: Option<Metadata>,
        spec: Option<Spec>,
        status: Option<Status>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Metadata {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
        creation_timestamp: Option<Time>,
        deletion_timestamp: Option<Time>,
        labels: Option<BTreeMap<String, String>>,
        owner_references: Option<Vec<OwnerReference>>,
    }

    #[derive(Deserialize)]
    struct OwnerReference {
        uid: String,
        controller: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Spec {
        node_name: Option<String>,
        scheduler_name: Option<String>,
        node_selector: Option<BTreeMap<String, String>>,
        containers: Option<Vec<Container>>,
        init_containers: Option<Vec<Container>>,
    }

    #[derive(Deserialize)]
    struct Container {
        resources: Option<ResourceRequirements>,
        ports: Option<Vec<ContainerPort>>,
    }

    #[derive(Deserialize)]
    struct Status {
        phase: Option<String>,
        conditions: Option<Vec<Condition>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Condition {
        #[serde(rename = "type")]
        type_: String,
        status: String,
        reason: Option<String>,
        message: Option<String>,
    }

    impl From<Pod> for CachedPod {
        fn from(pod: Pod) -> Self {
            let spec = pod.spec;
            let (containers, init_containers) = spec
                .as_ref()
                .map(|s| {
                    (
                        s.containers.as_deref().unwrap_or_default(),
                        s.init_containers.as_deref().unwrap_or_default(),
                    )
                })
                .unwrap_or_default();
            let demand = algorithm::demand_of(
                containers
                    .iter()
                    .map(|c| (c.resources.as_ref(), c.ports.as_deref().unwrap_or_default())),
                init_containers.iter().map(|c| c.resources.as_ref()),
            );
            let (identity, labels, owners) = match pod.metadata {
                Some(m) => (
                    ObjectMeta {
                        name: m.name,
                        namespace: m.namespace,
                        uid: m.uid,
                        resource_version: m.resource_version,
                        creation_timestamp: m.creation_timestamp,
                        deletion_timestamp: m.deletion_timestamp,
                        ..ObjectMeta::default()
                    },
                    m.labels.unwrap_or_default(),
                    m.owner_references.unwrap_or_default(),
                ),
                None => Default::default(),
            };
            let (node_name, scheduler_name, node_selector) = spec
                .map(|s| (s.node_name, s.scheduler_name, s.node_selector))
                .unwrap_or_default();
            let (phase, conditions) = pod
                .status
                .map(|s| (s.phase, s.conditions))
                .unwrap_or_default();
            CachedPod {
                metadata: identity,
                node_name: node_name.unwrap_or_default(),
                scheduler_name,
                node_selector,
                demand,
                owner_groups: owners
                    .into_iter()
                    .filter(|o| o.controller == Some(true))
                    .map(|o| format!("owner:{}", o.uid))
                    .collect(),
                // A B-tree map iterates in key order.
                labels: labels.into_iter().collect(),
                unschedulable: conditions.into_iter().flatten().find_map(|c| {
                    (c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable"))
                    .then(|| c.message.unwrap_or_default())
                }),
                finished: matches!(phase.as_deref(), Some("Succeeded" | "Failed")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use super::*;

    fn whole_pod() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "creationTimestamp": "2026-12-07T09:00:00Z",
                "labels": {"tier": "db", "app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ReplicationController",
                        "name": "web", "uid": "rc", "controller": true},
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "cm"}],
                "managedFields": [{"manager": "ctl", "operation": "Update"}]},
            "spec": {"nodeName": "n1", "schedulerName": "default-scheduler",
                "nodeSelector": {"disk": "ssd"}, "tolerations": [{"operator": "Exists"}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "initContainers": [{"name": "i", "image": "big",
                    "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}],
                "containers": [
                    {"name": "c", "image": "big", "command": ["sh"],
                        "env": [{"name": "A", "value": "1"}],
                        "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}},
                        "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080},
                            {"containerPort": 53, "hostPort": 53, "protocol": "UDP"}]},
                    {"name": "d", "image": "big",
                        "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}}]},
            "status": {"phase": "Running", "podIP": "10.244.1.2",
                "conditions": [{"type": "Ready", "status": "True"},
                    {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0,
                    "image": "big", "imageID": ""}]},
        })
    }

    /// The demand read from the JSON is what the scheduler works out for
    /// the same pod decoded whole, and so is what else it reads.
    #[test]
    fn a_cached_pod_keeps_what_the_scheduler_reads_of_the_whole_pod() {
        let cached: CachedPod = serde_json::from_value(whole_pod()).unwrap();
        let whole: Pod = serde_json::from_value(whole_pod()).unwrap();
        assert_eq!(cached.demand(), &algorithm::demand(&whole));
        assert_eq!(cached.demand().milli_cpu, 2000);
        assert_eq!(cached.ns_and_name(), ("ns", "p"));
        assert_eq!(cached.uid(), "u");
        assert_eq!(cached.node_name(), "n1");
        assert_eq!(cached.scheduler_name(), Some("default-scheduler"));
        assert_eq!(
            cached.node_selector(),
            whole.spec.as_ref().unwrap().node_selector.as_ref()
        );
        assert_eq!(cached.owner_groups(), ["owner:rc"]);
        assert_eq!(cached.label("app"), Some("web"));
        assert_eq!(cached.label("tier"), Some("db"));
        assert_eq!(cached.label("name"), None);
        assert_eq!(cached.unschedulable_message(), None);
        assert!(!cached.finished());
        assert!(!cached.deleting());
        assert_eq!(cached.created(), whole.metadata.creation_timestamp.as_ref());
        assert_eq!(
            cached.reference(),
            client_util::events::pod_reference(&whole, None)
        );
        // Nothing else of the metadata is kept.
        assert_eq!(
            cached.metadata,
            ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                resource_version: Some("7".into()),
                creation_timestamp: whole.metadata.creation_timestamp.clone(),
                ..ObjectMeta::default()
            }
        );
    }

    #[test]
    fn a_finished_pod_says_so() {
        for (phase, finished) in [
            ("Succeeded", true),
            ("Failed", true),
            ("Running", false),
            ("Pending", false),
        ] {
            let mut pod = whole_pod();
            pod["status"]["phase"] = json!(phase);
            let cached: CachedPod = serde_json::from_value(pod).unwrap();
            assert_eq!(cached.finished(), finished, "{phase}");
        }
    }

    /// Only the condition the scheduler writes counts as its last word.
    #[test]
    fn the_unschedulable_message_is_that_of_the_schedulers_condition() {
        let with = |condition: serde_json::Value| {
            let mut pod = whole_pod();
            pod["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}, condition]);
            serde_json::from_value::<CachedPod>(pod).unwrap()
        };
        let written = with(json!({"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available"}));
        assert_eq!(
            written.unschedulable_message(),
            Some("0/3 nodes are available")
        );
        for other in [
            json!({"type": "PodScheduled", "status": "True"}),
            json!({"type": "PodScheduled", "status": "False", "reason": "SchedulerError",
                "message": "m"}),
            json!({"type": "Ready", "status": "False", "reason": "Unschedulable",
                "message": "m"}),
        ] {
            assert_eq!(with(other.clone()).unschedulable_message(), None, "{other}");
        }
    }

    #[test]
    fn a_deleted_pod_says_so() {
        let mut pod = whole_pod();
        pod["metadata"]["deletionTimestamp"] = json!("2026-12-07T09:01:00Z");
        assert!(serde_json::from_value::<CachedPod>(pod).unwrap().deleting());
    }

    /// What a `Pod` decodes from, this does too: absent and `null` fields.
    #[test]
    fn absent_and_null_fields_decode_as_in_a_pod() {
        for pod in [
            json!({}),
            json!({"metadata": null, "spec": null, "status": null}),
            json!({"metadata": {"labels": null, "ownerReferences": null},
                "spec": {"containers": null, "initContainers": null, "nodeName": null},
                "status": {"phase": null, "conditions": null}}),
            json!({"spec": {"containers": [{"name": "c", "resources": null, "ports": null}]}}),
        ] {
            let cached: CachedPod = serde_json::from_value(pod.clone()).unwrap();
            let whole: Pod = serde_json::from_value(pod).unwrap();
            assert_eq!(cached.demand(), &algorithm::demand(&whole));
            assert_eq!(cached.node_name(), "");
            assert!(cached.owner_groups().is_empty());
        }
    }

    /// What a `Pod` refuses, this refuses too, so that the reflector reports
    /// a broken object instead of caching a pod that takes nothing.
    #[test]
    fn a_malformed_demand_is_an_error_as_for_a_pod() {
        let pod =
            json!({"spec": {"containers": [{"name": "c", "resources": {"requests": "lots"}}]}});
        assert!(serde_json::from_value::<Pod>(pod.clone()).is_err());
        assert!(serde_json::from_value::<CachedPod>(pod).is_err());
    }
}
