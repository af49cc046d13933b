//! Authorization: who may do what, decided after authentication.
//!
//! Each request becomes [`Attributes`] (user, verb, resource, subresource,
//! namespace, name, API group, or a non-resource path) as Kubernetes'
//! `RequestInfoFactory` derives them, and the configured modes
//! (`--authorization-mode`, in order) are asked until one allows it: a
//! refusal is a 403 `Forbidden` Status naming user, verb and resource.
//! Members of `system:masters` are always allowed, as in Kubernetes.
//! Without authentication (no `--token-auth-file`) nothing is authorized,
//! as Kubernetes' old insecure port: see `docs/operations.md`.

pub mod bootstrap;
pub mod node;
pub mod rbac;
pub mod reflect;
pub mod review;

use std::sync::Arc;

use api_types::status::{failure, Reason};
use api_types::v1::{PolicyRule, StatusDetails};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tracing::debug;

use crate::auth::{User, MASTERS_GROUP};
use crate::error::ApiError;
use crate::http::path::Version;

pub use rbac::RbacCache;

/// One authorization mode of `--authorization-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Every request is allowed.
    #[value(name = "AlwaysAllow")]
    AlwaysAllow,
    /// Every request is refused (but `system:masters`').
    #[value(name = "AlwaysDeny")]
    AlwaysDeny,
    /// Roles and bindings (`rbac.authorization.k8s.io/v1`).
    #[value(name = "RBAC")]
    Rbac,
    /// Kubelets (`system:node:<name>`) reach their own node, lease and
    /// pods, and what those pods name (see [`node`]).
    #[value(name = "Node")]
    Node,
}

/// What a request asks to do, as Kubernetes' authorizers see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for non-resource paths the lower-case method.
    pub verb: String,
    /// The API group (`""` for the core group).
    pub api_group: String,
    /// The resource (v1 plural), `None` for a non-resource path.
    pub resource: Option<String>,
    /// A subresource (`status`, `log`, `binding`).
    pub subresource: Option<String>,
    /// The namespace, for namespaced requests.
    pub namespace: Option<String>,
    /// The object's name, when one is addressed.
    pub name: Option<String>,
    /// The request path.
    pub path: String,
    /// A list or watch's `fieldSelector` (decoded): the node authorizer
    /// lets a kubelet list only its own pods.
    pub field_selector: Option<String>,
}

