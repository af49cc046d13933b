//! The object schemas of the OpenAPI documents (`/openapi/v2` and the
//! `components.schemas` of each `/openapi/v3` group-version), generated
//! from the `k8s-openapi` types through their `schemars` implementations
//! rather than written by hand, and named as Kubernetes names them
//! (`io.k8s.api.core.v1.Pod`).
//!
//! Two things the types do not carry are added here: the
//! `x-kubernetes-group-version-kind` of every kind served (how kubectl
//! finds a kind's schema for `explain`), and the strategic merge patch
//! extensions of its merging lists, taken from the same table the server
//! patches with (`api_types::patch::merging_lists`), so what kubectl
//! computes from the schema and what the server applies cannot disagree.
//!
//! Built once per process, on first use.

use std::sync::OnceLock;

use api_types::kinds::{self, ResourceKind};

use crate::discovery::KUBERNETES_VERSION;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// Which document a schema set is for: the two differ in where
/// definitions live and how a description beside a `$ref` is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Swagger 2.0 (`#/definitions/`).
    V2,
    /// OpenAPI 3.0 (`#/components/schemas/`).
    V3,
}

/// The schema name of each kind served, registered with `generator`.
fn register(generator: &mut SchemaGenerator, kind: &str) -> Option<String> {
    use k8s_openapi::api::{apps, coordination, core, networking, rbac};
    fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> Option<String> {
        generator.subschema_for::<T>();
        Some(T::schema_name().into_owned())
    }
    match kind {
        "Pod" => add::<core::v1::Pod>(generator),
        "Service" => add::<core::v1::Service>(generator),
        "ReplicationController" => add::<core::v1::ReplicationController>(generator),
        "Node" => add::<core::v1::Node>(generator),
        "Endpoints" => add::<core::v1::Endpoints>(generator),
        "Namespace" => add::<core::v1::Namespace>(generator),
        "Event" => add::<core::v1::Event>(generator),
        "ConfigMap" => add::<core::v1::ConfigMap>(generator),
        "Secret" => add::<core::v1::Secret>(generator),
        "ComponentStatus" => add::<core::v1::ComponentStatus>(generator),
        "Lease" => add::<coordination::v1::Lease>(generator),
        "Role" => add::<rbac::v1::Role>(generator),
        "RoleBinding" => add::<rbac::v1::RoleBinding>(generator),
        "ClusterRole" => add::<rbac::v1::ClusterRole>(generator),
        "ClusterRoleBinding" => add::<rbac::v1::ClusterRoleBinding>(generator),
        "Ingress" => add::<networking::v1::Ingress>(generator),
        "IngressClass" => add::<networking::v1::IngressClass>(generator),
        "DaemonSet" => add::<apps::v1::DaemonSet>(generator),
        _ => None,
    }
}

/// The common types every document refers to besides the kinds.
fn register_common(generator: &mut SchemaGenerator) {
    use k8s_openapi::api::autoscaling;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::WatchEvent<serde_json::Value>>();
    generator.subschema_for::<autoscaling::v1::Scale>();
}

fn build(flavor: Flavor) -> Map<String, Value> {
    let settings = match flavor {
        Flavor::V3 => SchemaSettings::openapi3(),
        Flavor::V2 => {
            let mut settings = SchemaSettings::openapi3();
            settings.definitions_path = "/definitions".into();
            settings
        }
    };
    let mut generator = settings.into_generator();
    let mut kinds_by_name: Vec<(String, &'static ResourceKind)> = Vec::new();
    for resource in kinds::ALL.iter() {
        if let Some(name) = register(&mut generator, resource.kind) {
            kinds_by_name.push((name, resource));
        }
    }
    register_common(&mut generator);
    let mut definitions: Map<String, Value> =
        generator.take_definitions(true).into_iter().collect();
    let prefix = match flavor {
        Flavor::V2 => "#/definitions/",
        Flavor::V3 => "#/components/schemas/",
    };
    for (name, resource) in &kinds_by_name {
        if let Some(schema) = definitions.get_mut(name).and_then(Value::as_object_mut) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{ "group": resource.group, "version": resource.version, "kind": resource.kind }]),
            );
        }
        for list in api_types::patch::merging_lists(resource.kind) {
            mark_merging_list(&mut definitions, name, &list.path, &list, prefix);
        }
    }
    for schema in definitions.values_mut() {
        tidy(schema, flavor);
    }
    definitions
}

/// The definition a schema refers to (directly or through `allOf`).
fn referenced<'a>(schema: &'a Value, prefix: &str) -> Option<&'a str> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference.strip_prefix(prefix);
    }
    schema
        .get("allOf")?
        .as_array()?
        .iter()
        .find_map(|s| s.get("$ref")?.as_str()?.strip_prefix(prefix))
}

