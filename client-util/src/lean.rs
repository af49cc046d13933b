//! Lean cache entries: transforms a reflector applies to every object
//! before storing it ([`crate::reflect_with`]), so that a component holding
//! every pod of a large cluster keeps only the fields its loops read, as
//! client-go's `SetTransform` lets Kubernetes' scheduler and controller
//! manager drop `managedFields`.
//!
//! What is kept is the union of what the scheduler and the controller
//! manager read; a field added to one of their loops must be kept here
//! too (each function says what it keeps). A transformed object is never
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
    fn a_lean_pod_keeps_what_scheduling_and_controllers_read() {
        let mut p: Pod = serde_json::from_value(json!({
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
        .unwrap();
        pod(&mut p);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                    "labels": {"app": "web"},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
                        "name": "web", "uid": "rc", "controller": true}]},
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
