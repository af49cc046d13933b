//! The Node object and the node's heartbeats, as Kubernetes' kubelet does
//! them since 1.17:
//!
//! - a `coordination.k8s.io/v1` Lease `kube-node-lease/<node>` renewed every
//!   `--heartbeat-period` (10 s): the cheap heartbeat, a few hundred bytes;
//! - the Node status (Ready condition, addresses, capacity) computed every
//!   `--node-status-update-frequency` (10 s) but written only when it
//!   changed or `--node-status-report-frequency` (5 min) has passed since the
//!   last write: with hundreds of nodes, a whole status every 10 s each was
//!   most of etcd's history.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::runtime::Runtime;

/// The kubelet version reported in `nodeInfo.kubeletVersion`.
pub const KUBELET_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "-mini-k8s");

/// What the node offers.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name.
    pub name: String,
    /// Its address (InternalIP).
    pub address: String,
    /// CPUs (whole cores).
    pub cpus: i64,
    /// Memory in KiB.
    pub memory_kib: i64,
    /// Most pods it runs.
    pub max_pods: i64,
    /// The kubelet's HTTP port (`daemonEndpoints.kubeletEndpoint`).
    pub kubelet_port: i32,
}

impl NodeConfig {
    /// CPUs and memory read from the host (`available_parallelism`, `/proc/meminfo`).
    pub fn host_resources() -> (i64, i64) {
        let cpus = std::thread::available_parallelism()
            .map(|n| i64::try_from(n.get()).unwrap_or(1))
            .unwrap_or(1);
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0);
        (cpus, memory_kib)
    }
}

fn resources(cfg: &NodeConfig) -> std::collections::BTreeMap<String, Quantity> {
    [
        ("cpu", cfg.cpus.to_string()),
        ("memory", format!("{}Ki", cfg.memory_kib)),
        ("pods", cfg.max_pods.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect()
}

/// The node's status with a Ready condition from `runtime_error` (None: ready).
pub fn node_status(cfg: &NodeConfig, runtime_error: Option<&str>) -> NodeStatus {
    let now = Time(jiff::Timestamp::now());
    let (status, reason, message) = match runtime_error {
        None => (
            "True",
            "KubeletReady",
            "kubelet is posting ready status".to_string(),
        ),
        Some(e) => (
            "False",
            "ContainerRuntimeUnreachable",
            format!("container runtime is down: {e}"),
        ),
    };
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: cfg.address.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.name.clone(),
            },
        ]),
        capacity: Some(resources(cfg)),
        allocatable: Some(resources(cfg)),
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(now),
        }]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: cfg.kubelet_port,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
            container_runtime_version: "docker".into(),
            operating_system: "linux".into(),
            architecture: std::env::consts::ARCH.into(),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// The namespace of the nodes' heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// How often the node heartbeats and reports, with Kubernetes' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeats {
    /// How often the Lease is renewed (Kubernetes: a quarter of its
    /// duration, 10 s).
    pub lease_renew_interval: Duration,
    /// The Lease's `leaseDurationSeconds` (`--node-lease-duration-seconds`,
    /// 40).
    pub lease_duration_seconds: i32,
    /// How often the Node status is computed and, if changed, written
    /// (`--node-status-update-frequency`, 10 s).
    pub status_update_frequency: Duration,
    /// The longest an unchanged status goes unwritten
    /// (`--node-status-report-frequency`, 5 min).
    pub status_report_frequency: Duration,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Self {
            lease_renew_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            status_update_frequency: Duration::from_secs(10),
            status_report_frequency: Duration::from_secs(300),
        }
    }
}

