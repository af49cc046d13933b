//! The node authorizer (`--authorization-mode Node`) and node restriction:
//! a kubelet (user `system:node:<name>` in group `system:nodes`) may touch
//! only its own Node and Lease, the pods bound to it, and the Secrets and
//! ConfigMaps those pods name, as Kubernetes' Node authorizer and
//! NodeRestriction admission plugin allow.
//!
//! Which pods are bound where, and what they name, comes from a graph kept
//! in memory by a watch of the pods registry (Kubernetes keeps the same
//! graph from informers), so a decision never reads etcd. As in Kubernetes
//! 1.32 (`AuthorizeNodeWithSelectors`), a node lists and watches pods only
//! through `fieldSelector=spec.nodeName=<itself>`. The authorizer has no
//! opinion on anyone else's requests (RBAC decides those), and the
//! `system:node` ClusterRole is not bound to `system:nodes` by default, as
//! in Kubernetes since 1.8: a node's rights are exactly these.
//!
//! What the path does not say (the name in a create's body) is checked at
//! admission: [`admit_node_create`], [`admit_pod_create`] and
//! [`admit_lease_create`], called by the strategies with the requester of
//! the current request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use api_types::status::Reason;
use api_types::v1::{Pod, PodSpec};
use serde_json::Value;
use tokio::sync::watch;

use super::Attributes;
use crate::auth::User;
use crate::error::{ApiError, Result};
use crate::registry::Rest;

/// The group every kubelet identity is in.
pub const NODES_GROUP: &str = "system:nodes";
/// Its user names: `system:node:<node name>`.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Where nodes' heartbeat Leases live.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The annotation of a mirror pod (a static pod reported by its kubelet).
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The node a user is the kubelet of, if it is one.
pub fn node_of(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    (!name.is_empty() && user.groups.iter().any(|g| g == NODES_GROUP)).then_some(name)
}

/// What a pod binds its node to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PodEdges {
    node: String,
    secrets: Vec<String>,
    config_maps: Vec<String>,
}

/// Per node: its pods and how many of them name each Secret and ConfigMap
/// (`namespace/name` keys).
#[derive(Debug, Default)]
struct NodeEdges {
    pods: HashSet<String>,
    secrets: HashMap<String, usize>,
    config_maps: HashMap<String, usize>,
}

/// The graph the authorizer reads.
#[derive(Debug, Default)]
pub struct NodeGraph {
    state: RwLock<GraphState>,
    /// Open once the pods have been listed.
    synced: super::reflect::SyncGate,
}

#[derive(Debug, Default)]
struct GraphState {
    pods: HashMap<String, PodEdges>,
    nodes: HashMap<String, NodeEdges>,
}

fn count(map: &mut HashMap<String, usize>, key: &str, up: bool) {
    if up {
        *map.entry(key.to_string()).or_default() += 1;
    } else if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl GraphState {
    fn link(&mut self, key: &str, edges: &PodEdges, up: bool) {
        let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
        let node = self.nodes.entry(edges.node.clone()).or_default();
        if up {
            node.pods.insert(key.to_string());
        } else {
            node.pods.remove(key);
        }
        for secret in &edges.secrets {
            count(&mut node.secrets, &format!("{namespace}/{secret}"), up);
        }
        for config_map in &edges.config_maps {
            count(
                &mut node.config_maps,
                &format!("{namespace}/{config_map}"),
                up,
            );
        }
        if node.pods.is_empty() {
            self.nodes.remove(&edges.node);
        }
    }

    fn set(&mut self, key: String, edges: Option<PodEdges>) {
        if let Some(old) = self.pods.remove(&key) {
            self.link(&key, &old, false);
        }
        if let Some(new) = edges {
            self.link(&key, &new, true);
            self.pods.insert(key, new);
        }
    }
}

/// The `namespace/name` of a pod and what it binds (`None` when unbound).
fn edges_of(value: &Value) -> Option<(String, Option<PodEdges>)> {
    let pod: Pod = serde_json::from_value(value.clone()).ok()?;
    let key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref()?
    );
    let spec = pod.spec.unwrap_or_default();
    let node = spec.node_name.clone().filter(|n| !n.is_empty());
    Some((key, node.map(|node| named_objects(node, &spec))))
}