impl Attributes {
    /// The attributes of a request, as Kubernetes' `RequestInfoFactory`:
    /// `/api/v1/...` and `/apis/{group}/{version}/...` paths are resource
    /// requests (`/namespaces/{ns}/` scopes them, `/watch/` and `?watch=`
    /// make a `watch`); every other path is a non-resource request.
    pub fn of(method: &Method, path: &str, query: Option<&str>) -> Self {
        let params: Vec<(&str, &str)> = query
            .unwrap_or("")
            .split('&')
            .filter_map(|p| p.split_once('=').or(Some((p, ""))))
            .collect();
        let param = |key: &str| params.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let non_resource = || Self {
            verb: match *method {
                Method::HEAD => "get".into(),
                ref m => m.as_str().to_ascii_lowercase(),
            },
            path: path.to_string(),
            ..Self::default()
        };
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (version, api_group, mut rest) = match segments.as_slice() {
            ["api", "v1", rest @ ..] => (Version::V1, "", rest),
            ["api", "v1beta1", rest @ ..] => (Version::V1beta1, "", rest),
            ["apis", group, _, rest @ ..] => (Version::V1, *group, rest),
            _ => return non_resource(),
        };
        if rest.is_empty() || rest.iter().any(|s| s.is_empty()) {
            return non_resource();
        }
        let mut watch = param("watch").is_some_and(|w| w == "true" || w == "1");
        if rest[0] == "watch" && rest.len() > 1 {
            watch = true;
            rest = &rest[1..];
        }
        let mut namespace = None;
        if version == Version::V1beta1 {
            namespace = param("namespace")
                .filter(|ns| !ns.is_empty())
                .map(str::to_string);
        } else if rest[0] == "namespaces" && rest.len() > 1 {
            namespace = Some(rest[1].to_string());
            // `/namespaces/{ns}` and its status/finalize are the namespace
            // object itself.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        let mut resource = rest[0].to_string();
        if version == Version::V1beta1 {
            if let Some(kind) = api_types::kinds::by_v1beta1_plural(&resource) {
                resource = kind.plural.to_string();
            }
        }
        let name = rest.get(1).map(|s| (*s).to_string());
        let subresource = rest.get(2).map(|s| (*s).to_string());
        let verb = match *method {
            Method::GET | Method::HEAD if watch => "watch",
            Method::GET | Method::HEAD if name.is_some() => "get",
            Method::GET | Method::HEAD => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if name.is_some() => "delete",
            Method::DELETE => "deletecollection",
            _ => "",
        };
        // A WebSocket exec, attach or port-forward is a GET, but it runs
        // something: Kubernetes authorizes it as `create` (the
        // `AuthorizePodWebsocketUpgradeCreatePermission` check), so `get` on
        // `pods/exec` alone runs no command.
        let verb = if verb == "get"
            && resource == "pods"
            && matches!(
                subresource.as_deref(),
                Some("exec" | "attach" | "portforward")
            ) {
            "create"
        } else {
            verb
        };
        let field_selector = query.and_then(|q| {
            let uri = axum::http::Uri::try_from(format!("/?{q}")).ok()?;
            let decoded = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).ok()?;
            decoded
                .0
                .into_iter()
                .find(|(k, _)| k == "fieldSelector")
                .map(|(_, v)| v)
        });
        Self {
            verb: verb.to_string(),
            api_group: api_group.to_string(),
            resource: Some(resource),
            subresource,
            namespace,
            name,
            path: path.to_string(),
            field_selector,
        }
    }

    /// The 403 Kubernetes answers when the request is refused:
    /// `pods is forbidden: User "alice" cannot list resource "pods" in API
    /// group "" in the namespace "default"`.
    pub fn forbidden(&self, user: &str) -> ApiError {
        let Some(resource) = &self.resource else {
            let mut status = failure(
                Reason::Forbidden,
                format!(
                    "forbidden: User {user:?} cannot {} path {:?}",
                    self.verb, self.path
                ),
            );
            status.details = Some(StatusDetails::default());
            return ApiError(Box::new(status));
        };
        let combined = match &self.subresource {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.clone(),
        };
        let scope = match &self.namespace {
            Some(ns) => format!("in the namespace {ns:?}"),
            None => "at the cluster scope".to_string(),
        };
        let why = format!(
            "User {user:?} cannot {} resource {combined:?} in API group {:?} {scope}",
            self.verb, self.api_group
        );
        let qualified = if self.api_group.is_empty() {
            resource.clone()
        } else {
            format!("{resource}.{}", self.api_group)
        };
        let message = match &self.name {
            Some(name) => format!("{qualified} {name:?} is forbidden: {why}"),
            None => format!("{qualified} is forbidden: {why}"),
        };
        let mut status = failure(Reason::Forbidden, message);
        status.details = Some(StatusDetails {
            name: self.name.clone(),
            group: (!self.api_group.is_empty()).then(|| self.api_group.clone()),
            kind: Some(resource.clone()),
            ..StatusDetails::default()
        });
        ApiError(Box::new(status))
    }
}

/// The configured modes and what they read.
pub struct Authorizer {
    modes: Vec<Mode>,
    rbac: Arc<RbacCache>,
    nodes: Option<Arc<node::NodeGraph>>,
}

impl Authorizer {
    /// An authorizer asking `modes` in order, RBAC reading `rbac`.
    pub fn new(modes: Vec<Mode>, rbac: Arc<RbacCache>) -> Self {
        Self {
            modes,
            rbac,
            nodes: None,
        }
    }

    /// The graph the `Node` mode decides from (without one, that mode
    /// allows nothing).
    #[must_use]
    pub fn with_node_graph(mut self, graph: Arc<node::NodeGraph>) -> Self {
        self.nodes = Some(graph);
        self
    }