/// Creates the Node if it does not exist.
///
/// # Errors
///
/// The apiserver's (retry later).
pub async fn register(nodes: &Api<Node>, cfg: &NodeConfig) -> kube::Result<()> {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            labels: Some([("kubernetes.io/hostname".to_string(), cfg.name.clone())].into()),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// What a status write says, without the heartbeat times: two statuses
/// with equal content say the same, however far apart they were computed.
/// `stored` fields we do not write (other conditions' absence, say) count
/// only where we write them, so a difference is always ours to fix.
fn content(status: &NodeStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or_default();
    if let Some(conditions) = value.get_mut("conditions").and_then(Value::as_array_mut) {
        for condition in conditions {
            if let Some(map) = condition.as_object_mut() {
                map.remove("lastHeartbeatTime");
            }
        }
    }
    value
}

/// Whether `new` says something `stored` does not (Kubernetes'
/// `nodeStatusHasChanged`: everything but heartbeat times counts).
pub fn status_changed(stored: &NodeStatus, new: &NodeStatus) -> bool {
    let stored = content(stored);
    let new = content(new);
    let Some(fields) = new.as_object() else {
        return true;
    };
    fields
        .iter()
        .any(|(field, value)| stored.get(field) != Some(value))
}

/// Computes the Node status and writes it through `nodes/status` when it
/// changed, or when `force` (the report frequency passed, or the first
/// write of this kubelet). The previous transition time is kept while the
/// Ready condition stays the same. Returns whether it wrote.
///
/// # Errors
///
/// The apiserver's; 404 when the Node was deleted (register again).
pub async fn update_status(
    nodes: &Api<Node>,
    cfg: &NodeConfig,
    runtime: &dyn Runtime,
    force: bool,
) -> kube::Result<bool> {
    let error = runtime.ping().await.err().map(|e| e.to_string());
    let mut status = node_status(cfg, error.as_deref());
    let stored = nodes
        .get_status(&cfg.name)
        .await?
        .status
        .unwrap_or_default();
    let old = stored
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    if let (Some(old), Some(new)) = (
        old,
        status.conditions.as_mut().and_then(|cs| cs.first_mut()),
    ) {
        if old.status == new.status {
            new.last_transition_time
                .clone_from(&old.last_transition_time);
        }
    }
    if !force && !status_changed(&stored, &status) {
        return Ok(false);
    }
    nodes
        .patch_status(
            &cfg.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    Ok(true)
}

/// Registers the Node, then keeps its status: computed every
/// `status_update_frequency`, written on change or every
/// `status_report_frequency`, with back-off while the apiserver is
/// unreachable. Runs forever.
pub async fn run(
    nodes: Api<Node>,
    cfg: NodeConfig,
    runtime: std::sync::Arc<dyn Runtime>,
    beats: Heartbeats,
) {
    let period = beats.status_update_frequency;
    let mut registered = false;
    let mut last_write: Option<Instant> = None;
    let mut delay = Duration::from_millis(200);
    loop {
        let result = async {
            if !registered {
                register(&nodes, &cfg).await?;
                registered = true;
            }
            let due = last_write.is_none_or(|at| at.elapsed() >= beats.status_report_frequency);
            update_status(&nodes, &cfg, runtime.as_ref(), due).await
        }
        .await;
        match result {
            Ok(wrote) => {
                if wrote {
                    last_write = Some(Instant::now());
                }
                delay = Duration::from_millis(200);
                tokio::time::sleep(period).await;
            }
            Err(e) => {
                if let kube::Error::Api(s) = &e {
                    if s.code == 404 {
                        registered = false;
                        last_write = None;
                    }
                }
                tracing::warn!(node = %cfg.name, error = %e, "node status update failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(period);
            }
        }
    }
}

/// The owner reference a node's Lease carries, as Kubernetes' kubelet
/// sets it: deleting the Node collects its Lease.
fn node_owner(node: &Node) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.metadata.name.clone()?,
        uid: node.metadata.uid.clone()?,
        ..OwnerReference::default()
    })
}

