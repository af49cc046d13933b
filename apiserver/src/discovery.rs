//! Discovery: `/api`, `/api/v1`, `/api/v1beta1`, `/apis`,
//! `/apis/{group}[/{version}]`, `/version`, so that a stock kubectl finds
//! its way. Only the unaggregated form is served (kubectl asks for the
//! aggregated `apidiscovery.k8s.io` form first and falls back to this).

use std::sync::OnceLock;

use api_types::kinds::{self, ResourceKind};
use axum::response::Response;
use serde_json::{json, Value};

use crate::http::json_response;

/// The Kubernetes release whose API this server speaks (for `/version`).
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "32");

/// `GET /version`.
pub fn version() -> Value {
    let (major, minor) = KUBERNETES_VERSION;
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{major}.{minor}.0-mini-k8s.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            { "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }
        ],
    })
}

/// One named group as `/apis` and `/apis/{group}` describe it.
fn api_group(gv: &kinds::GroupVersion) -> Value {
    let version = json!({
        "groupVersion": format!("{}/{}", gv.group, gv.version),
        "version": gv.version,
    });
    json!({ "name": gv.group, "versions": [version], "preferredVersion": version })
}

/// `authorization.k8s.io/v1`: the access reviews, served by
/// [`crate::authz::review`] rather than a store.
const AUTHORIZATION: kinds::GroupVersion = kinds::GroupVersion {
    group: "authorization.k8s.io",
    version: "v1",
};

/// Every named group: those of `kinds::ALL`, then the reviews'.
fn served_groups() -> Vec<kinds::GroupVersion> {
    let mut groups = kinds::named_groups();
    groups.push(AUTHORIZATION);
    groups
}

/// `GET /apis`: every named group of `kinds::ALL`, and
/// `authorization.k8s.io`.
pub fn api_groups() -> Value {
    let groups: Vec<Value> = served_groups().iter().map(api_group).collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `GET /apis/{group}`, or `None` for a group not served.
pub fn api_group_of(group: &str) -> Option<Value> {
    let gv = served_groups().into_iter().find(|gv| gv.group == group)?;
    let mut value = api_group(&gv);
    value["kind"] = "APIGroup".into();
    value["apiVersion"] = "v1".into();
    Some(value)
}

/// `GET /apis/{group}/{version}`, or `None` for a group-version not
/// served.
pub fn group_resources(group: &str, version: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let resources = resources_of(group, version);
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"), "resources": resources,
    }))
}

/// The discovery entries of a group-version's resources and subresources.
fn resources_of(group: &str, version: &str) -> Vec<Value> {
    let mut resources = Vec::new();
    if (group, version) == (AUTHORIZATION.group, AUTHORIZATION.version) {
        for (plural, kind) in crate::authz::review::RESOURCES {
            resources.push(json!({
                "name": plural, "singularName": "", "namespaced": false,
                "kind": kind, "verbs": ["create"],
            }));
        }
    }
    for resource in kinds::in_group(group, version) {
        resources.push(entry(resource, resource.plural));
        for sub in resource.subresources {
            resources.push(subresource(resource, sub));
        }
    }
    resources
}

/// Every verb a resource may serve (discovery lists them; `admin` gets them
/// all on roles and bindings).
pub(crate) const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// What a resource serves: every verb, but get and list for the
/// computed `componentstatuses` (kubectl reads this before a `get -w`).
fn verbs(resource: &ResourceKind) -> &'static [&'static str] {
    if resource.kind == api_types::kinds::COMPONENT_STATUSES.kind {
        &["get", "list"]
    } else {
        &ALL_VERBS
    }
}

fn entry(resource: &ResourceKind, name: &str) -> Value {
    let categories: &[&str] = match resource.kind {
        "Pod" | "Service" | "ReplicationController" | "DaemonSet" => &["all"],
        _ => &[],
    };
    json!({
        "name": name,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": verbs(resource),
        "shortNames": resource.short_names,
        "categories": categories,
    })
}

fn subresource(resource: &ResourceKind, sub: &str) -> Value {
    let name = format!("{}/{sub}", resource.plural);
    match sub {
        "binding" => {
            json!({ "name": name, "singularName": "", "namespaced": true, "kind": "Binding", "verbs": ["create"] })
        }
        // kubectl drain looks for exactly this entry (group and version
        // set) before it posts evictions instead of deleting.
        "eviction" => json!({
            "name": name, "singularName": "", "namespaced": true, "group": "policy",
            "version": "v1", "kind": "Eviction", "verbs": ["create"],
        }),
        "scale" => json!({
            "name": name, "singularName": "", "namespaced": true, "group": "autoscaling",
            "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
        }),
        _ => json!({
            "name": name, "singularName": "", "namespaced": resource.namespaced,
            "kind": resource.kind, "verbs": ["get", "patch", "update"],
        }),
    }
}