    /// Waits, at most `limit`, until the RBAC objects and the node graph
    /// have been read once, so the first requests after a start are
    /// decided on them rather than refused on an empty cache.
    pub async fn wait_synced(&self, limit: std::time::Duration) {
        if self.uses_rbac() && !self.rbac.synced().is_open() {
            self.rbac.synced().wait(limit).await;
        }
        if let Some(graph) = self.nodes.as_ref().filter(|g| !g.synced().is_open()) {
            graph.synced().wait(limit).await;
        }
    }

    /// Whether `Node` is one of the modes (so the pod graph is needed).
    pub fn uses_node(modes: &[Mode]) -> bool {
        modes.contains(&Mode::Node)
    }

    /// Whether `user` may do what `attributes` describe: `system:masters`
    /// always, else the first mode that allows it.
    pub fn allows(&self, user: &User, attributes: &Attributes) -> bool {
        if user.groups.iter().any(|g| g == MASTERS_GROUP) {
            return true;
        }
        self.modes.iter().any(|mode| match mode {
            Mode::AlwaysAllow => true,
            Mode::AlwaysDeny => false,
            Mode::Rbac => self.rbac.allows(user, attributes),
            Mode::Node => match (&self.nodes, node::node_of(user)) {
                (Some(graph), Some(name)) => graph.allows(name, attributes),
                _ => false,
            },
        })
    }

    /// The rules `user` holds in `namespace` (for escalation checks and
    /// `SelfSubjectRulesReview`): everything for `system:masters` or when a
    /// mode allows all.
    pub fn rules_for(&self, user: &User, namespace: Option<&str>) -> Vec<PolicyRule> {
        if user.groups.iter().any(|g| g == MASTERS_GROUP) || self.modes.contains(&Mode::AlwaysAllow)
        {
            return vec![
                PolicyRule {
                    verbs: vec!["*".into()],
                    api_groups: Some(vec!["*".into()]),
                    resources: Some(vec!["*".into()]),
                    ..PolicyRule::default()
                },
                PolicyRule {
                    verbs: vec!["*".into()],
                    non_resource_urls: Some(vec!["*".into()]),
                    ..PolicyRule::default()
                },
            ];
        }
        if self.modes.contains(&Mode::Rbac) {
            self.rbac.rules_for(user, namespace)
        } else {
            Vec::new()
        }
    }

    /// Whether RBAC is one of the modes (so the default roles matter).
    pub fn uses_rbac(&self) -> bool {
        self.modes.contains(&Mode::Rbac)
    }

    /// The RBAC objects in memory.
    pub fn rbac(&self) -> &RbacCache {
        &self.rbac
    }
}

/// The user a request is served for, and the authorizer that admitted it:
/// the RBAC registries read it to refuse escalation.
#[derive(Clone)]
pub struct Requester {
    /// Who asks.
    pub user: User,
    /// The authorizer in force.
    pub authorizer: Arc<Authorizer>,
}

tokio::task_local! {
    /// The requester of the request this task serves, when authorization
    /// is on (the registries have no other way to know the user).
    pub static REQUESTER: Requester;
}

/// The requester of the current request, if authorization is on.
pub fn current_requester() -> Option<Requester> {
    REQUESTER.try_with(Clone::clone).ok()
}