/// Adds the strategic merge extensions to the property at `path` below
/// definition `name`, following `$ref`s and list items.
fn mark_merging_list(
    definitions: &mut Map<String, Value>,
    name: &str,
    path: &[&str],
    list: &api_types::patch::MergingList,
    prefix: &str,
) {
    let Some((field, rest)) = path.split_first() else {
        return;
    };
    let Some(property) = definitions
        .get(name)
        .and_then(|d| d.get("properties"))
        .and_then(|p| p.get(*field))
        .cloned()
    else {
        return;
    };
    if rest.is_empty() {
        let Some(target) = definitions
            .get_mut(name)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        target.insert("x-kubernetes-patch-strategy".into(), "merge".into());
        match list.merge_key {
            Some(key) => {
                target.insert("x-kubernetes-patch-merge-key".into(), key.into());
                target.insert("x-kubernetes-list-type".into(), "map".into());
                target.insert("x-kubernetes-list-map-keys".into(), json!(list.map_keys));
            }
            None => {
                target.insert("x-kubernetes-list-type".into(), "set".into());
            }
        }
        return;
    }
    // Below a list of maps the path continues in its elements.
    let next = property
        .get("items")
        .and_then(|items| referenced(items, prefix))
        .or_else(|| referenced(&property, prefix))
        .map(str::to_string);
    if let Some(next) = next {
        mark_merging_list(definitions, &next, rest, list, prefix);
    }
}

/// Makes generated schemas read as Kubernetes' do: a description beside a
/// `$ref` moves into `allOf` form (OpenAPI ignores siblings of `$ref`),
/// and schemars' `$schema`/`title` noise goes.
fn tidy(schema: &mut Value, flavor: Flavor) {
    match schema {
        Value::Object(map) => {
            map.remove("$schema");
            if map.contains_key("$ref") && map.len() > 1 {
                if let Some(reference) = map.remove("$ref") {
                    map.insert("allOf".into(), json!([{ "$ref": reference }]));
                }
            }
            if flavor == Flavor::V2 {
                // Swagger 2.0 has no `nullable`.
                map.remove("nullable");
            }
            for value in map.values_mut() {
                tidy(value, flavor);
            }
        }
        Value::Array(items) => {
            for item in items {
                tidy(item, flavor);
            }
        }
        _ => {}
    }
}

/// The schemas of every kind served and what they refer to, for `flavor`.
pub fn schemas(flavor: Flavor) -> &'static Map<String, Value> {
    static V2: OnceLock<Map<String, Value>> = OnceLock::new();
    static V3: OnceLock<Map<String, Value>> = OnceLock::new();
    match flavor {
        Flavor::V2 => V2.get_or_init(|| build(Flavor::V2)),
        Flavor::V3 => V3.get_or_init(|| build(Flavor::V3)),
    }
}

/// `GET /openapi/v2`: the Swagger 2.0 document as JSON. Kubernetes also
/// serves it as gnostic's protobuf, which is all client-go's v2 fetcher
/// (`kubectl explain --output=plaintext-openapiv2`) asks for; that form is
/// not built here, so such a request is told so (406) instead of getting
/// JSON it cannot parse. kubectl's default `explain` and its validation
/// read v3.
pub async fn v2(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json_ok = accept.is_empty()
        || accept.contains("json")
        || accept.contains("*/*")
        || !accept.contains("protobuf");
    if !json_ok {
        let status = api_types::status::failure(
            api_types::status::Reason::NotAcceptable,
            "/openapi/v2 is served as application/json only; use /openapi/v3",
        );
        return (axum::http::StatusCode::NOT_ACCEPTABLE, axum::Json(status)).into_response();
    }
    axum::Json(v2_document()).into_response()
}

/// The Swagger 2.0 document, built once.
pub fn v2_document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        json!({
            "swagger": "2.0",
            "info": {
                "title": "Kubernetes",
                "version": format!("v{}.{}.0", KUBERNETES_VERSION.0, KUBERNETES_VERSION.1),
            },
            "paths": {},
            "definitions": schemas(Flavor::V2),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_carry_their_group_version_kind_and_merge_keys() {
        let v3 = schemas(Flavor::V3);
        let pod = &v3["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        let containers = &v3["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let ports = &v3["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        let ds = &v3["io.k8s.api.apps.v1.DaemonSet"];
        assert_eq!(ds["x-kubernetes-group-version-kind"][0]["group"], "apps");
        let finalizers =
            &v3["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"];
        assert_eq!(finalizers["x-kubernetes-list-type"], "set");
    }

    #[test]
    fn references_point_inside_each_document() {
        let v2 = serde_json::to_string(schemas(Flavor::V2)).unwrap_or_default();
        assert!(v2.contains("\"#/definitions/io.k8s.api.core.v1.PodSpec\""));
        assert!(!v2.contains("#/components/schemas/"));
        let v3 = serde_json::to_string(schemas(Flavor::V3)).unwrap_or_default();
        assert!(v3.contains("\"#/components/schemas/io.k8s.api.core.v1.PodSpec\""));
        // A description beside a reference is in allOf form.
        let spec = &schemas(Flavor::V3)["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
        assert!(spec.get("$ref").is_none(), "{spec}");
        assert!(spec["allOf"][0]["$ref"].is_string(), "{spec}");
    }
}
