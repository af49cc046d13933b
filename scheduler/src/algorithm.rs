//! The scheduling algorithm as pure functions: what a pod requests, which
//! nodes can hold it (filters) and which of those is best (scores). No IO.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use api_types::labels::Selector;
use api_types::validation::quantity::ParsedQuantity;
use k8s_openapi::api::core::v1::{ContainerPort, Node, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// What a pod asks of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// cpu in millicores.
    pub milli_cpu: i64,
    /// memory in bytes.
    pub memory: i64,
    /// `(protocol, hostPort)` pairs.
    pub host_ports: BTreeSet<(String, i32)>,
}

fn quantity(q: Option<&Quantity>, millis: bool) -> i64 {
    q.and_then(|q| ParsedQuantity::parse(&q.0).ok())
        .and_then(|p| {
            if millis {
                p.millis_ceil()
            } else {
                p.value_ceil()
            }
        })
        .unwrap_or(0)
        .max(0)
}

fn container_demand(resources: Option<&ResourceRequirements>) -> (i64, i64) {
    let Some(r) = resources else { return (0, 0) };
    // A request defaults to the limit when only the limit is given.
    let get = |name: &str| {
        r.requests
            .as_ref()
            .and_then(|m| m.get(name))
            .or_else(|| r.limits.as_ref().and_then(|m| m.get(name)))
    };
    (quantity(get("cpu"), true), quantity(get("memory"), false))
}

/// [`demand_of`] a whole `Pod`, the tests' fixture: the scheduler itself
/// works the demand out as it decodes a pod (`cached_pod`).
#[cfg(test)]
pub(crate) fn demand(pod: &k8s_openapi::api::core::v1::Pod) -> Demand {
    let Some(spec) = &pod.spec else {
        return Demand::default();
    };
    demand_of(
        spec.containers
            .iter()
            .map(|c| (c.resources.as_ref(), c.ports.as_deref().unwrap_or_default())),
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| c.resources.as_ref()),
    )
}

/// A pod's demand: the sum of its containers' requests (or limits where no
/// request is given), at least each init container's, and its host ports;
/// from each container's resources and ports and each init container's
/// resources.
pub fn demand_of<'a>(
    containers: impl IntoIterator<Item = (Option<&'a ResourceRequirements>, &'a [ContainerPort])>,
    init_containers: impl IntoIterator<Item = Option<&'a ResourceRequirements>>,
) -> Demand {
    let mut d = Demand::default();
    for (resources, ports) in containers {
        let (cpu, mem) = container_demand(resources);
        d.milli_cpu += cpu;
        d.memory += mem;
        for p in ports {
            if let Some(hp) = p.host_port.filter(|hp| *hp > 0) {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                d.host_ports.insert((proto, hp));
            }
        }
    }
    for resources in init_containers {
        let (cpu, mem) = container_demand(resources);
        d.milli_cpu = d.milli_cpu.max(cpu);
        d.memory = d.memory.max(mem);
    }
    d
}

/// A node with what is already placed on it.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// Labels, for `nodeSelector`.
    pub labels: BTreeMap<String, String>,
    /// Ready condition is True.
    pub ready: bool,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// Allocatable cpu (millicores); `None` when the node does not say.
    pub alloc_milli_cpu: Option<i64>,
    /// Allocatable memory (bytes); `None` when the node does not say.
    pub alloc_memory: Option<i64>,
    /// Allocatable pod count; `None` when the node does not say.
    pub alloc_pods: Option<i64>,
    /// Sum of the demands of the pods placed here.
    pub used: Demand,
    /// Number of pods placed here.
    pub pods: i64,
    /// Pods here by "group" (owning controller uid or service), for spreading.
    pub groups: HashMap<String, i64>,
}

impl NodeInfo {
    /// A node with nothing placed on it yet.
    pub fn from_node(node: &Node) -> Self {
        let status = node.status.as_ref();
        let alloc = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        let get = |name: &str, millis: bool| {
            alloc
                .and_then(|m| m.get(name))
                .map(|q| quantity(Some(q), millis))
        };
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            ready: node_ready(node),
            unschedulable: node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            alloc_milli_cpu: get("cpu", true),
            alloc_memory: get("memory", false),
            alloc_pods: get("pods", false),
            ..Self::default()
        }
    }

    /// Counts a pod (with its demand and groups) as placed here.
    pub fn add(&mut self, demand: &Demand, groups: &[String]) {
        self.add_pod(demand, groups.iter().map(String::as_str));
    }

    /// [`NodeInfo::add`] with borrowed group names.
    pub fn add_pod<'g>(&mut self, demand: &Demand, groups: impl IntoIterator<Item = &'g str>) {
        self.used.milli_cpu += demand.milli_cpu;
        self.used.memory += demand.memory;
        self.used
            .host_ports
            .extend(demand.host_ports.iter().cloned());
        self.pods += 1;
        for g in groups {
            // A round adds every bound pod: the key is copied only for a
            // node's first pod of the group.
            match self.groups.get_mut(g) {
                Some(n) => *n += 1,
                None => {
                    self.groups.insert(g.to_owned(), 1);
                }
            }
        }
    }
}

