//! Lean cache entries: transforms a reflector applies to every object
//! before storing it ([`crate::reflect_with`]), so that a component holding
//! every pod of a large cluster keeps only the fields its loops read, as
//! client-go's `SetTransform` lets Kubernetes' scheduler and controller
//! manager drop `managedFields`.
//!
//! [`controller_pod`] keeps only what the controller manager reads of a
//! pod, [`node`] what the scheduler and the controller manager read of a
//! node. (The scheduler keeps its pods in a type of its own,
//! `scheduler::cached_pod`, since even a trimmed `Pod` weighs kilobytes.)
//! A field added to one of their loops must be kept here too (each
//! function says what it keeps). A transformed object is never
//! written back: its owner patches what it changes.

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Drops `managedFields` and every annotation: neither the scheduler nor
/// the controller manager reads a pod's or a node's annotations, and the
/// largest of them (`kubectl.kubernetes.io/last-applied-configuration`)
/// is a second copy of the object.
pub fn metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.annotations = None;
}

/// A pod as the controller manager reads it.
///
/// At 30,000 pods the controller manager's cache of pods trimmed only as
/// the scheduler needed them weighed more
/// than the apiserver itself (issue #19); what a cached pod costs is mostly
/// its heap: each container (about 0.9 KiB inline) and its two resource
/// maps, five conditions, tolerations and a dozen small strings.
///
/// Kept: the metadata but `managedFields`, annotations and `generateName`;
/// of the spec, `nodeName`, the containers that declare ports reduced to
/// their name and ports (the endpoints controller's named target ports),
/// and the tolerations without `tolerationSeconds` (the node lifecycle's
/// eviction spares pods that tolerate `NoExecute` for ever); of the status,
/// `phase`, `podIP` and the `Ready` condition (readiness, and its
/// `lastTransitionTime` for a DaemonSet's `minReadySeconds`). Everything
/// else is dropped: a reader of another field must add it here.
pub fn controller_pod(pod: &mut Pod) {
    metadata(&mut pod.metadata);
    pod.metadata.generate_name = None;
    if let Some(spec) = pod.spec.as_mut() {
        let containers = std::mem::take(&mut spec.containers)
            .into_iter()
            .filter(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty()))
            .map(|c| Container {
                name: c.name,
                ports: c.ports,
                ..Container::default()
            })
            .collect();
        let tolerations = spec.tolerations.take().and_then(|ts| {
            let forever: Vec<_> = ts
                .into_iter()
                .filter(|t| t.toleration_seconds.is_none())
                .collect();
            (!forever.is_empty()).then_some(forever)
        });
        *spec = PodSpec {
            node_name: spec.node_name.take(),
            containers,
            tolerations,
            ..PodSpec::default()
        };
    }
    if let Some(status) = pod.status.as_mut() {
        let ready = status
            .conditions
            .take()
            .and_then(|cs| cs.into_iter().find(|c| c.type_ == "Ready"));
        *status = PodStatus {
            phase: status.phase.take(),
            pod_ip: status.pod_ip.take(),
            conditions: ready.map(|c| vec![c]),
            ..PodStatus::default()
        };
    }
}

/// A node without `managedFields`, annotations and its list of images
/// (Kubernetes' largest node field, read by none of the loops).
pub fn node(node: &mut Node) {
    metadata(&mut node.metadata);
    if let Some(status) = node.status.as_mut() {
        status.images = None;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_controller_pod_keeps_only_what_the_controller_manager_reads() {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "generateName": "web-", "creationTimestamp": "2026-12-06T23:00:00Z",
                "deletionTimestamp": "2026-12-06T23:05:00Z", "finalizers": ["f"],
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
                    "name": "web", "uid": "rc", "controller": true}],
                "managedFields": [{"manager": "ctl", "operation": "Update"}]},
            "spec": {"nodeName": "n1", "schedulerName": "default-scheduler",
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "hostname": "h",
                "tolerations": [
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                        "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                        "effect": "NoExecute"}],
                "containers": [
                    {"name": "c", "image": "big", "command": ["sh"],
                        "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
                        "ports": [{"name": "http", "containerPort": 80}]},
                    {"name": "sidecar", "image": "small",
                        "resources": {"requests": {"memory": "1Mi"}}}],
                "initContainers": [{"name": "i", "image": "x"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "hostIP": "192.168.0.1",
                "qosClass": "Burstable", "startTime": "2026-12-06T23:00:01Z",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True",
                        "lastTransitionTime": "2026-12-06T23:00:02Z"},
                    {"type": "ContainersReady", "status": "True"}],
                "containerStatuses": [{"name": "c", "image": "big", "imageID": "",
                    "ready": true, "restartCount": 0}]},
        }))
        .unwrap();
        controller_pod(&mut p);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                    "creationTimestamp": "2026-12-06T23:00:00Z",
                    "deletionTimestamp": "2026-12-06T23:05:00Z", "finalizers": ["f"],
                    "labels": {"app": "web"},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
                        "name": "web", "uid": "rc", "controller": true}]},
                "spec": {"nodeName": "n1",
                    "tolerations": [{"key": "node.kubernetes.io/not-ready",
                        "operator": "Exists", "effect": "NoExecute"}],
                    "containers": [{"name": "c",
                        "ports": [{"name": "http", "containerPort": 80}]}]},
                "status": {"phase": "Running", "podIP": "10.0.0.1",
                    "conditions": [{"type": "Ready", "status": "True",
                        "lastTransitionTime": "2026-12-06T23:00:02Z"}]},
            })
        );
    }

    #[test]
    fn a_lean_node_keeps_its_status_but_the_images() {
        let mut n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"},
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "2"},
                "conditions": [{"type": "Ready", "status": "True"}],
                "images": [{"names": ["busybox"], "sizeBytes": 1}]},
        }))
        .unwrap();
        node(&mut n);
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1", "labels": {"zone": "a"}},
                "spec": {"podCIDR": "10.244.1.0/24",
                    "taints": [{"key": "k", "effect": "NoSchedule"}]},
                "status": {"capacity": {"cpu": "2"},
                    "conditions": [{"type": "Ready", "status": "True"}]},
            })
        );
    }
}
