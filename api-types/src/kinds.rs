//! The resources the API serves: their kinds, plural names in each version,
//! short names, scope and etcd key prefix.
//!
//! One table serves routing, discovery, storage keys and the CLI, so a
//! resource is added in one place.

/// One resource of an API group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceKind {
    /// The API group: `""` for the core group (served under `/api`), a
    /// DNS name for named groups (`coordination.k8s.io`, under `/apis`).
    pub group: &'static str,
    /// The version served (`v1`).
    pub version: &'static str,
    /// The object's `kind` (`Pod`).
    pub kind: &'static str,
    /// The plural in paths (`pods`).
    pub plural: &'static str,
    /// The singular name (`pod`).
    pub singular: &'static str,
    /// The plural on `/api/v1beta1` (`replicationControllers`, `minions`),
    /// or `None` when v1beta1 does not serve it.
    pub v1beta1_plural: Option<&'static str>,
    /// The v1beta1 `kind` (`Minion` for nodes).
    pub v1beta1_kind: &'static str,
    /// kubectl's short names (`po`, `rc`...).
    pub short_names: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// etcd key prefix below `/registry/`, without the trailing slash
    /// (`pods`, `services/specs`).
    pub storage_prefix: &'static str,
    /// Subresources served below an object (`status`, `binding`...).
    pub subresources: &'static [&'static str],
}

impl ResourceKind {
    /// The etcd key of one object: `/registry/{prefix}/{ns}/{name}` or, for
    /// cluster-scoped kinds, `/registry/{prefix}/{name}`.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{ns}/{name}", self.storage_prefix),
            _ => format!("/registry/{}/{name}", self.storage_prefix),
        }
    }

    /// The etcd prefix holding every object of this kind in `namespace`
    /// (all namespaces when `None`), with a trailing slash so that `pods/a`
    /// never matches `pods/ab`.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{ns}/", self.storage_prefix),
            _ => format!("/registry/{}/", self.storage_prefix),
        }
    }

    /// The kind of this resource's list (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The `apiVersion` of its objects: `v1` for the core group,
    /// `{group}/{version}` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The path its group-version is served under: `/api/v1` or
    /// `/apis/{group}/{version}`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

/// `Pod`.
pub const PODS: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
    singular: "pod",
    v1beta1_plural: Some("pods"),
    v1beta1_kind: "Pod",
    short_names: &["po"],
    namespaced: true,
    storage_prefix: "pods",
    subresources: &["status", "binding", "log", "eviction"],
};

/// `Service`.
pub const SERVICES: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "Service",
    plural: "services",
    singular: "service",
    v1beta1_plural: Some("services"),
    v1beta1_kind: "Service",
    short_names: &["svc"],
    namespaced: true,
    storage_prefix: "services/specs",
    subresources: &["status"],
};

/// `ReplicationController`.
pub const REPLICATION_CONTROLLERS: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "ReplicationController",
    plural: "replicationcontrollers",
    singular: "replicationcontroller",
    v1beta1_plural: Some("replicationControllers"),
    v1beta1_kind: "ReplicationController",
    short_names: &["rc"],
    namespaced: true,
    storage_prefix: "controllers",
    subresources: &["status", "scale"],
};

/// `Node` (v1beta1 `Minion`).
pub const NODES: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    singular: "node",
    v1beta1_plural: Some("minions"),
    v1beta1_kind: "Minion",
    short_names: &["no"],
    namespaced: false,
    storage_prefix: "minions",
    subresources: &["status"],
};

/// `Endpoints`.
pub const ENDPOINTS: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "Endpoints",
    plural: "endpoints",
    singular: "endpoints",
    v1beta1_plural: Some("endpoints"),
    v1beta1_kind: "Endpoints",
    short_names: &["ep"],
    namespaced: true,
    storage_prefix: "services/endpoints",
    subresources: &[],
};

/// `Namespace`.
pub const NAMESPACES: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "Namespace",
    plural: "namespaces",
    singular: "namespace",
    v1beta1_plural: None,
    v1beta1_kind: "Namespace",
    short_names: &["ns"],
    namespaced: false,
    storage_prefix: "namespaces",
    subresources: &["status"],
};

