//! The default roles (Kubernetes' bootstrap policy, cut to what mini-k8s
//! serves and its components call), reconciled at every start: missing
//! roles, rules, bindings and subjects are added; nothing a user added is
//! removed, and objects annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "false"` are left alone.

use api_types::v1::{ClusterRole, ClusterRoleBinding, ObjectMeta, PolicyRule, RoleRef, Subject};
use api_types::validation::RBAC_GROUP;
use serde_json::Value;
use tracing::info;

use super::rbac::uncovered;
use crate::error::ApiError;
use crate::registry::{Rest, Subresource, WriteOptions};

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| (*s).to_string()).collect()
}

/// A resource rule.
fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..PolicyRule::default()
    }
}

/// A non-resource URL rule.
fn urls(verbs: &[&str], paths: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: Some(strings(paths)),
        ..PolicyRule::default()
    }
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const EVENTS: &[&str] = &["create", "patch", "update"];
const COORDINATION: &str = "coordination.k8s.io";
const APPS: &str = "apps";
const NETWORKING: &str = "networking.k8s.io";

/// What `view` may read in a namespace (not secrets, as Kubernetes).
fn view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "pods",
                "pods/log",
                "pods/status",
                "services",
                "services/status",
                "endpoints",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "replicationcontrollers/status",
                "configmaps",
                "events",
                "namespaces",
                "namespaces/status",
            ],
        ),
        rule(READ, &[COORDINATION], &["leases"]),
        rule(READ, &[APPS], &["daemonsets", "daemonsets/status"]),
        rule(READ, &[NETWORKING], &["ingresses", "ingresses/status"]),
    ]
}

/// What `edit` adds: writes of the workload kinds, and secrets.
fn edit_rules() -> Vec<PolicyRule> {
    let mut rules = view_rules();
    rules.push(rule(
        WRITE,
        &[""],
        &[
            "pods",
            "services",
            "endpoints",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "configmaps",
            "secrets",
        ],
    ));
    rules.push(rule(READ, &[""], &["secrets"]));
    rules.push(rule(&["create"], &[""], &["pods/eviction"]));
    rules.push(rule(WRITE, &[COORDINATION], &["leases"]));
    rules.push(rule(WRITE, &[APPS], &["daemonsets"]));
    rules.push(rule(WRITE, &[NETWORKING], &["ingresses"]));
    rules
}

/// What `admin` adds: the namespace's roles and bindings.
fn admin_rules() -> Vec<PolicyRule> {
    let mut rules = edit_rules();
    rules.push(rule(
        &crate::discovery::ALL_VERBS,
        &[RBAC_GROUP],
        &["roles", "rolebindings"],
    ));
    rules.push(rule(
        &["create"],
        &["authorization.k8s.io"],
        &["localsubjectaccessreviews"],
    ));
    rules
}

/// The metadata of a default role or binding: its name, Kubernetes'
/// bootstrapping label, and autoupdate on (reconciled at every start).
fn bootstrap_meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(
            [(
                "kubernetes.io/bootstrapping".to_string(),
                "rbac-defaults".to_string(),
            )]
            .into(),
        ),
        annotations: Some([(AUTOUPDATE.to_string(), "true".to_string())].into()),
        ..ObjectMeta::default()
    }
}

