//! Node lifecycle: a node that has given no sign of life for
//! `node_monitor_grace_period` becomes `Ready=Unknown`. Signs of life are,
//! as in Kubernetes' node lifecycle controller, a new `lastHeartbeatTime` of
//! its `Ready` condition or a new `renewTime` of its Lease
//! `kube-node-lease/<node>` (kubelets renew the Lease every 10 s and write
//! the Node status only on change or every 5 minutes). Once a node has been
//! not ready for `pod_eviction_timeout`, its pods are deleted so their
//! controllers recreate them elsewhere, except those that tolerate the
//! node's `NoExecute` taint (`node.kubernetes.io/unreachable` or
//! `not-ready`) for ever: DaemonSet pods stay bound to their node, as
//! Kubernetes' taint manager leaves them. Meanwhile the pods of an `Unknown`
//! node are marked `Ready=False`, so services stop sending them traffic.
//!
//! Heartbeat age is measured on this process's clock: the time at which the
//! cache last showed a new `lastHeartbeatTime` or `renewTime`, so clock skew between nodes
//! and the controller manager does not matter (a restart gives every node a
//! fresh grace period). Evicted pods are deleted with `gracePeriodSeconds=0`:
//! their kubelet is unreachable, so nothing would finish a graceful delete.

use std::collections::{HashMap, HashSet};

use client_util::{Reflected, StopFlag};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::Config;

/// What the monitor remembers about one node.
#[derive(Debug)]
struct Health {
    heartbeat: Option<String>,
    renewed: Option<String>,
    observed: Instant,
    not_ready_since: Option<Instant>,
}

/// Node health bookkeeping, separate from IO so that it can be tested with
/// paused time.
#[derive(Debug, Default)]
pub struct Monitor {
    nodes: HashMap<String, Health>,
    evicted: HashSet<String>,
}

/// What one pass decided for one node.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Healthy,
    /// The heartbeat is stale and the condition must become Unknown.
    MarkUnknown,
    /// Not ready, but not yet for the eviction timeout.
    NotReady,
    /// Not ready for longer than the eviction timeout: delete its pods.
    Evict,
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
}

/// The namespace of the nodes' Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

impl Monitor {
    /// Looks at one node and its Lease (if it has one) at `now` and
    /// decides.
    pub fn observe(
        &mut self,
        node: &Node,
        lease: Option<&Lease>,
        now: Instant,
        config: &Config,
    ) -> Verdict {
        let name = node.name_any();
        let cond = ready_condition(node);
        let heartbeat = cond
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0.to_string());
        let renewed = lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0.to_string());
        let health = self.nodes.entry(name).or_insert_with(|| Health {
            heartbeat: heartbeat.clone(),
            renewed: renewed.clone(),
            observed: now,
            not_ready_since: None,
        });
        // Either sign of life counts, as Kubernetes' probeTimestamp.
        if health.heartbeat != heartbeat {
            health.heartbeat = heartbeat;
            health.observed = now;
        }
        if renewed.is_some() && health.renewed != renewed {
            health.renewed = renewed;
            health.observed = now;
        }
        let status = cond.map_or("Unknown", |c| c.status.as_str());
        let stale = now.duration_since(health.observed) > config.node_monitor_grace_period;
        if stale && (status != "Unknown" || cond.is_none()) {
            health.not_ready_since.get_or_insert(now);
            return Verdict::MarkUnknown;
        }
        if status == "True" {
            health.not_ready_since = None;
            return Verdict::Healthy;
        }
        let since = *health.not_ready_since.get_or_insert(now);
        if now.duration_since(since) > config.pod_eviction_timeout {
            Verdict::Evict
        } else {
            Verdict::NotReady
        }
    }

    /// Forgets nodes no longer in the cache.
    pub fn retain(&mut self, names: &HashSet<String>) {
        self.nodes.retain(|n, _| names.contains(n));
    }
}

/// Runs the node monitor every `node_monitor_period` until `stop`.
pub async fn run(
    client: Client,
    config: Config,
    nodes: Reflected<Node>,
    pods: Reflected<Pod>,
    stop: StopFlag,
) {
    let mut monitor = Monitor::default();
    let node_api: Api<Node> = Api::all(client.clone());
    // Only this loop reads Leases, so their cache is its own.
    let leases = client_util::reflect(
        Api::<Lease>::namespaced(client.clone(), NODE_LEASE_NAMESPACE),
        watcher::Config::default(),
        stop.clone(),
    );
    loop {
        let now = Instant::now();
        let all = nodes.store.state();
        let names: HashSet<String> = all.iter().map(|n| n.name_any()).collect();
        monitor.retain(&names);
        for node in &all {
            let lease = leases
                .store
                .get(&ObjectRef::new(&node.name_any()).within(NODE_LEASE_NAMESPACE));
            match monitor.observe(node, lease.as_deref(), now, &config) {
                Verdict::Healthy => {}
                Verdict::NotReady => mark_pods_not_ready(&client, &pods, node).await,
                Verdict::MarkUnknown => mark_unknown(&node_api, node).await,
                Verdict::Evict => {
                    evict(&client, &mut monitor.evicted, &pods, node).await;
                }
            }
        }
        let live: HashSet<String> = pods.store.state().iter().filter_map(|p| p.uid()).collect();
        monitor.evicted.retain(|u| live.contains(u));
        tokio::select! {
            () = stop.stopped() => return,
            () = tokio::time::sleep(config.node_monitor_period) => {}
        }
    }
}