/// `Event`.
pub const EVENTS: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
    singular: "event",
    v1beta1_plural: Some("events"),
    v1beta1_kind: "Event",
    short_names: &["ev"],
    namespaced: true,
    storage_prefix: "events",
    subresources: &[],
};

/// `coordination.k8s.io/v1` `Lease`: node heartbeats (`kube-node-lease`)
/// and, to come, leader election.
pub const LEASES: ResourceKind = ResourceKind {
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    plural: "leases",
    singular: "lease",
    v1beta1_plural: None,
    v1beta1_kind: "Lease",
    short_names: &[],
    namespaced: true,
    storage_prefix: "leases",
    subresources: &[],
};

/// `ConfigMap`: settings for pods, read through env and volumes.
pub const CONFIG_MAPS: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    singular: "configmap",
    v1beta1_plural: None,
    v1beta1_kind: "ConfigMap",
    short_names: &["cm"],
    namespaced: true,
    storage_prefix: "configmaps",
    subresources: &[],
};

/// `Secret`: like a ConfigMap, for credentials (base64 `data`).
pub const SECRETS: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
    singular: "secret",
    v1beta1_plural: None,
    v1beta1_kind: "Secret",
    short_names: &[],
    namespaced: true,
    storage_prefix: "secrets",
    subresources: &[],
};

/// `rbac.authorization.k8s.io/v1` `Role`: rules within one namespace.
pub const ROLES: ResourceKind = ResourceKind {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "Role",
    plural: "roles",
    singular: "role",
    v1beta1_plural: None,
    v1beta1_kind: "Role",
    short_names: &[],
    namespaced: true,
    storage_prefix: "roles",
    subresources: &[],
};

/// `rbac.authorization.k8s.io/v1` `RoleBinding`: grants a Role (or a
/// ClusterRole's rules) to subjects within one namespace.
pub const ROLE_BINDINGS: ResourceKind = ResourceKind {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "RoleBinding",
    plural: "rolebindings",
    singular: "rolebinding",
    v1beta1_plural: None,
    v1beta1_kind: "RoleBinding",
    short_names: &[],
    namespaced: true,
    storage_prefix: "rolebindings",
    subresources: &[],
};

/// `rbac.authorization.k8s.io/v1` `ClusterRole`: rules cluster-wide.
pub const CLUSTER_ROLES: ResourceKind = ResourceKind {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "ClusterRole",
    plural: "clusterroles",
    singular: "clusterrole",
    v1beta1_plural: None,
    v1beta1_kind: "ClusterRole",
    short_names: &[],
    namespaced: false,
    storage_prefix: "clusterroles",
    subresources: &[],
};

/// `rbac.authorization.k8s.io/v1` `ClusterRoleBinding`: grants a
/// ClusterRole to subjects in every namespace.
pub const CLUSTER_ROLE_BINDINGS: ResourceKind = ResourceKind {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "ClusterRoleBinding",
    plural: "clusterrolebindings",
    singular: "clusterrolebinding",
    v1beta1_plural: None,
    v1beta1_kind: "ClusterRoleBinding",
    short_names: &[],
    namespaced: false,
    storage_prefix: "clusterrolebindings",
    subresources: &[],
};

/// `networking.k8s.io/v1` `Ingress`: HTTP routes by host and path to
/// services, served by the ingress proxy on every node.
pub const INGRESSES: ResourceKind = ResourceKind {
    group: "networking.k8s.io",
    version: "v1",
    kind: "Ingress",
    plural: "ingresses",
    singular: "ingress",
    v1beta1_plural: None,
    v1beta1_kind: "Ingress",
    short_names: &["ing"],
    namespaced: true,
    storage_prefix: "ingress",
    subresources: &["status"],
};