/// The Secrets and ConfigMaps a pod spec names: volumes (projected ones
/// too), `env` references, `envFrom`, image pull secrets.
fn named_objects(node: String, spec: &PodSpec) -> PodEdges {
    let mut secrets = Vec::new();
    let mut config_maps = Vec::new();
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.push(name);
        }
        if let Some(cm) = &volume.config_map {
            config_maps.push(cm.name.clone());
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(s) = &source.secret {
                secrets.push(s.name.clone());
            }
            if let Some(c) = &source.config_map {
                config_maps.push(c.name.clone());
            }
        }
    }
    for container in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for env in container.env.iter().flatten() {
            let from = env.value_from.as_ref();
            if let Some(r) = from.and_then(|f| f.secret_key_ref.as_ref()) {
                secrets.push(r.name.clone());
            }
            if let Some(r) = from.and_then(|f| f.config_map_key_ref.as_ref()) {
                config_maps.push(r.name.clone());
            }
        }
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.secret_ref {
                secrets.push(r.name.clone());
            }
            if let Some(r) = &from.config_map_ref {
                config_maps.push(r.name.clone());
            }
        }
    }
    for pull in spec.image_pull_secrets.iter().flatten() {
        secrets.push(pull.name.clone());
    }
    secrets.sort();
    secrets.dedup();
    config_maps.sort();
    config_maps.dedup();
    PodEdges {
        node,
        secrets,
        config_maps,
    }
}

impl NodeGraph {
    /// Starts keeping the graph from the pods registry until `stop`.
    pub fn start(pods: Arc<dyn Rest>, stop: watch::Receiver<bool>) -> Arc<Self> {
        let graph = Arc::new(Self {
            synced: super::reflect::SyncGate::new(1),
            ..Self::default()
        });
        let listed = graph.clone();
        let watched = graph.clone();
        tokio::spawn(super::reflect::list_and_watch(
            pods,
            stop,
            move |items| {
                let mut state = GraphState::default();
                for (key, edges) in items.iter().filter_map(edges_of) {
                    state.set(key, edges);
                }
                *listed.state.write().unwrap_or_else(|e| e.into_inner()) = state;
                listed.synced.listed();
            },
            move |kind, object| watched.apply(kind, &object),
        ));
        graph
    }

    fn apply(&self, kind: &str, object: &Value) {
        let Some((key, edges)) = edges_of(object) else {
            return;
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match kind {
            "DELETED" => state.set(key, None),
            _ => state.set(key, edges),
        }
    }

    /// Whether the pods have been listed once.
    pub fn synced(&self) -> &super::reflect::SyncGate {
        &self.synced
    }

    /// Whether the node authorizer allows `node`'s kubelet the request.
    pub fn allows(&self, node: &str, attributes: &Attributes) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        decide(node, attributes, &state)
    }
}

/// `spec.nodeName=<node>` is among the terms of a field selector.
fn selects_node(selector: Option<&str>, node: &str) -> bool {
    selector.is_some_and(|s| {
        s.split(',').any(|term| {
            term.split_once("==")
                .or_else(|| term.split_once('='))
                .is_some_and(|(k, v)| k.trim() == "spec.nodeName" && v.trim() == node)
        })
    })
}

const READ: [&str; 3] = ["get", "list", "watch"];

fn decide(node: &str, a: &Attributes, graph: &GraphState) -> bool {
    let Some(resource) = a.resource.as_deref() else {
        return false;
    };
    let verb = a.verb.as_str();
    let sub = a.subresource.as_deref();
    let own_pod = || {
        let key = format!(
            "{}/{}",
            a.namespace.as_deref().unwrap_or(""),
            a.name.as_deref().unwrap_or("")
        );
        a.name.is_some()
            && graph
                .nodes
                .get(node)
                .is_some_and(|edges| edges.pods.contains(&key))
    };
    let references = |pick: fn(&NodeEdges) -> &HashMap<String, usize>| {
        let key = format!(
            "{}/{}",
            a.namespace.as_deref().unwrap_or(""),
            a.name.as_deref().unwrap_or("")
        );
        graph
            .nodes
            .get(node)
            .is_some_and(|edges| pick(edges).contains_key(&key))
    };
    let own_name = a.name.as_deref() == Some(node);
    match (a.api_group.as_str(), resource, sub) {
        ("", "nodes", None) => match verb {
            "get" | "list" | "watch" => true,
            // The name is in the body: admission checks it.
            "create" => true,
            "update" | "patch" | "delete" => own_name,
            _ => false,
        },
        ("", "nodes", Some("status")) => matches!(verb, "get" | "update" | "patch") && own_name,
        ("", "pods", None) => match verb {
            "get" => own_pod(),
            "list" | "watch" => selects_node(a.field_selector.as_deref(), node),
            // Mirror pods only, bound to itself: admission checks the body.
            "create" => true,
            "delete" => own_pod(),
            _ => false,
        },
        ("", "pods", Some("status")) => matches!(verb, "get" | "update" | "patch") && own_pod(),
        ("", "pods", Some("eviction")) => verb == "create" && own_pod(),
        ("", "secrets", None) => verb == "get" && references(|e| &e.secrets),
        ("", "configmaps", None) => verb == "get" && references(|e| &e.config_maps),
        ("", "services" | "endpoints", None) => READ.contains(&verb),
        ("" | "events.k8s.io", "events", None) => matches!(verb, "create" | "update" | "patch"),
        ("coordination.k8s.io", "leases", None) => {
            a.namespace.as_deref() == Some(NODE_LEASE_NAMESPACE)
                && match verb {
                    "create" => true,
                    "get" | "update" | "patch" | "delete" => own_name,
                    _ => false,
                }
        }
        // Its API's webhook authentication and authorization.
        ("authentication.k8s.io", "tokenreviews", None) => verb == "create",
        ("authorization.k8s.io", "subjectaccessreviews", None) => verb == "create",
        _ => false,
    }
}