async fn mark_unknown(api: &Api<Node>, node: &Node) {
    let name = node.name_any();
    let now = jiff::Timestamp::now().to_string();
    let heartbeat = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_string());
    tracing::info!(node = %name, "node stopped posting status; marking Ready=Unknown");
    let patch = json!({"status": {"conditions": [{
        "type": "Ready",
        "status": "Unknown",
        "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.",
        "lastHeartbeatTime": heartbeat,
        "lastTransitionTime": now,
    }]}});
    if let Err(error) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        tracing::warn!(node = %name, %error, "marking the node Ready=Unknown");
    }
}

/// On a node whose status is Unknown, sets the Ready condition of every pod
/// that still claims to be ready to False, so that endpoints drop them.
/// Writes only pods that are still Ready=True (level-triggered).
async fn mark_pods_not_ready(client: &Client, pods: &Reflected<Pod>, node: &Node) {
    if ready_condition(node).map(|c| c.status.as_str()) != Some("Unknown") {
        return;
    }
    let name = node.name_any();
    for pod in pods.store.state() {
        let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str());
        if !on_node || !crate::pod_ready(&pod) || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let patch = json!({"status": {"conditions": [{
            "type": "Ready",
            "status": "False",
            "reason": "NodeNotReady",
            "lastTransitionTime": jiff::Timestamp::now().to_string(),
        }]}});
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(pod = %pod.name_any(), node = %name, "marked not ready: its node is not reporting")
            }
            Err(error) => tracing::warn!(pod = %pod.name_any(), %error, "marking a pod not ready"),
        }
    }
}

/// The `NoExecute` taint Kubernetes puts on a node in this state:
/// `unreachable` when its Ready condition is Unknown (or missing),
/// `not-ready` when it is False.
fn no_execute_taint(node: &Node) -> Taint {
    let key = match ready_condition(node).map(|c| c.status.as_str()) {
        Some("False") => crate::daemonset::TAINT_NOT_READY,
        _ => crate::daemonset::TAINT_UNREACHABLE,
    };
    Taint {
        key: key.into(),
        effect: "NoExecute".into(),
        value: None,
        time_added: None,
    }
}

/// Whether eviction from a not-ready node deletes `pod`: not when it
/// tolerates the node's `NoExecute` taint without `tolerationSeconds` (a
/// DaemonSet's pods), as Kubernetes' taint manager spares them. A bounded
/// toleration does not delay eviction past `--pod-eviction-timeout`.
fn evictable(pod: &Pod, taint: &Taint) -> bool {
    !pod.spec
        .iter()
        .flat_map(|s| s.tolerations.iter().flatten())
        .any(|t| t.toleration_seconds.is_none() && crate::daemonset::tolerates(t, taint))
}