/// `networking.k8s.io/v1` `IngressClass`: which controller serves the
/// Ingresses naming it.
pub const INGRESS_CLASSES: ResourceKind = ResourceKind {
    group: "networking.k8s.io",
    version: "v1",
    kind: "IngressClass",
    plural: "ingressclasses",
    singular: "ingressclass",
    v1beta1_plural: None,
    v1beta1_kind: "IngressClass",
    short_names: &[],
    namespaced: false,
    storage_prefix: "ingressclasses",
    subresources: &[],
};

/// `apps/v1` `DaemonSet`: one pod on every node that matches.
pub const DAEMON_SETS: ResourceKind = ResourceKind {
    group: "apps",
    version: "v1",
    kind: "DaemonSet",
    plural: "daemonsets",
    singular: "daemonset",
    v1beta1_plural: None,
    v1beta1_kind: "DaemonSet",
    short_names: &["ds"],
    namespaced: true,
    storage_prefix: "daemonsets",
    subresources: &["status"],
};

/// `ComponentStatus` (deprecated in Kubernetes 1.19, still served): the
/// health of etcd's members, the scheduler and the controller manager,
/// probed on each request and never stored (get and list only).
pub const COMPONENT_STATUSES: ResourceKind = ResourceKind {
    group: "",
    version: "v1",
    kind: "ComponentStatus",
    plural: "componentstatuses",
    singular: "componentstatus",
    v1beta1_plural: None,
    v1beta1_kind: "ComponentStatus",
    short_names: &["cs"],
    namespaced: false,
    storage_prefix: "componentstatuses",
    subresources: &[],
};

/// Every resource the API serves, of every group.
pub const ALL: [ResourceKind; 18] = [
    PODS,
    SERVICES,
    REPLICATION_CONTROLLERS,
    NODES,
    ENDPOINTS,
    NAMESPACES,
    EVENTS,
    CONFIG_MAPS,
    SECRETS,
    LEASES,
    ROLES,
    ROLE_BINDINGS,
    CLUSTER_ROLES,
    CLUSTER_ROLE_BINDINGS,
    INGRESSES,
    INGRESS_CLASSES,
    DAEMON_SETS,
    COMPONENT_STATUSES,
];

/// A named API group and its one served version, in the order `/apis`
/// lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupVersion {
    /// The group (`coordination.k8s.io`).
    pub group: &'static str,
    /// The version (`v1`).
    pub version: &'static str,
}

/// The named groups (every group of [`ALL`] but the core one), each once.
pub fn named_groups() -> Vec<GroupVersion> {
    let mut groups: Vec<GroupVersion> = Vec::new();
    for r in ALL.iter().filter(|r| !r.group.is_empty()) {
        let gv = GroupVersion {
            group: r.group,
            version: r.version,
        };
        if !groups.contains(&gv) {
            groups.push(gv);
        }
    }
    groups
}

/// The resources of one group-version (`""`, `v1` for the core group).
pub fn in_group<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceKind> + 'a {
    ALL.iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// The core resource a v1 plural names (`pods`).
pub fn by_plural(plural: &str) -> Option<&'static ResourceKind> {
    by_group_plural("", "v1", plural)
}

/// The resource a plural names in a group-version (`coordination.k8s.io`,
/// `v1`, `leases`).
pub fn by_group_plural(group: &str, version: &str, plural: &str) -> Option<&'static ResourceKind> {
    in_group(group, version).find(|r| r.plural == plural)
}

/// The resource whose objects carry `apiVersion` and `kind`.
pub fn by_api_version_kind(api_version: &str, kind: &str) -> Option<&'static ResourceKind> {
    ALL.iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The resource a v1beta1 plural names (`replicationControllers`, `minions`).
/// Lower-case spellings are accepted too, as users type them.
pub fn by_v1beta1_plural(plural: &str) -> Option<&'static ResourceKind> {
    ALL.iter().find(|r| {
        r.v1beta1_plural
            .is_some_and(|p| p == plural || p.eq_ignore_ascii_case(plural))
    })
}