/// `GET /api/v1`.
pub fn v1_resources() -> Value {
    let mut resources = resources_of("", "v1");
    resources.push(json!({
        "name": "bindings", "singularName": "binding", "namespaced": true,
        "kind": "Binding", "verbs": ["create"],
    }));
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": resources })
}

/// `GET /api/v1beta1`: the 2014 names.
pub fn v1beta1_resources() -> Value {
    let resources: Vec<Value> = kinds::in_group("", "v1")
        .filter_map(|r| {
            r.v1beta1_plural.map(|plural| {
                let mut e = entry(r, plural);
                e["kind"] = r.v1beta1_kind.into();
                e
            })
        })
        .collect();
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1beta1", "resources": resources })
}

/// The 404 for a path the server does not serve, as a Status.
pub fn not_found(path: &str) -> Response {
    json_response(
        404,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("the server could not find the requested resource ({path})"),
            "reason": "NotFound", "details": {}, "code": 404,
        }),
    )
}

/// `GET /openapi/v3`: where each group-version's document is.
pub fn openapi_v3_root() -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({ "serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", openapi_hash()) }),
    );
    for gv in kinds::named_groups() {
        let path = format!("apis/{}/{}", gv.group, gv.version);
        paths.insert(
            path.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={}", openapi_hash()) }),
        );
    }
    json!({ "paths": paths })
}

/// A stable hash of the v1 document, so clients may cache it per release.
fn openapi_hash() -> String {
    format!("mini-k8s-{}", env!("CARGO_PKG_VERSION"))
}

/// `GET /openapi/v3/api/v1` (`group` `""`, `version` `v1`) and
/// `GET /openapi/v3/apis/{group}/{version}`: the encoded document, or
/// `None` when the group-version is not served.
///
/// Each document holds the operations of its resources, with the
/// extensions kubectl reads (`x-kubernetes-group-version-kind`,
/// `x-kubernetes-action`) and the `fieldValidation` parameter, from which
/// kubectl learns that the server validates fields itself; and in
/// `components.schemas` every kind's schema (`crate::openapi`), with the
/// group-version-kind and strategic merge extensions kubectl's `explain`
/// and `apply` read. The PATCH operations list the JSON and merge patch
/// bodies; kubectl computes strategic patches from the schemas or its
/// built-in types, which the server accepts all the same.
///
/// The documents are built and encoded once per process: each carries
/// every schema, and none changes while the process runs, so a request
/// costs neither a copy of the schemas nor an encoding.
pub fn openapi_v3_encoded(group: &str, version: &str) -> Option<&'static [u8]> {
    static DOCUMENTS: OnceLock<Vec<(&'static str, &'static str, Vec<u8>)>> = OnceLock::new();
    DOCUMENTS
        .get_or_init(|| {
            std::iter::once(("", "v1"))
                .chain(
                    kinds::named_groups()
                        .into_iter()
                        .map(|gv| (gv.group, gv.version)),
                )
                .filter_map(|(g, v)| {
                    let document = openapi_v3(g, v)?;
                    Some((g, v, serde_json::to_vec(&document).ok()?))
                })
                .collect()
        })
        .iter()
        .find(|(g, v, _)| *g == group && *v == version)
        .map(|(_, _, bytes)| bytes.as_slice())
}

/// The OpenAPI v3 document of one group-version (see [`openapi_v3_encoded`]).
fn openapi_v3(group: &str, version: &str) -> Option<Value> {
    kinds::in_group(group, version).next()?;
    let mut paths = serde_json::Map::new();
    let parameter = |name: &str| json!({ "name": name, "in": "query", "schema": { "type": "string", "uniqueItems": true } });
    let body = |types: &[&str]| {
        let content: serde_json::Map<String, Value> = types
            .iter()
            .map(|t| ((*t).to_string(), json!({ "schema": { "type": "object" } })))
            .collect();
        json!({ "content": content, "required": true })
    };
    let responses = json!({ "200": { "description": "OK" } });
    for resource in kinds::in_group(group, version) {
        let gvk =
            json!({ "group": resource.group, "version": resource.version, "kind": resource.kind });
        let op = |action: &str, request: Option<Value>| {
            let mut op = json!({
                "operationId": format!("{action}{}", resource.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [parameter("dryRun"), parameter("fieldValidation"), parameter("fieldManager")],
                "responses": responses,
            });
            if let Some(request) = request {
                op["requestBody"] = request;
            }
            op
        };
        let base = resource.group_version_path();
        let collection = if resource.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", resource.plural)
        } else {
            format!("{base}/{}", resource.plural)
        };
        paths.insert(
            collection.clone(),
            json!({ "post": op("post", Some(body(&["application/json", "application/yaml"]))) }),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "put": op("put", Some(body(&["application/json", "application/yaml"]))),
                "patch": op("patch", Some(body(&["application/json-patch+json", "application/merge-patch+json"]))),
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": format!("v{}.{}.0", KUBERNETES_VERSION.0, KUBERNETES_VERSION.1) },
        "paths": paths,
        "components": { "schemas": crate::openapi::schemas(crate::openapi::Flavor::V3) },
    }))
}