/// True when the node's `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Why a node cannot take a pod, worded as Kubernetes words it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The Ready condition is not True.
    NotReady,
    /// `spec.unschedulable`.
    Unschedulable,
    /// `nodeSelector` does not match.
    SelectorMismatch,
    /// Not enough cpu left.
    InsufficientCpu,
    /// Not enough memory left.
    InsufficientMemory,
    /// The pod count is at the node's limit.
    TooManyPods,
    /// A requested host port is taken.
    PortsTaken,
}

impl Reason {
    /// The text of the reason in a `FailedScheduling` message.
    pub fn text(self) -> &'static str {
        match self {
            Self::NotReady => "node(s) were not ready",
            Self::Unschedulable => "node(s) were unschedulable",
            Self::SelectorMismatch => "node(s) didn't match Pod's node affinity/selector",
            Self::InsufficientCpu => "Insufficient cpu",
            Self::InsufficientMemory => "Insufficient memory",
            Self::TooManyPods => "Too many pods",
            Self::PortsTaken => "node(s) didn't have free ports for the requested pod ports",
        }
    }
}

/// Every reason `node` cannot take a pod with `demand` and `node_selector`;
/// empty when it fits. Readiness, schedulability and the selector are
/// checked first and alone; resources and ports are all reported.
pub fn filter(
    node: &NodeInfo,
    demand: &Demand,
    node_selector: Option<&BTreeMap<String, String>>,
) -> Vec<Reason> {
    if !node.ready {
        return vec![Reason::NotReady];
    }
    if node.unschedulable {
        return vec![Reason::Unschedulable];
    }
    if let Some(sel) = node_selector.filter(|s| !s.is_empty()) {
        if !Selector::from_map(sel).matches(&node.labels) {
            return vec![Reason::SelectorMismatch];
        }
    }
    let mut reasons = Vec::new();
    if let Some(max) = node.alloc_pods {
        if node.pods + 1 > max {
            reasons.push(Reason::TooManyPods);
        }
    }
    if demand.milli_cpu > 0 {
        if let Some(max) = node.alloc_milli_cpu {
            if node.used.milli_cpu + demand.milli_cpu > max {
                reasons.push(Reason::InsufficientCpu);
            }
        }
    }
    if demand.memory > 0 {
        if let Some(max) = node.alloc_memory {
            if node.used.memory + demand.memory > max {
                reasons.push(Reason::InsufficientMemory);
            }
        }
    }
    if demand
        .host_ports
        .iter()
        .any(|p| node.used.host_ports.contains(p))
    {
        reasons.push(Reason::PortsTaken);
    }
    reasons
}

/// The `FailedScheduling` message: "0/3 nodes are available: 2 Insufficient
/// memory, 1 node(s) were not ready." Reasons by count, most first.
pub fn fit_error_message(total_nodes: usize, failures: &[Vec<Reason>]) -> String {
    if total_nodes == 0 {
        return "0/0 nodes are available: no nodes available to schedule pods.".to_string();
    }
    let mut counts: BTreeMap<Reason, usize> = BTreeMap::new();
    for reasons in failures {
        for r in reasons {
            *counts.entry(*r).or_default() += 1;
        }
    }
    let mut parts: Vec<(usize, &str)> = counts.iter().map(|(r, n)| (*n, r.text())).collect();
    parts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let parts: Vec<String> = parts.iter().map(|(n, t)| format!("{n} {t}")).collect();
    format!("0/{total_nodes} nodes are available: {}.", parts.join(", "))
}

fn free_fraction(used: i64, max: Option<i64>) -> f64 {
    match max {
        Some(max) if max > 0 => ((max - used).max(0) as f64) / (max as f64),
        _ => 1.0,
    }
}

/// Least-requested score (0..=100): the mean free fraction of cpu and
/// memory after placing the pod.
pub fn least_requested(node: &NodeInfo, demand: &Demand) -> f64 {
    let cpu = free_fraction(node.used.milli_cpu + demand.milli_cpu, node.alloc_milli_cpu);
    let mem = free_fraction(node.used.memory + demand.memory, node.alloc_memory);
    (cpu + mem) * 50.0
}

/// Spreading score (0..=100): fewer pods of the pod's groups on this node
/// than on the most loaded feasible node scores higher.
pub fn spread(node: &NodeInfo, groups: &[String], max_on_any: i64) -> f64 {
    if groups.is_empty() || max_on_any == 0 {
        return 100.0;
    }
    let here: i64 = groups
        .iter()
        .map(|g| node.groups.get(g).copied().unwrap_or(0))
        .sum();
    100.0 * ((max_on_any - here).max(0) as f64) / (max_on_any as f64)
}

