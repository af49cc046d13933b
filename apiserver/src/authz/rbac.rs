//! The RBAC authorizer: Roles, ClusterRoles and their bindings, kept in
//! memory by one list-and-watch per kind over the registries (their watch
//! caches), never read from etcd per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use api_types::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;

use super::Attributes;
use crate::auth::User;
use crate::registry::Rest;

/// One object kept, by `namespace/name` (`name` for cluster-scoped kinds).
type Objects<T> = HashMap<String, T>;

/// What the cache holds: the four kinds.
#[derive(Default)]
struct Snapshot {
    roles: Objects<Role>,
    cluster_roles: Objects<ClusterRole>,
    role_bindings: Objects<RoleBinding>,
    cluster_role_bindings: Objects<ClusterRoleBinding>,
}

/// The RBAC objects in memory, filled and kept current by [`RbacCache::start`].
#[derive(Default)]
pub struct RbacCache {
    snapshot: RwLock<Snapshot>,
    /// Open once each of the four kinds has been listed.
    synced: super::reflect::SyncGate,
}

fn key_of(value: &Value) -> Option<String> {
    let name = value.pointer("/metadata/name")?.as_str()?;
    Some(
        match value.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name.to_string(),
        },
    )
}

/// Which map of the snapshot a reflector fills.
type Pick<T> = fn(&mut Snapshot) -> &mut Objects<T>;

impl RbacCache {
    /// Starts one reflector per kind over `roles`, `cluster_roles`,
    /// `role_bindings` and `cluster_role_bindings`, until `stop` turns true.
    pub fn start(
        roles: Arc<dyn Rest>,
        cluster_roles: Arc<dyn Rest>,
        role_bindings: Arc<dyn Rest>,
        cluster_role_bindings: Arc<dyn Rest>,
        stop: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let cache = Arc::new(Self {
            synced: super::reflect::SyncGate::new(4),
            ..Self::default()
        });
        tokio::spawn(reflect::<Role>(
            cache.clone(),
            roles,
            |s| &mut s.roles,
            stop.clone(),
        ));
        tokio::spawn(reflect::<ClusterRole>(
            cache.clone(),
            cluster_roles,
            |s| &mut s.cluster_roles,
            stop.clone(),
        ));
        tokio::spawn(reflect::<RoleBinding>(
            cache.clone(),
            role_bindings,
            |s| &mut s.role_bindings,
            stop.clone(),
        ));
        tokio::spawn(reflect::<ClusterRoleBinding>(
            cache.clone(),
            cluster_role_bindings,
            |s| &mut s.cluster_role_bindings,
            stop,
        ));
        cache
    }

    /// Whether every kind has been listed once (see
    /// `authz::reflect::SyncGate`).
    pub fn synced(&self) -> &super::reflect::SyncGate {
        &self.synced
    }

    /// Whether a rule bound to `user` allows the request.
    pub fn allows(&self, user: &User, attributes: &Attributes) -> bool {
        let mut allowed = false;
        self.visit_rules(user, attributes.namespace.as_deref(), |rule| {
            allowed = rule_allows(rule, attributes);
            allowed
        });
        allowed
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide ones
    /// only when `None`).
    pub fn rules_for(&self, user: &User, namespace: Option<&str>) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        self.visit_rules(user, namespace, |rule| {
            rules.push(rule.clone());
            false
        });
        rules
    }

    /// The rules of the role a binding in `namespace` refers to (`None`
    /// when it does not exist yet).
    pub fn role_rules(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Vec<PolicyRule>> {
        let snapshot = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        match (kind, namespace) {
            ("ClusterRole", _) => snapshot
                .cluster_roles
                .get(name)
                .map(|r| r.rules.clone().unwrap_or_default()),
            ("Role", Some(ns)) => snapshot
                .roles
                .get(&format!("{ns}/{name}"))
                .map(|r| r.rules.clone().unwrap_or_default()),
            _ => None,
        }
    }

    /// Calls `visit` with each rule bound to `user` (cluster role bindings
    /// first, then role bindings of `namespace`) until it returns true.
    fn visit_rules(
        &self,
        user: &User,
        namespace: Option<&str>,
        mut visit: impl FnMut(&PolicyRule) -> bool,
    ) {
        let snapshot = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        let cluster_rules = |name: &str| {
            snapshot
                .cluster_roles
                .get(name)
                .and_then(|r| r.rules.as_ref())
        };
        for binding in snapshot.cluster_role_bindings.values() {
            if binding.role_ref.kind != "ClusterRole"
                || !binds(binding.subjects.as_deref(), user, "")
            {
                continue;
            }
            for rule in cluster_rules(&binding.role_ref.name).into_iter().flatten() {
                if visit(rule) {
                    return;
                }
            }
        }
        let Some(ns) = namespace.filter(|ns| !ns.is_empty()) else {
            return;
        };
        for binding in snapshot.role_bindings.values() {
            if binding.metadata.namespace.as_deref() != Some(ns)
                || !binds(binding.subjects.as_deref(), user, ns)
            {
                continue;
            }
            let rules = match binding.role_ref.kind.as_str() {
                "ClusterRole" => cluster_rules(&binding.role_ref.name),
                "Role" => snapshot
                    .roles
                    .get(&format!("{ns}/{}", binding.role_ref.name))
                    .and_then(|r| r.rules.as_ref()),
                _ => None,
            };
            for rule in rules.into_iter().flatten() {
                if visit(rule) {
                    return;
                }
            }
        }
    }
}

/// Lists then watches one kind into the cache, again from a fresh list
/// whenever the watch ends (the registry ends it when its watch cache falls
/// behind or etcd compacted), until `stop`.
async fn reflect<T: DeserializeOwned + Send + Sync + 'static>(
    cache: Arc<RbacCache>,
    registry: Arc<dyn Rest>,
    pick: Pick<T>,
    stop: watch::Receiver<bool>,
) {
    let listed = cache.clone();
    let first = std::sync::atomic::AtomicBool::new(true);
    super::reflect::list_and_watch(
        registry,
        stop,
        move |items| {
            let objects: Objects<T> = items
                .into_iter()
                .filter_map(|item| Some((key_of(&item)?, serde_json::from_value(item).ok()?)))
                .collect();
            *pick(&mut listed.snapshot.write().unwrap_or_else(|e| e.into_inner())) = objects;
            if first.swap(false, std::sync::atomic::Ordering::AcqRel) {
                listed.synced.listed();
            }
        },
        move |kind, object| apply(&cache, pick, kind, object),
    )
    .await;
}