/// The refusal of a node's write that names another node's object.
fn refuse(node: &str, what: String) -> ApiError {
    ApiError::new(
        Reason::Forbidden,
        format!("node {node:?} is not allowed to {what}"),
    )
}

/// The node the current request comes from, when a kubelet sends it.
fn requesting_node() -> Option<String> {
    super::current_requester().and_then(|r| node_of(&r.user).map(str::to_string))
}

/// NodeRestriction for a Node create: a kubelet registers only itself.
///
/// # Errors
///
/// 403 when a kubelet creates another node.
pub fn admit_node_create(name: &str) -> Result<()> {
    match requesting_node() {
        Some(node) if node != name => Err(refuse(&node, format!("modify node {name:?}"))),
        _ => Ok(()),
    }
}

/// NodeRestriction for a Pod create: a kubelet creates only mirror pods of
/// its own static pods, bound to itself.
///
/// # Errors
///
/// 403 for a pod that is not a mirror pod, or is bound elsewhere.
pub fn admit_pod_create(pod: &Pod) -> Result<()> {
    let Some(node) = requesting_node() else {
        return Ok(());
    };
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION));
    if !mirror {
        return Err(refuse(&node, "create pods that are not mirror pods".into()));
    }
    let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if bound != Some(node.as_str()) {
        return Err(refuse(
            &node,
            format!("create pods bound to node {:?}", bound.unwrap_or("<none>")),
        ));
    }
    Ok(())
}