/// The Lease `existing` renewed (or a new one) at `now` for node `name`,
/// owned by `node` when it is known.
pub fn renewed_lease(
    existing: Option<Lease>,
    name: &str,
    duration_seconds: i32,
    node: Option<&Node>,
    now: jiff::Timestamp,
) -> Lease {
    let mut lease = existing.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NODE_LEASE_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(name.into());
    spec.lease_duration_seconds = Some(duration_seconds);
    spec.renew_time = Some(MicroTime(now));
    let owned = lease
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.kind == "Node"));
    if !owned {
        if let Some(owner) = node.and_then(node_owner) {
            lease
                .metadata
                .owner_references
                .get_or_insert_with(Vec::new)
                .push(owner);
        }
    }
    lease
}

/// Renews the Lease once: creates it when missing, replaces it otherwise.
/// `latest` is the Lease as this kubelet last wrote it: a renewal starts
/// from it with no read (as Kubernetes' lease controller does), and reads
/// only when there is none, which a failed write (a conflict: someone else
/// wrote it) makes so.
///
/// # Errors
///
/// The apiserver's.
pub async fn renew_lease(
    leases: &Api<Lease>,
    nodes: &Api<Node>,
    name: &str,
    duration_seconds: i32,
    latest: &mut Option<Lease>,
) -> kube::Result<()> {
    let existing = match latest.take() {
        Some(lease) => Some(lease),
        None => leases.get_opt(name).await?,
    };
    let owned = existing
        .as_ref()
        .and_then(|l| l.metadata.owner_references.as_ref())
        .is_some_and(|refs| refs.iter().any(|r| r.kind == "Node"));
    // The Node is read only until the Lease carries its owner reference.
    let node = if owned {
        None
    } else {
        nodes.get_opt(name).await?
    };
    let creating = existing.is_none();
    let lease = renewed_lease(
        existing,
        name,
        duration_seconds,
        node.as_ref(),
        jiff::Timestamp::now(),
    );
    let written = if creating {
        leases.create(&PostParams::default(), &lease).await?
    } else {
        leases.replace(name, &PostParams::default(), &lease).await?
    };
    *latest = Some(written);
    Ok(())
}

/// Renews the node's Lease every `lease_renew_interval` forever; failures
/// are retried at 200 ms doubling up to the interval, as Kubernetes'
/// lease controller backs off.
///
/// Each renewal may take at most one interval (Kubernetes gives the
/// kubelet's heartbeat client the same bound): a request stuck on an etcd
/// member that lost its leader would otherwise hold every heartbeat for
/// etcd's own timeout, long enough for a live node to look dead.
pub async fn run_lease(leases: Api<Lease>, nodes: Api<Node>, name: String, beats: Heartbeats) {
    let period = beats.lease_renew_interval;
    let mut delay = Duration::from_millis(200);
    let mut latest = None;
    loop {
        let renewal = renew_lease(
            &leases,
            &nodes,
            &name,
            beats.lease_duration_seconds,
            &mut latest,
        );
        // A renewal cut short leaves `latest` empty (it is taken first), so
        // the next one reads the Lease: the write may or may not have landed.
        let failure = match tokio::time::timeout(period, renewal).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {period:?}")),
        };
        match failure {
            None => {
                delay = Duration::from_millis(200);
                tokio::time::sleep(period).await;
            }
            Some(error) => {
                tracing::warn!(node = %name, %error, "renewing the node lease failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(period);
            }
        }
    }
}