/// The outcome of placing one pod.
#[derive(Clone, Debug, PartialEq)]
pub enum Placement {
    /// Bind to this node (index into the nodes given).
    Node(usize),
    /// No node fits; the message says why per node.
    Unschedulable(String),
}

/// Fewer nodes than this are all searched.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The share of nodes searched never falls below this percentage.
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// How many feasible nodes end the search for a pod's node, as Kubernetes'
/// scheduler works it out when `percentageOfNodesToScore` is left unset:
/// every node of a cluster under 100; above, 50% less one point per 125
/// nodes (42% of 1,000 nodes), at least 5% and at least 100 nodes. A node
/// found later would rarely score much better, and filtering and scoring
/// every node for every pod is most of what placing costs.
pub fn feasible_nodes_to_find(nodes: usize) -> usize {
    if nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return nodes;
    }
    let percentage = 50usize
        .saturating_sub(nodes / 125)
        .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    (nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Picks the best node for a pod, or says why none fits. Ties go to the
/// node with fewer pods, then the smaller name.
///
/// The search starts at node `*next_start` and ends once
/// [`feasible_nodes_to_find`] nodes fit; `*next_start` then moves past
/// the nodes looked at, so the next pod's search starts where this one
/// ended and every node gets its turn (Kubernetes' `nextStartNodeIndex`).
/// A pod that fits nowhere has looked at every node, and the message
/// counts every node's reasons.
pub fn place(
    nodes: &[NodeInfo],
    demand: &Demand,
    node_selector: Option<&BTreeMap<String, String>>,
    groups: &[String],
    next_start: &mut usize,
) -> Placement {
    let total = nodes.len();
    let wanted = feasible_nodes_to_find(total);
    let first = if total == 0 { 0 } else { *next_start % total };
    let mut feasible = Vec::new();
    let mut failures = Vec::new();
    let mut looked_at = 0;
    for i in (first..total).chain(0..first) {
        looked_at += 1;
        let reasons = filter(&nodes[i], demand, node_selector);
        if reasons.is_empty() {
            feasible.push(i);
            if feasible.len() >= wanted {
                break;
            }
        } else {
            failures.push(reasons);
        }
    }
    *next_start = if total == 0 {
        0
    } else {
        (first + looked_at) % total
    };
    if feasible.is_empty() {
        return Placement::Unschedulable(fit_error_message(nodes.len(), &failures));
    }
    let max_on_any = feasible
        .iter()
        .map(|&i| {
            groups
                .iter()
                .map(|g| nodes[i].groups.get(g).copied().unwrap_or(0))
                .sum::<i64>()
        })
        .max()
        .unwrap_or(0);
    let best = feasible
        .iter()
        .copied()
        .max_by(|&a, &b| {
            let score = |i: usize| {
                least_requested(&nodes[i], demand) + spread(&nodes[i], groups, max_on_any)
            };
            score(a)
                .total_cmp(&score(b))
                .then(nodes[b].pods.cmp(&nodes[a].pods))
                .then(nodes[b].name.cmp(&nodes[a].name))
        })
        .unwrap_or(feasible[0]);
    Placement::Node(best)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str, mem: &str, ready: bool) -> NodeInfo {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"zone": name}},
            "status": {
                "allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]
            }
        }))
        .unwrap();
        NodeInfo::from_node(&n)
    }

    fn pod(cpu: &str, mem: &str, host_port: Option<i32>) -> Pod {
        let mut c = json!({"name": "c", "image": "i",
            "resources": {"requests": {"cpu": cpu, "memory": mem}}});
        if let Some(hp) = host_port {
            c["ports"] = json!([{"containerPort": 80, "hostPort": hp}]);
        }
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [c]}}))
            .unwrap()
    }

    #[test]
    fn demand_sums_requests_in_millicores_and_bytes() {
        let d = demand(&pod("250m", "64Mi", Some(8080)));
        assert_eq!(d.milli_cpu, 250);
        assert_eq!(d.memory, 64 * 1024 * 1024);
        assert!(d.host_ports.contains(&("TCP".to_string(), 8080)));
    }

    #[test]
    fn a_pod_never_overcommits_a_node() {
        let mut n = node("a", "1", "1Gi", true);
        let d = demand(&pod("400m", "100Mi", None));
        assert!(filter(&n, &d, None).is_empty());
        n.add(&d, &[]);
        n.add(&d, &[]);
        assert_eq!(filter(&n, &d, None), vec![Reason::InsufficientCpu]);
    }

    #[test]
    fn host_ports_conflict() {
        let mut n = node("a", "4", "4Gi", true);
        let d = demand(&pod("1m", "1Mi", Some(80)));
        n.add(&d, &[]);
        assert_eq!(filter(&n, &d, None), vec![Reason::PortsTaken]);
    }

    #[test]
    fn the_fit_error_counts_reasons_per_node() {
        let nodes = vec![
            node("a", "4", "1Gi", true),
            node("b", "4", "1Gi", true),
            node("c", "4", "64Gi", false),
        ];
        let d = demand(&pod("1", "2Gi", None));
        assert_eq!(
            place(&nodes, &d, None, &[], &mut 0),
            Placement::Unschedulable(
                "0/3 nodes are available: 2 Insufficient memory, 1 node(s) were not ready.".into()
            )
        );
    }

    #[test]
    fn node_selector_must_match() {
        let nodes = vec![node("a", "4", "4Gi", true), node("b", "4", "4Gi", true)];
        let d = demand(&pod("1", "1Gi", None));
        let sel = BTreeMap::from([("zone".to_string(), "b".to_string())]);
        assert_eq!(
            place(&nodes, &d, Some(&sel), &[], &mut 0),
            Placement::Node(1)
        );
    }

    #[test]
    fn least_requested_prefers_the_emptier_node() {
        let mut nodes = vec![node("a", "4", "4Gi", true), node("b", "4", "4Gi", true)];
        let d = demand(&pod("1", "1Gi", None));
        nodes[0].add(&d, &[]);
        assert_eq!(place(&nodes, &d, None, &[], &mut 0), Placement::Node(1));
    }

    #[test]
    fn pods_of_one_group_spread() {
        let mut nodes = vec![node("a", "64", "64Gi", true), node("b", "4", "4Gi", true)];
        let d = demand(&pod("1m", "1Ki", None));
        let g = vec!["rc-uid".to_string()];
        nodes[0].add(&d, &g);
        // a has more room but already holds one of the group.
        assert_eq!(place(&nodes, &d, None, &g, &mut 0), Placement::Node(1));
    }

    #[test]
    fn a_cordoned_node_takes_no_pods() {
        // `kubectl cordon` / `drain` set spec.unschedulable.
        let cordoned: Node = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "spec": {"unschedulable": true},
            "status": {
                "allocatable": {"cpu": "64", "memory": "64Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }))
        .unwrap();
        let nodes = vec![NodeInfo::from_node(&cordoned), node("b", "4", "4Gi", true)];
        let d = demand(&pod("1m", "1Ki", None));
        assert_eq!(filter(&nodes[0], &d, None), vec![Reason::Unschedulable]);
        assert_eq!(place(&nodes, &d, None, &[], &mut 0), Placement::Node(1));
    }

    #[test]
    fn the_nodes_to_find_follow_kubernetes_adaptive_percentage() {
        for (nodes, wanted) in [
            (0, 0),
            (3, 3),
            (99, 99),
            (100, 100),
            (150, 100),
            (1000, 420),
            (5000, 500),
            (6000, 300),
            (20000, 1000),
        ] {
            assert_eq!(feasible_nodes_to_find(nodes), wanted, "{nodes} nodes");
        }
    }

    /// At 1,000 nodes a search ends after 420 fitting nodes and the next
    /// starts where it ended, so every node gets its turn; a pod that fits
    /// nowhere still looks at, and reports, every node.
    #[test]
    fn a_search_ends_early_and_the_next_starts_where_it_ended() {
        let names: Vec<String> = (0..1000).map(|i| format!("n{i:04}")).collect();
        let nodes: Vec<NodeInfo> = names.iter().map(|n| node(n, "4", "4Gi", true)).collect();
        let d = demand(&pod("100m", "100Mi", None));
        let mut next = 0;
        let Placement::Node(first) = place(&nodes, &d, None, &[], &mut next) else {
            panic!("a pod that fits everywhere was not placed");
        };
        assert_eq!(next, 420);
        assert!(first < 420, "placed outside the nodes looked at: {first}");
        let Placement::Node(second) = place(&nodes, &d, None, &[], &mut next) else {
            panic!("not placed");
        };
        assert_eq!(next, 840);
        assert!((420..840).contains(&second), "{second}");
        let Placement::Node(third) = place(&nodes, &d, None, &[], &mut next) else {
            panic!("not placed");
        };
        assert_eq!(next, 260, "the search wraps around");
        assert!(!(260..840).contains(&third), "{third}");

        let too_big = demand(&pod("8", "100Mi", None));
        let mut next = 500;
        assert_eq!(
            place(&nodes, &too_big, None, &[], &mut next),
            Placement::Unschedulable("0/1000 nodes are available: 1000 Insufficient cpu.".into())
        );
        assert_eq!(next, 500, "a full circle ends where it started");
    }
}