/// Every default ClusterRole.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let role = |name: &str, rules: Vec<PolicyRule>| ClusterRole {
        metadata: bootstrap_meta(name),
        rules: Some(rules),
        aggregation_rule: None,
    };
    vec![
        role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        role("admin", admin_rules()),
        role("edit", edit_rules()),
        role("view", view_rules()),
        role(
            "system:discovery",
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        role(
            "system:public-info-viewer",
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        // Kubernetes' monitoring role: the health endpoints with each
        // check's own path (which tells the reason), and the metrics.
        role(
            "system:monitoring",
            vec![urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        role(
            "system:basic-user",
            vec![rule(
                &["create"],
                &["authorization.k8s.io"],
                &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            )],
        ),
        // scheduler/src: watches pods, nodes, services; binds; marks pods
        // unschedulable; events; leader election.
        role(
            "system:kube-scheduler",
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods",
                        "nodes",
                        "services",
                        "replicationcontrollers",
                        "namespaces",
                    ],
                ),
                rule(&["create"], &[""], &["pods/binding", "bindings"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["delete"], &[""], &["pods"]),
                rule(EVENTS, &["", "events.k8s.io"], &["events"]),
                rule(&["create"], &[COORDINATION], &["leases"]),
                rule(&["get", "update", "patch"], &[COORDINATION], &["leases"]),
            ],
        ),
        // controller-manager/src: replication, endpoints, node lifecycle,
        // namespace deletion (every namespaced kind), routes, leader election.
        role(
            "system:kube-controller-manager",
            vec![
                rule(READ, &["*"], &["*"]),
                rule(&["delete", "deletecollection"], &["*"], &["*"]),
                rule(
                    &["create", "patch", "update"],
                    &[""],
                    &[
                        "pods",
                        "pods/status",
                        "replicationcontrollers",
                        "replicationcontrollers/status",
                        "endpoints",
                        "services",
                        "services/status",
                        "nodes",
                        "nodes/status",
                        "namespaces",
                        "namespaces/status",
                        "namespaces/finalize",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                // The DaemonSet controller's status and deletion finalizers.
                rule(
                    &["patch", "update"],
                    &[APPS],
                    &["daemonsets", "daemonsets/status"],
                ),
                rule(EVENTS, &["", "events.k8s.io"], &["events"]),
                rule(
                    &["create", "get", "update", "patch"],
                    &[COORDINATION],
                    &["leases"],
                ),
            ],
        ),
        // kubelet/src: registers and heartbeats its node, runs pods and
        // reports their status, reads what pods mount.
        role(
            "system:node",
            vec![
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[""],
                    &["nodes"],
                ),
                rule(
                    &["patch", "update"],
                    &[""],
                    &["nodes/status", "pods/status"],
                ),
                rule(
                    &["get", "list", "watch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    READ,
                    &[""],
                    &["services", "endpoints", "configmaps", "secrets"],
                ),
                rule(EVENTS, &["", "events.k8s.io"], &["events"]),
                rule(
                    &["get", "create", "update", "patch", "delete"],
                    &[COORDINATION],
                    &["leases"],
                ),
                // Its API's webhook authentication and authorization
                // (kubelet/src/server_auth.rs); these creates change nothing.
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews", "localsubjectaccessreviews"],
                ),
            ],
        ),
        // Every call to a kubelet's API (Kubernetes' role; the kubelet
        // maps its paths to these subresources of its node).
        role(
            "system:kubelet-api-admin",
            vec![
                rule(&["get", "list", "watch", "proxy"], &[""], &["nodes"]),
                rule(
                    &["*"],
                    &[""],
                    &[
                        "nodes/proxy",
                        "nodes/metrics",
                        "nodes/stats",
                        "nodes/log",
                        "nodes/healthz",
                        "nodes/pods",
                    ],
                ),
            ],
        ),
        // cluster-dns/src: answers from services and endpoints (Kubernetes'
        // system:kube-dns).
        role(
            "system:kube-dns",
            vec![rule(&["list", "watch"], &[""], &["services", "endpoints"])],
        ),
        // kube-proxy/src: services and endpoints, its node, events.
        role(
            "system:node-proxier",
            vec![
                rule(READ, &[""], &["services", "endpoints"]),
                rule(&["get", "list", "watch"], &[""], &["nodes"]),
                rule(EVENTS, &["", "events.k8s.io"], &["events"]),
            ],
        ),
        // ingress-proxy/src: routes from Ingresses, services and
        // endpoints; certificates from the Secrets the Ingresses' spec.tls
        // names (all watched, as ingress-nginx does); publishes its node's
        // address in the Ingresses' status.
        role(
            "system:ingress-proxy",
            vec![
                rule(READ, &[""], &["services", "endpoints", "secrets"]),
                rule(READ, &[NETWORKING], &["ingresses", "ingressclasses"]),
                rule(&["patch", "update"], &[NETWORKING], &["ingresses/status"]),
                rule(EVENTS, &["", "events.k8s.io"], &["events"]),
            ],
        ),
    ]
}

/// Every default ClusterRoleBinding, each named after the role it grants.
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    // (the binding's name, also its role's; the subjects as (kind, name))
    let defaults: &[(&str, &[(&str, &str)])] = &[
        ("cluster-admin", &[("Group", "system:masters")]),
        ("system:discovery", &[("Group", "system:authenticated")]),
        ("system:basic-user", &[("Group", "system:authenticated")]),
        (
            "system:public-info-viewer",
            &[
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        ("system:monitoring", &[("Group", "system:monitoring")]),
        (
            "system:kube-scheduler",
            &[("User", "system:kube-scheduler")],
        ),
        (
            "system:kube-controller-manager",
            &[("User", "system:kube-controller-manager")],
        ),
        // No binding of `system:node` to `system:nodes`: the Node
        // authorizer (authz/node.rs) gives each kubelet exactly its own
        // objects, as Kubernetes has since 1.8.
        ("system:kube-dns", &[("User", "system:kube-dns")]),
        // The apiserver's client identity toward kubelets (its
        // --kubelet-client-certificate), as kubeadm binds it.
        (
            "system:kubelet-api-admin",
            &[("User", "kube-apiserver-kubelet-client")],
        ),
        ("system:node-proxier", &[("User", "system:kube-proxy")]),
        ("system:ingress-proxy", &[("User", "system:ingress-proxy")]),
    ];
    defaults
        .iter()
        .map(|&(name, subjects)| ClusterRoleBinding {
            metadata: bootstrap_meta(name),
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: "ClusterRole".into(),
                name: name.into(),
            },
            subjects: Some(
                subjects
                    .iter()
                    .map(|(kind, name)| Subject {
                        kind: (*kind).into(),
                        api_group: Some(RBAC_GROUP.into()),
                        name: (*name).into(),
                        namespace: None,
                    })
                    .collect(),
            ),
        })
        .collect()
}

fn autoupdate(existing: &Value) -> bool {
    existing
        .pointer(&format!(
            "/metadata/annotations/{}",
            AUTOUPDATE.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        != Some("false")
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::internal(e.to_string()))
}

/// Creates the missing default roles and bindings, and adds to existing
/// ones the rules and subjects they lack. Idempotent.
pub async fn reconcile(roles: &dyn Rest, bindings: &dyn Rest) -> Result<(), ApiError> {
    for role in cluster_roles() {
        reconcile_one(
            roles,
            "clusterrole",
            role,
            |current: &mut ClusterRole, wanted| {
                let have = current.rules.clone().unwrap_or_default();
                let missing = uncovered(&have, wanted.rules.as_deref().unwrap_or_default());
                let changed = !missing.is_empty();
                current.rules.get_or_insert_with(Vec::new).extend(missing);
                changed
            },
        )
        .await?;
    }
    for binding in cluster_role_bindings() {
        reconcile_one(
            bindings,
            "clusterrolebinding",
            binding,
            |current: &mut ClusterRoleBinding, wanted| {
                let subjects = current.subjects.get_or_insert_with(Vec::new);
                let before = subjects.len();
                for subject in wanted.subjects.into_iter().flatten() {
                    if !subjects
                        .iter()
                        .any(|s| s.kind == subject.kind && s.name == subject.name)
                    {
                        subjects.push(subject);
                    }
                }
                subjects.len() != before
            },
        )
        .await?;
    }
    Ok(())
}

/// One default object: created when missing; otherwise, unless its
/// `autoupdate` annotation says `false`, `complete` adds to the stored
/// copy what `wanted` has and it lacks (true when it added something), and
/// the result is stored. Nothing is ever removed.
async fn reconcile_one<T>(
    rest: &dyn Rest,
    kind: &str,
    wanted: T,
    complete: impl FnOnce(&mut T, T) -> bool,
) -> Result<(), ApiError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let name = wanted.metadata().name.clone().unwrap_or_default();
    match rest.get(None, &name).await {
        Ok(existing) => {
            if !autoupdate(&existing) {
                return Ok(());
            }
            let mut current: T =
                serde_json::from_value(existing).map_err(|e| ApiError::internal(e.to_string()))?;
            if !complete(&mut current, wanted) {
                return Ok(());
            }
            rest.update(
                None,
                &name,
                to_json(&current)?,
                Subresource::Main,
                &WriteOptions::default(),
            )
            .await?;
            info!(%kind, %name, "completed a default object with what it lacked");
        }
        Err(e) if e.code() == 404 => {
            match rest
                .create(None, to_json(&wanted)?, &WriteOptions::default())
                .await
            {
                Ok(_) => info!(%kind, %name, "created a default object"),
                Err(e) if e.code() == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::validation::{validate_cluster_role, validate_cluster_role_binding};

    #[test]
    fn the_defaults_are_valid_and_bound_to_existing_roles() {
        let roles = cluster_roles();
        for role in &roles {
            assert!(
                validate_cluster_role(role).is_empty(),
                "{:?}",
                role.metadata.name
            );
        }
        for binding in cluster_role_bindings() {
            assert!(validate_cluster_role_binding(&binding).is_empty());
            assert!(roles
                .iter()
                .any(|r| r.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())));
        }
    }

    #[test]
    fn admin_covers_edit_covers_view() {
        assert!(uncovered(&admin_rules(), &edit_rules()).is_empty());
        assert!(uncovered(&edit_rules(), &view_rules()).is_empty());
        assert!(!uncovered(&view_rules(), &edit_rules()).is_empty());
    }
}