/// Keeps `spec.podCIDR` and `spec.podCIDRs` of the Node `name` at `cidr`:
/// the range this node's pods get their addresses from (its Docker bridge),
/// which a route controller routes to the node's InternalIP. Checks every
/// 200 ms until the Node is registered and set, then every `period`, so a
/// Node deleted and registered again gets its CIDR back. A Node that already
/// has another CIDR keeps it (the apiserver refuses the change; logged).
pub async fn keep_pod_cidr(nodes: Api<Node>, name: String, cidr: String, period: Duration) {
    let mut set = false;
    loop {
        match nodes.get_opt(&name).await {
            Ok(Some(node)) => {
                let current = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref());
                if current == Some(cidr.as_str()) {
                    set = true;
                } else {
                    let patch = json!({ "spec": { "podCIDR": cidr, "podCIDRs": [cidr] } });
                    match nodes
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(node = %name, %cidr, "pod CIDR set");
                            set = true;
                        }
                        Err(e) => {
                            tracing::warn!(node = %name, %cidr, error = %e, "setting the pod CIDR failed");
                        }
                    }
                }
            }
            Ok(None) => set = false,
            Err(e) => tracing::warn!(node = %name, error = %e, "reading the node failed"),
        }
        tokio::time::sleep(if set {
            period
        } else {
            Duration::from_millis(200)
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_runtime_makes_the_node_not_ready_with_a_reason() {
        let cfg = cfg();
        let ready = node_status(&cfg, None);
        let ready = &ready.conditions.unwrap()[0];
        assert_eq!(ready.status, "True");
        let down = node_status(&cfg, Some("no socket"));
        let capacity = down.capacity.clone().unwrap();
        assert_eq!(capacity["pods"].0, "110");
        assert_eq!(capacity["memory"].0, "1024Ki");
        let down = &down.conditions.unwrap()[0];
        assert_eq!(down.status, "False");
        assert_eq!(down.reason.as_deref(), Some("ContainerRuntimeUnreachable"));
    }

    fn cfg() -> NodeConfig {
        NodeConfig {
            name: "n1".into(),
            address: "127.0.0.1".into(),
            cpus: 2,
            memory_kib: 1024,
            max_pods: 110,
            kubelet_port: 10250,
        }
    }

    #[test]
    fn only_a_new_heartbeat_time_is_no_change() {
        let stored = node_status(&cfg(), None);
        let mut later = node_status(&cfg(), None);
        // Computed later: only the heartbeat (and, without the stored
        // transition carried over, the transition) differ.
        if let (Some(new), Some(old)) = (
            later.conditions.as_mut().and_then(|c| c.first_mut()),
            stored.conditions.as_ref().and_then(|c| c.first()),
        ) {
            new.last_heartbeat_time = Some(Time(jiff::Timestamp::UNIX_EPOCH));
            new.last_transition_time
                .clone_from(&old.last_transition_time);
        }
        assert!(!status_changed(&stored, &later));
        let down = node_status(&cfg(), Some("no socket"));
        assert!(status_changed(&stored, &down));
        let mut bigger = cfg();
        bigger.max_pods = 111;
        let mut resized = node_status(&bigger, None);
        resized.conditions.clone_from(&stored.conditions);
        assert!(status_changed(&stored, &resized));
        // A status written by someone else (the node lifecycle controller's
        // Ready=Unknown) is a change to undo.
        let mut unknown = stored.clone();
        if let Some(c) = unknown.conditions.as_mut().and_then(|c| c.first_mut()) {
            c.status = "Unknown".into();
        }
        assert!(status_changed(&unknown, &stored));
        assert!(status_changed(&NodeStatus::default(), &stored));
    }

    #[test]
    fn a_lease_is_held_by_its_node_and_owned_by_it() {
        let t = jiff::Timestamp::UNIX_EPOCH;
        let node: Node = serde_json::from_value(json!({
            "metadata": { "name": "n1", "uid": "u-1" }
        }))
        .unwrap();
        let lease = renewed_lease(None, "n1", 40, Some(&node), t);
        assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-node-lease"));
        let spec = lease.spec.clone().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(spec.renew_time, Some(MicroTime(t)));
        let owners = lease.metadata.owner_references.clone().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (owners[0].kind.as_str(), owners[0].uid.as_str()),
            ("Node", "u-1")
        );
        // Renewed later: a new time, the owner not repeated.
        let later = t + jiff::SignedDuration::from_secs(10);
        let again = renewed_lease(Some(lease), "n1", 40, Some(&node), later);
        assert_eq!(again.spec.unwrap().renew_time, Some(MicroTime(later)));
        assert_eq!(again.metadata.owner_references.unwrap().len(), 1);
        // A Node not registered yet: no owner until it is.
        let orphan = renewed_lease(None, "n1", 40, None, t);
        assert!(orphan.metadata.owner_references.is_none());
    }
}