fn apply<T: DeserializeOwned>(cache: &RbacCache, pick: Pick<T>, kind: &str, object: Value) {
    let Some(key) = key_of(&object) else { return };
    let mut snapshot = cache.snapshot.write().unwrap_or_else(|e| e.into_inner());
    let objects = pick(&mut snapshot);
    match kind {
        "ADDED" | "MODIFIED" => {
            if let Ok(parsed) = serde_json::from_value(object) {
                objects.insert(key, parsed);
            }
        }
        "DELETED" => {
            objects.remove(&key);
        }
        _ => {}
    }
}

/// Whether one of `subjects` is `user` (`namespace`: the binding's, the
/// default for service account subjects).
fn binds(subjects: Option<&[Subject]>, user: &User, namespace: &str) -> bool {
    subjects
        .into_iter()
        .flatten()
        .any(|s| match s.kind.as_str() {
            "User" => s.name == user.name,
            "Group" => user.groups.contains(&s.name),
            "ServiceAccount" => {
                let ns = s
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(namespace);
                user.name == format!("system:serviceaccount:{ns}:{}", s.name)
            }
            _ => false,
        })
}

fn has(list: Option<&Vec<String>>, value: &str) -> bool {
    list.into_iter().flatten().any(|v| v == "*" || v == value)
}

/// Whether `rule` allows the request, as Kubernetes' `RuleAllows`:
/// `*` wildcards in verbs, groups and resources, `*/sub` for a
/// subresource of any resource, resourceNames (empty: all), and
/// nonResourceURLs ending in `*` as prefixes.
pub fn rule_allows(rule: &PolicyRule, attributes: &Attributes) -> bool {
    if !rule.verbs.iter().any(|v| v == "*" || *v == attributes.verb) {
        return false;
    }
    let Some(resource) = &attributes.resource else {
        let path = attributes.path.as_str();
        return rule.non_resource_urls.iter().flatten().any(|url| {
            url == "*"
                || url == path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        });
    };
    if !has(rule.api_groups.as_ref(), &attributes.api_group) {
        return false;
    }
    let subresource = attributes.subresource.as_deref().unwrap_or("");
    let combined = if subresource.is_empty() {
        resource.clone()
    } else {
        format!("{resource}/{subresource}")
    };
    let resource_ok = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || *r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    });
    if !resource_ok {
        return false;
    }
    match &rule.resource_names {
        Some(names) if !names.is_empty() => attributes
            .name
            .as_ref()
            .is_some_and(|name| names.contains(name)),
        _ => true,
    }
}

/// Whether `owner`'s rules grant everything `servant` grants (Kubernetes'
/// `validation.Covers`): each servant rule, broken into single
/// verb/group/resource/name (or verb/URL) grants, is allowed by some owner
/// rule. A servant `*` is only covered by an owner `*`. Returns the grants
/// not covered.
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut missing = Vec::new();
    for rule in servant {
        for simple in break_down(rule) {
            if !owner.iter().any(|o| covers(o, &simple)) {
                missing.push(simple);
            }
        }
    }
    missing
}

fn break_down(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| Some(vec![s.clone()]);
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in rule.non_resource_urls.iter().flatten() {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(url),
                ..PolicyRule::default()
            });
        }
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                let base = PolicyRule {
                    verbs: vec![verb.clone()],
                    api_groups: one(group),
                    resources: one(resource),
                    ..PolicyRule::default()
                };
                match rule.resource_names.as_ref().filter(|n| !n.is_empty()) {
                    Some(names) => out.extend(names.iter().map(|n| PolicyRule {
                        resource_names: one(n),
                        ..base.clone()
                    })),
                    None => out.push(base),
                }
            }
        }
    }
    out
}