async fn evict(client: &Client, evicted: &mut HashSet<String>, pods: &Reflected<Pod>, node: &Node) {
    let taint = no_execute_taint(node);
    let node = node.name_any();
    let node = node.as_str();
    for pod in pods.store.state() {
        let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
        let uid = pod.uid().unwrap_or_default();
        if !on_node || evicted.contains(&uid) || !evictable(&pod, &taint) {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..crate::ownership::delete_only(&pod)
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) | Err(kube::Error::Api(_)) => {
                tracing::info!(pod = %pod.name_any(), %node, "evicted a pod from a node that is not ready");
                evicted.insert(uid);
            }
            Err(error) => tracing::warn!(pod = %pod.name_any(), %error, "eviction failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn node(status: &str, heartbeat: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "status": {"conditions": [{"type": "Ready", "status": status, "lastHeartbeatTime": heartbeat}]}
        }))
        .unwrap()
    }

    fn config() -> Config {
        Config {
            node_monitor_grace_period: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(300),
            ..Config::default()
        }
    }

    // `observe` takes the time as an argument, so no clock needs pausing.
    #[test]
    fn a_fresh_heartbeat_keeps_a_node_healthy_and_a_stale_one_does_not() {
        assert_steps(
            "heartbeats only",
            &[
                (0, "True", 0, None, Verdict::Healthy),
                // A new heartbeat at 30 s, checked at 60 s: 30 s old, still fine.
                (30, "True", 30, None, Verdict::Healthy),
                (60, "True", 30, None, Verdict::Healthy),
                // No new heartbeat for 41 s.
                (71, "True", 30, None, Verdict::MarkUnknown),
                // Once Unknown, nothing more until the eviction timeout.
                (100, "Unknown", 30, None, Verdict::NotReady),
                (372, "Unknown", 30, None, Verdict::Evict),
                // It comes back.
                (401, "True", 400, None, Verdict::Healthy),
            ],
        );
    }

    #[test]
    fn pods_tolerating_the_node_state_for_ever_are_not_evicted() {
        let pod = |tolerations: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"},
                "spec": {"nodeName": "n1", "tolerations": tolerations,
                    "containers": [{"name": "c", "image": "i"}]}}))
            .unwrap()
        };
        let unknown = no_execute_taint(&node("Unknown", "2026-01-01T00:00:00Z"));
        let not_ready = no_execute_taint(&node("False", "2026-01-01T00:00:00Z"));
        assert_eq!(unknown.key, "node.kubernetes.io/unreachable");
        assert_eq!(not_ready.key, "node.kubernetes.io/not-ready");
        let daemon = pod(json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]));
        assert!(!evictable(&daemon, &unknown));
        assert!(!evictable(&daemon, &not_ready));
        assert!(evictable(&pod(json!([])), &unknown));
        // Kubernetes' default 300 s toleration of every pod does not spare it.
        let bounded = pod(json!([{"key": "node.kubernetes.io/unreachable",
            "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]));
        assert!(evictable(&bounded, &unknown));
        let other = pod(json!([{"key": "node.kubernetes.io/not-ready",
            "operator": "Exists", "effect": "NoExecute"}]));
        assert!(evictable(&other, &unknown));
    }

    fn lease(renewed: &str) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": renewed}
        }))
        .unwrap()
    }

    /// One observation: seconds after the start, the Ready condition's
    /// status and the second of its heartbeat, the second of the Lease's
    /// renewTime (None: no Lease), and the verdict expected.
    type Step = (u64, &'static str, u64, Option<u64>, Verdict);

    /// The time `seconds` after 2026-01-01T00:00:00Z, as `00:MM:SS` of that
    /// day (the steps stay within the hour).
    fn clock(seconds: u64) -> String {
        format!("2026-01-01T00:{:02}:{:02}", seconds / 60, seconds % 60)
    }

    /// Observes `steps` in order with one monitor; `name` in any failure.
    fn assert_steps(name: &str, steps: &[Step]) {
        let c = config();
        let mut m = Monitor::default();
        let t0 = Instant::now();
        for (at, status, heartbeat, renewed, verdict) in steps {
            let node = node(status, &format!("{}Z", clock(*heartbeat)));
            let lease = renewed.map(|second| lease(&format!("{}.000000Z", clock(second))));
            let got = m.observe(&node, lease.as_ref(), t0 + Duration::from_secs(*at), &c);
            assert_eq!(&got, verdict, "{name}: at {at}s");
        }
    }

    // Kubernetes' rule: a node is alive while either its Ready heartbeat or
    // its Lease's renewTime changed within the grace period (40 s here).
    #[test]
    fn either_a_heartbeat_or_a_lease_renewal_keeps_a_node_alive() {
        let cases: Vec<(&str, Vec<Step>)> = vec![
            (
                "a renewed lease keeps a node whose status is old healthy",
                vec![
                    (0, "True", 0, Some(0), Verdict::Healthy),
                    (30, "True", 0, Some(30), Verdict::Healthy),
                    (60, "True", 0, Some(60), Verdict::Healthy),
                    (300, "True", 0, Some(300), Verdict::Healthy),
                ],
            ),
            (
                "a lease that stops being renewed, status old too: Unknown",
                vec![
                    (0, "True", 0, Some(0), Verdict::Healthy),
                    (30, "True", 0, Some(30), Verdict::Healthy),
                    (60, "True", 0, Some(30), Verdict::Healthy),
                    (71, "True", 0, Some(30), Verdict::MarkUnknown),
                ],
            ),
            (
                "status heartbeats alone still count (no lease, an old kubelet)",
                vec![
                    (0, "True", 0, None, Verdict::Healthy),
                    (30, "True", 30, None, Verdict::Healthy),
                    (71, "True", 30, None, Verdict::MarkUnknown),
                ],
            ),
            (
                "a lease gone (deleted) leaves the status heartbeat to decide",
                vec![
                    (0, "True", 0, Some(0), Verdict::Healthy),
                    (30, "True", 0, None, Verdict::Healthy),
                    (41, "True", 0, None, Verdict::MarkUnknown),
                ],
            ),
            (
                "a fresh lease with Ready=False is not ready, then evicted",
                vec![
                    (0, "False", 0, Some(0), Verdict::NotReady),
                    (200, "False", 0, Some(200), Verdict::NotReady),
                    (301, "False", 0, Some(301), Verdict::Evict),
                ],
            ),
            (
                "an Unknown node whose lease is renewed again is not re-marked",
                vec![
                    (0, "True", 0, Some(0), Verdict::Healthy),
                    (41, "True", 0, Some(0), Verdict::MarkUnknown),
                    (50, "Unknown", 0, Some(50), Verdict::NotReady),
                    // Its kubelet writes Ready=True (a status change).
                    (60, "True", 60, Some(60), Verdict::Healthy),
                ],
            ),
        ];
        for (name, steps) in cases {
            assert_steps(name, &steps);
        }
    }
}