/// NodeRestriction for a Lease create: only its own heartbeat Lease.
///
/// # Errors
///
/// 403 when a kubelet creates another node's Lease.
pub fn admit_lease_create(namespace: Option<&str>, name: &str) -> Result<()> {
    match requesting_node() {
        Some(node) if node != name || namespace != Some(NODE_LEASE_NAMESPACE) => Err(refuse(
            &node,
            format!("create lease {}/{name}", namespace.unwrap_or("")),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph(pods: &[Value]) -> GraphState {
        let mut state = GraphState::default();
        for (key, edges) in pods.iter().filter_map(edges_of) {
            state.set(key, edges);
        }
        state
    }

    fn pod(ns: &str, name: &str, node: &str, extra: Value) -> Value {
        let mut spec = json!({"nodeName": node, "containers": [{"name": "c", "image": "i"}]});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        json!({"metadata": {"namespace": ns, "name": name}, "spec": spec})
    }

    fn ask(
        verb: &str,
        group: &str,
        resource: &str,
        sub: Option<&str>,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            api_group: group.into(),
            resource: Some(resource.into()),
            subresource: sub.map(Into::into),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            ..Attributes::default()
        }
    }

    /// Checks node n1's decision on each case: (verb, API group,
    /// `resource` or `resource/subresource`, namespace, name, allowed),
    /// "" for what the request leaves out.
    fn assert_decisions(state: &GraphState, cases: &[(&str, &str, &str, &str, &str, bool)]) {
        fn given(s: &str) -> Option<&str> {
            Some(s).filter(|s| !s.is_empty())
        }
        for &(verb, group, path, ns, name, allowed) in cases {
            let (resource, sub) = path.split_once('/').unwrap_or((path, ""));
            let attributes = ask(verb, group, resource, given(sub), given(ns), given(name));
            assert_eq!(decide("n1", &attributes, state), allowed, "{attributes:?}");
        }
    }

    #[test]
    fn a_node_reaches_its_pods_and_what_they_name_only() {
        let state = graph(&[
            pod(
                "a",
                "web",
                "n1",
                json!({
                    "volumes": [{"name": "s", "secret": {"secretName": "tls"}}],
                    "containers": [{"name": "c", "image": "i",
                        "envFrom": [{"configMapRef": {"name": "settings"}}]}]
                }),
            ),
            pod(
                "b",
                "db",
                "n2",
                json!({"volumes": [{"name": "s", "secret": {"secretName": "password"}}]}),
            ),
        ]);
        // Its own pod and what that names, nothing of the other node's pod.
        let cases = [
            ("get", "", "pods", "a", "web", true),
            ("get", "", "pods", "b", "db", false),
            ("patch", "", "pods/status", "a", "web", true),
            ("patch", "", "pods/status", "b", "db", false),
            ("delete", "", "pods", "b", "db", false),
            ("get", "", "secrets", "a", "tls", true),
            ("get", "", "secrets", "b", "password", false),
            ("list", "", "secrets", "a", "", false),
            ("get", "", "configmaps", "a", "settings", true),
            ("get", "", "configmaps", "b", "settings", false),
        ];
        assert_decisions(&state, &cases);
    }

    #[test]
    fn pods_are_listed_only_through_the_node_s_own_field_selector() {
        let state = GraphState::default();
        let mut list = ask("list", "", "pods", None, Some("b"), None);
        assert!(!decide("n1", &list, &state));
        list.field_selector = Some("spec.nodeName=n2".into());
        assert!(!decide("n1", &list, &state));
        list.field_selector = Some("status.phase!=Failed,spec.nodeName=n1".into());
        assert!(decide("n1", &list, &state));
        list.verb = "watch".into();
        list.namespace = None;
        assert!(decide("n1", &list, &state));
    }

    #[test]
    fn a_node_changes_only_its_own_node_and_lease() {
        const LEASES: &str = "coordination.k8s.io";
        const RBAC: &str = "rbac.authorization.k8s.io";
        let cases = [
            ("get", "", "nodes", "", "n2", true),
            ("patch", "", "nodes/status", "", "n1", true),
            ("patch", "", "nodes/status", "", "n2", false),
            ("update", "", "nodes", "", "n2", false),
            ("delete", "", "nodes", "", "n2", false),
            ("update", LEASES, "leases", "kube-node-lease", "n1", true),
            ("update", LEASES, "leases", "kube-node-lease", "n2", false),
            ("update", LEASES, "leases", "kube-system", "n1", false),
            // Nothing else: no RCs, no namespaces, no RBAC.
            ("list", "", "replicationcontrollers", "a", "", false),
            ("create", RBAC, "clusterrolebindings", "", "", false),
        ];
        assert_decisions(&GraphState::default(), &cases);
    }

    #[test]
    fn the_graph_follows_pods_moving_and_going() {
        let graph = NodeGraph::default();
        let secret_get = ask("get", "", "secrets", None, Some("a"), Some("tls"));
        let with_secret = pod(
            "a",
            "web",
            "n1",
            json!({"volumes": [{"name": "s", "secret": {"secretName": "tls"}}]}),
        );
        graph.apply("ADDED", &with_secret);
        assert!(graph.allows("n1", &secret_get));
        // A second pod naming it, then the first one going: still named.
        graph.apply(
            "ADDED",
            &pod(
                "a",
                "web2",
                "n1",
                json!({"volumes": [{"name": "s", "secret": {"secretName": "tls"}}]}),
            ),
        );
        graph.apply("DELETED", &with_secret);
        assert!(graph.allows("n1", &secret_get));
        graph.apply("DELETED", &pod("a", "web2", "n1", json!({})));
        assert!(!graph.allows("n1", &secret_get));
        // Unbound pods bind nothing.
        graph.apply(
            "ADDED",
            &json!({"metadata": {"namespace": "a", "name": "p"}, "spec": {"containers": []}}),
        );
        assert!(!graph.allows("n1", &ask("get", "", "pods", None, Some("a"), Some("p"))));
    }

    #[test]
    fn node_identities_need_the_group_and_the_prefix() {
        let user = |name: &str, groups: &[&str]| User {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| (*g).to_string()).collect(),
        };
        assert_eq!(node_of(&user("system:node:n1", &[NODES_GROUP])), Some("n1"));
        assert_eq!(node_of(&user("system:node:n1", &[])), None);
        assert_eq!(node_of(&user("alice", &[NODES_GROUP])), None);
        assert_eq!(node_of(&user("system:node:", &[NODES_GROUP])), None);
    }
}