/// Whether `owner` covers the simple rule `servant` (one of each).
fn covers(owner: &PolicyRule, servant: &PolicyRule) -> bool {
    let first = |v: &Option<Vec<String>>| v.as_ref().and_then(|l| l.first()).cloned();
    let Some(verb) = servant.verbs.first() else {
        return true;
    };
    if !has(Some(&owner.verbs), verb) {
        return false;
    }
    if let Some(url) = first(&servant.non_resource_urls) {
        return owner.non_resource_urls.iter().flatten().any(|o| {
            o == "*"
                || *o == url
                || o.strip_suffix('*')
                    .is_some_and(|prefix| url.starts_with(prefix))
        });
    }
    let (Some(group), Some(resource)) = (first(&servant.api_groups), first(&servant.resources))
    else {
        return true;
    };
    if !has(owner.api_groups.as_ref(), &group) {
        return false;
    }
    let resource_ok = owner.resources.iter().flatten().any(|o| {
        o == "*"
            || *o == resource
            || resource
                .split_once('/')
                .is_some_and(|(_, sub)| o.strip_prefix("*/") == Some(sub))
    });
    if !resource_ok {
        return false;
    }
    match owner.resource_names.as_ref().filter(|n| !n.is_empty()) {
        None => true,
        Some(names) => first(&servant.resource_names).is_some_and(|n| names.contains(&n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        let list = |v: &[&str]| (!v.is_empty()).then(|| v.iter().map(|s| (*s).into()).collect());
        PolicyRule {
            verbs: verbs.iter().map(|s| (*s).into()).collect(),
            api_groups: list(groups),
            resources: list(resources),
            ..PolicyRule::default()
        }
    }

    fn request(verb: &str, group: &str, resource: &str, sub: Option<&str>) -> Attributes {
        Attributes {
            verb: verb.into(),
            api_group: group.into(),
            resource: Some(resource.into()),
            subresource: sub.map(Into::into),
            namespace: Some("default".into()),
            name: Some("web".into()),
            path: String::new(),
            field_selector: None,
        }
    }

    #[test]
    fn rules_match_with_wildcards_and_names() {
        let reader = rule(&["get", "list"], &[""], &["pods"]);
        assert!(rule_allows(&reader, &request("list", "", "pods", None)));
        assert!(!rule_allows(&reader, &request("delete", "", "pods", None)));
        assert!(!rule_allows(&reader, &request("get", "apps", "pods", None)));
        assert!(!rule_allows(
            &reader,
            &request("get", "", "pods", Some("log"))
        ));
        let all = rule(&["*"], &["*"], &["*"]);
        assert!(rule_allows(&all, &request("escalate", "x", "y", Some("z"))));
        let status = rule(&["update"], &[""], &["*/status"]);
        assert!(rule_allows(
            &status,
            &request("update", "", "pods", Some("status"))
        ));
        assert!(!rule_allows(&status, &request("update", "", "pods", None)));
        let mut named = reader.clone();
        named.resource_names = Some(vec!["db".into()]);
        assert!(!rule_allows(&named, &request("get", "", "pods", None)));
        let urls = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/apis/*".into(), "/version".into()]),
            ..PolicyRule::default()
        };
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Attributes::default()
        };
        assert!(rule_allows(&urls, &path("/apis/rbac.authorization.k8s.io")));
        assert!(rule_allows(&urls, &path("/version")));
        assert!(!rule_allows(&urls, &path("/metrics")));
    }

    #[test]
    fn covering_breaks_rules_down() {
        let owner = vec![
            rule(&["get", "list"], &[""], &["pods", "services"]),
            rule(&["*"], &[""], &["configmaps"]),
        ];
        assert!(uncovered(&owner, &[rule(&["get"], &[""], &["pods", "configmaps"])]).is_empty());
        assert_eq!(
            uncovered(&owner, &[rule(&["get", "delete"], &[""], &["pods"])]).len(),
            1
        );
        // A wildcard is only covered by a wildcard.
        assert_eq!(
            uncovered(&owner, &[rule(&["*"], &[""], &["pods"])]).len(),
            1
        );
        assert!(uncovered(
            &[rule(&["*"], &["*"], &["*"])],
            &[rule(&["*"], &["x"], &["y"])]
        )
        .is_empty());
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let user = User {
            name: "system:serviceaccount:ns1:builder".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
        };
        let subject = |kind: &str, name: &str, ns: Option<&str>| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(Into::into),
            api_group: None,
        };
        assert!(binds(
            Some(&[subject("ServiceAccount", "builder", None)]),
            &user,
            "ns1"
        ));
        assert!(!binds(
            Some(&[subject("ServiceAccount", "builder", None)]),
            &user,
            "ns2"
        ));
        assert!(binds(
            Some(&[subject("Group", "system:authenticated", None)]),
            &user,
            ""
        ));
        assert!(!binds(Some(&[subject("User", "alice", None)]), &user, ""));
    }
}
