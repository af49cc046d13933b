//! Lean cache entries: transforms a reflector applies to every object
//! before storing it ([`crate::reflect_with`]), so that a component holding
//! every pod of a large cluster keeps only the fields its loops read, as
//! client-go's `SetTransform` lets Kubernetes' scheduler and controller
//! manager drop `managedFields`.
//!
//! [`pod`] keeps what the scheduler reads of a pod it has to place (the
//! union of what it and the controller manager read, as it began);
//! [`controller_pod`] only what the controller manager reads,
//! [`scheduled_pod`] only what the scheduler reads of a bound pod.
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

/// A container reduced to its name, resource requests and limits (the
/// scheduler's fit) and ports (host ports for the scheduler, named ports
/// for the endpoints controller).
fn container(c: &mut Container) {
    *c = Container {
        name: std::mem::take(&mut c.name),
        resources: c.resources.take(),
        ports: c.ports.take(),
        ..Container::default()
    };
}

/// A pod as the scheduler and the controller manager read it.
///
/// Kept: the metadata but `managedFields` and annotations ([`metadata`]);
/// of the spec, the containers' and init containers' names, resources
/// and ports, and every scalar and placement field (`nodeName`,
/// `schedulerName`, `nodeSelector`, `affinity`, `tolerations`, `hostname`,
/// `subdomain`, `priority`...); of the status, the phase, conditions,
/// addresses, reason and message. Dropped: everything else a kubelet
/// needs to run the containers (images, commands, environment, probes,
/// mounts, volumes, ephemeral containers) and the container statuses.
pub fn pod(pod: &mut Pod) {
    metadata(&mut pod.metadata);
    if let Some(spec) = pod.spec.as_mut() {
        spec_of(spec);
    }
    if let Some(status) = pod.status.as_mut() {
        status_of(status);
    }
}

fn spec_of(spec: &mut PodSpec) {
    spec.containers.iter_mut().for_each(container);
    spec.init_containers
        .iter_mut()
        .flatten()
        .for_each(container);
    spec.ephemeral_containers = None;
    spec.volumes = None;
    spec.image_pull_secrets = None;
}

fn status_of(status: &mut PodStatus) {
    status.container_statuses = None;
    status.init_container_statuses = None;
    status.ephemeral_container_statuses = None;
    status.resource_claim_statuses = None;
}

/// A pod as the controller manager reads it: far less than [`pod`], whose
/// container resources, tolerations and conditions are the scheduler's.
///
/// At 30,000 pods the controller manager's cache of [`pod`]s weighed more
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

/// A bound pod as the scheduler reads it: what it takes of its node (the
/// containers' and init containers' requests and host ports), its
/// spreading groups (owner references and labels) and whether it finished
/// (the phase). The pods still to place keep [`pod`]: their selectors,
/// affinity and tolerations decide where they go, while a bound pod's
/// only matter to its own node's kubelet.
///
/// Kept: the metadata but `managedFields`, annotations and `generateName`;
/// of the spec, `nodeName` and the containers as [`pod`] keeps them; of
/// the status, the phase. Everything else is dropped.
pub fn scheduled_pod(pod: &mut Pod) {
    metadata(&mut pod.metadata);
    pod.metadata.generate_name = None;
    if let Some(spec) = pod.spec.as_mut() {
        let mut containers = std::mem::take(&mut spec.containers);
        containers.iter_mut().for_each(container);
        let mut init_containers = spec.init_containers.take();
        init_containers.iter_mut().flatten().for_each(container);
        *spec = PodSpec {
            node_name: spec.node_name.take(),
            containers,
            init_containers,
            ..PodSpec::default()
        };
    }
    if let Some(status) = pod.status.as_mut() {
        *status = PodStatus {
            phase: status.phase.take(),
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

    /// A pod with something in every group of fields the transforms keep
    /// or drop.
    fn whole_pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
                    "name": "web", "uid": "rc", "controller": true}],
                "managedFields": [{"manager": "ctl", "operation": "Update"}]},
            "spec": {"nodeName": "n1", "schedulerName": "default-scheduler",
                "nodeSelector": {"disk": "ssd"}, "tolerations": [{"operator": "Exists"}],
                "hostname": "h", "subdomain": "s",
                "volumes": [{"name": "v", "emptyDir": {}}],
                "containers": [{"name": "c", "image": "big", "command": ["sh"],
                    "env": [{"name": "A", "value": "1"}],
                    "resources": {"requests": {"cpu": "100m"}},
                    "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080}],
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                "initContainers": [{"name": "i", "image": "x",
                    "resources": {"requests": {"memory": "1Mi"}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "image": "big", "imageID": "",
                    "ready": true, "restartCount": 0}]},
        }))
        .unwrap()
    }

    /// The metadata of [`whole_pod`] that every pod transform keeps.
    fn kept_metadata() -> serde_json::Value {
        json!({"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
            "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
                "name": "web", "uid": "rc", "controller": true}]})
    }

    #[test]
    fn a_lean_pod_keeps_what_scheduling_and_controllers_read() {
        let mut p = whole_pod();
        pod(&mut p);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": kept_metadata(),
                "spec": {"nodeName": "n1", "schedulerName": "default-scheduler",
                    "nodeSelector": {"disk": "ssd"}, "tolerations": [{"operator": "Exists"}],
                    "hostname": "h", "subdomain": "s",
                    "containers": [{"name": "c",
                        "resources": {"requests": {"cpu": "100m"}},
                        "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080}]}],
                    "initContainers": [{"name": "i",
                        "resources": {"requests": {"memory": "1Mi"}}}]},
                "status": {"phase": "Running", "podIP": "10.0.0.1",
                    "conditions": [{"type": "Ready", "status": "True"}]},
            })
        );
    }

    #[test]
    fn a_scheduled_pod_keeps_only_what_the_scheduler_reads_of_a_bound_pod() {
        let mut p = whole_pod();
        scheduled_pod(&mut p);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": kept_metadata(),
                "spec": {"nodeName": "n1",
                    "containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}},
                        "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080}]}],
                    "initContainers": [{"name": "i",
                        "resources": {"requests": {"memory": "1Mi"}}}]},
                "status": {"phase": "Running"},
            })
        );
    }

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