/// The resource a user names in any of kubectl's spellings: plural,
/// singular, short name, kind, or the v1beta1 plural (`minions`).
pub fn lookup(name: &str) -> Option<&'static ResourceKind> {
    let lower = name.to_ascii_lowercase();
    ALL.iter().find(|r| {
        r.plural == lower
            || r.singular == lower
            || r.kind.eq_ignore_ascii_case(&lower)
            || r.short_names.contains(&lower.as_str())
            || r.v1beta1_plural
                .is_some_and(|p| p.eq_ignore_ascii_case(&lower))
            || r.v1beta1_kind.eq_ignore_ascii_case(&lower)
            || (lower.ends_with('s')
                && r.v1beta1_kind
                    .eq_ignore_ascii_case(&lower[..lower.len() - 1]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_design_layout() {
        assert_eq!(
            PODS.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        assert_eq!(
            SERVICES.key(Some("ns1"), "db"),
            "/registry/services/specs/ns1/db"
        );
        assert_eq!(
            ENDPOINTS.key(Some("ns1"), "db"),
            "/registry/services/endpoints/ns1/db"
        );
        assert_eq!(
            REPLICATION_CONTROLLERS.key(Some("default"), "fe"),
            "/registry/controllers/default/fe"
        );
        assert_eq!(NODES.key(None, "m1"), "/registry/minions/m1");
        assert_eq!(
            NAMESPACES.key(None, "default"),
            "/registry/namespaces/default"
        );
        assert_eq!(EVENTS.key(Some("a"), "e1"), "/registry/events/a/e1");
        assert_eq!(PODS.prefix(None), "/registry/pods/");
        assert_eq!(
            LEASES.key(Some("kube-node-lease"), "m1"),
            "/registry/leases/kube-node-lease/m1"
        );
    }

    #[test]
    fn groups_name_their_paths_and_api_versions() {
        assert_eq!(PODS.api_version(), "v1");
        assert_eq!(PODS.group_version_path(), "/api/v1");
        assert_eq!(LEASES.api_version(), "coordination.k8s.io/v1");
        assert_eq!(LEASES.group_version_path(), "/apis/coordination.k8s.io/v1");
        // A named group's plural is not a core one, and the reverse.
        assert_eq!(by_plural("leases"), None);
        assert_eq!(
            by_group_plural("coordination.k8s.io", "v1", "leases"),
            Some(&LEASES)
        );
        assert_eq!(by_group_plural("coordination.k8s.io", "v1", "pods"), None);
        // Each named group once, in the order of `ALL`.
        assert_eq!(
            named_groups()[..2],
            [
                GroupVersion {
                    group: "coordination.k8s.io",
                    version: "v1"
                },
                GroupVersion {
                    group: "rbac.authorization.k8s.io",
                    version: "v1"
                }
            ]
        );
        let apps = GroupVersion {
            group: "apps",
            version: "v1",
        };
        assert_eq!(named_groups().iter().filter(|g| **g == apps).count(), 1);
        assert_eq!(
            by_group_plural("apps", "v1", "daemonsets"),
            Some(&DAEMON_SETS)
        );
        assert_eq!(lookup("ds"), Some(&DAEMON_SETS));
        assert_eq!(
            CLUSTER_ROLES.key(None, "view"),
            "/registry/clusterroles/view"
        );
        assert_eq!(
            ROLE_BINDINGS.key(Some("a"), "b"),
            "/registry/rolebindings/a/b"
        );
        assert_eq!(
            by_api_version_kind("coordination.k8s.io/v1", "Lease"),
            Some(&LEASES)
        );
    }

    #[test]
    fn lookup_takes_every_spelling() {
        for (name, kind) in [
            ("po", "Pod"),
            ("pods", "Pod"),
            ("Pod", "Pod"),
            ("svc", "Service"),
            ("rc", "ReplicationController"),
            ("replicationControllers", "ReplicationController"),
            ("minions", "Node"),
            ("minion", "Node"),
            ("no", "Node"),
            ("ep", "Endpoints"),
            ("ns", "Namespace"),
            ("ev", "Event"),
        ] {
            assert_eq!(lookup(name).map(|r| r.kind), Some(kind), "{name}");
        }
        assert!(lookup("deployments").is_none());
    }
}