/// How long a request waits for the authorizer's first read of its data
/// after a start before it is decided anyway.
const AUTHORIZER_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The authorization middleware: refuses with 403 what the authorizer
/// does not allow. Requests without an authenticated [`User`] (no
/// `--token-auth-file`, or the public health checks) pass untouched.
pub async fn authorize(
    State(authorizer): State<Option<Arc<Authorizer>>>,
    request: Request,
    next: Next,
) -> Response {
    let (Some(authorizer), Some(user)) = (authorizer, request.extensions().get::<User>().cloned())
    else {
        return next.run(request).await;
    };
    let attributes = Attributes::of(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    authorizer.wait_synced(AUTHORIZER_SYNC_WAIT).await;
    if !authorizer.allows(&user, &attributes) {
        debug!(user = %user.name, ?attributes, "forbidden");
        let version = if request.uri().path().starts_with("/api/v1beta1") {
            Version::V1beta1
        } else {
            Version::V1
        };
        return crate::http::error_response(version, None, &attributes.forbidden(&user.name));
    }
    let requester = Requester { user, authorizer };
    REQUESTER.scope(requester, next.run(request)).await
}

/// The modes in force: `--authorization-mode` when given, else `Node,RBAC`
/// (Kubernetes' recommended pair) with authentication and `AlwaysAllow`
/// without.
pub fn modes(configured: &[Mode], authenticating: bool) -> Vec<Mode> {
    if !configured.is_empty() {
        configured.to_vec()
    } else if authenticating {
        vec![Mode::Node, Mode::Rbac]
    } else {
        vec![Mode::AlwaysAllow]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, path_and_query: &str) -> Attributes {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        Attributes::of(&method, path, query)
    }

    #[test]
    fn requests_map_to_kubernetes_attributes() {
        let a = of(Method::GET, "/api/v1/namespaces/default/pods");
        assert_eq!(
            (
                a.verb.as_str(),
                a.resource.as_deref(),
                a.namespace.as_deref(),
                a.name
            ),
            ("list", Some("pods"), Some("default"), None)
        );
        let a = of(Method::GET, "/api/v1/namespaces/default/pods?watch=true");
        assert_eq!(a.verb, "watch");
        let a = of(Method::GET, "/api/v1/watch/namespaces/default/pods/web");
        assert_eq!((a.verb.as_str(), a.name.as_deref()), ("watch", Some("web")));
        let a = of(Method::POST, "/api/v1/namespaces/ns1/pods/web/binding");
        assert_eq!(
            (a.verb.as_str(), a.subresource.as_deref()),
            ("create", Some("binding"))
        );
        let a = of(Method::PUT, "/api/v1/namespaces/ns1/status");
        assert_eq!(
            (
                a.resource.as_deref(),
                a.name.as_deref(),
                a.subresource.as_deref()
            ),
            (Some("namespaces"), Some("ns1"), Some("status"))
        );
        let a = of(
            Method::DELETE,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        );
        assert_eq!(
            (a.verb.as_str(), a.api_group.as_str(), a.namespace),
            ("deletecollection", "rbac.authorization.k8s.io", None)
        );
        let a = of(Method::GET, "/api/v1beta1/minions?namespace=");
        assert_eq!((a.resource.as_deref(), a.namespace), (Some("nodes"), None));
        let a = of(Method::GET, "/apis/coordination.k8s.io/v1");
        assert_eq!((a.resource, a.verb.as_str()), (None, "get"));
        let a = of(Method::GET, "/healthz");
        assert_eq!((a.resource, a.path.as_str()), (None, "/healthz"));
        for sub in ["exec", "attach", "portforward"] {
            let a = of(
                Method::GET,
                &format!("/api/v1/namespaces/ns1/pods/web/{sub}?command=true"),
            );
            assert_eq!(
                (a.verb.as_str(), a.subresource.as_deref()),
                ("create", Some(sub))
            );
        }
        let a = of(Method::GET, "/api/v1/namespaces/ns1/pods/web/log");
        assert_eq!(a.verb, "get");
    }

    #[test]
    fn refusals_read_as_kubernetes_ones() {
        let a = of(Method::GET, "/api/v1/namespaces/default/pods");
        let e = a.forbidden("alice");
        assert_eq!(e.code(), 403);
        assert_eq!(
            e.0.message.as_deref(),
            Some(
                r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
            )
        );
        assert_eq!(
            e.0.details.as_ref().and_then(|d| d.kind.as_deref()),
            Some("pods")
        );
        let a = of(
            Method::GET,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
        );
        assert_eq!(
            a.forbidden("bob").0.message.as_deref(),
            Some(
                r#"clusterroles.rbac.authorization.k8s.io "admin" is forbidden: User "bob" cannot get resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#
            )
        );
        assert_eq!(
            of(Method::GET, "/metrics")
                .forbidden("bob")
                .0
                .message
                .as_deref(),
            Some(r#"forbidden: User "bob" cannot get path "/metrics""#)
        );
    }
}
