//! The Node object: registration and the heartbeat of its Ready condition.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

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

/// Creates the Node if it does not exist, then writes its status.
///
/// # Errors
///
/// The apiserver's (retry later).
pub async fn register(
    nodes: &Api<Node>,
    cfg: &NodeConfig,
    runtime: &dyn Runtime,
) -> kube::Result<()> {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            labels: Some([("kubernetes.io/hostname".to_string(), cfg.name.clone())].into()),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    heartbeat(nodes, cfg, runtime).await
}

/// Writes the Ready condition (and addresses, capacity) through nodes/status.
/// The previous transition time is kept while the condition stays the same.
///
/// # Errors
///
/// The apiserver's; 404 when the Node was deleted (register again).
pub async fn heartbeat(
    nodes: &Api<Node>,
    cfg: &NodeConfig,
    runtime: &dyn Runtime,
) -> kube::Result<()> {
    let error = runtime.ping().await.err().map(|e| e.to_string());
    let mut status = node_status(cfg, error.as_deref());
    if let Ok(current) = nodes.get_status(&cfg.name).await {
        let old = current
            .status
            .and_then(|s| s.conditions)
            .and_then(|cs| cs.into_iter().find(|c| c.type_ == "Ready"));
        if let (Some(old), Some(new)) = (
            old,
            status.conditions.as_mut().and_then(|cs| cs.first_mut()),
        ) {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time;
            }
        }
    }
    nodes
        .patch_status(
            &cfg.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    Ok(())
}

/// Registers, then heartbeats every `period` forever, with back-off while
/// the apiserver is unreachable.
pub async fn run(
    nodes: Api<Node>,
    cfg: NodeConfig,
    runtime: std::sync::Arc<dyn Runtime>,
    period: Duration,
) {
    let mut registered = false;
    let mut delay = Duration::from_millis(200);
    loop {
        let result = if registered {
            heartbeat(&nodes, &cfg, runtime.as_ref()).await
        } else {
            register(&nodes, &cfg, runtime.as_ref()).await
        };
        match result {
            Ok(()) => {
                registered = true;
                delay = Duration::from_millis(200);
                tokio::time::sleep(period).await;
            }
            Err(e) => {
                if let kube::Error::Api(s) = &e {
                    if s.code == 404 {
                        registered = false;
                    }
                }
                tracing::warn!(node = %cfg.name, error = %e, "node status update failed");
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
        let cfg = NodeConfig {
            name: "n1".into(),
            address: "127.0.0.1".into(),
            cpus: 2,
            memory_kib: 1024,
            max_pods: 110,
            kubelet_port: 10250,
        };
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
}
