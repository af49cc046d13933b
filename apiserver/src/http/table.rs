//! `meta.k8s.io/v1` Table responses, for `kubectl get`.

use api_types::kinds::ResourceKind;
use api_types::table::{self, Cell};
use serde_json::{json, Value};

use super::Params;

/// The Table of `items`. Rows carry the whole object with
/// `includeObject=Object`, else only its metadata (Kubernetes' default).
pub fn table_for(
    resource: &ResourceKind,
    items: &[Value],
    resource_version: &str,
    params: &Params,
) -> Value {
    let now = jiff::Timestamp::now();
    let include = params
        .get("includeObject")
        .map_or("PartialObjectMetadata", String::as_str);
    let columns: Vec<Value> = table::columns(resource)
        .into_iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": if c.name == "Name" { "name" } else { "" },
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let cells: Vec<Value> = table::row(resource, item, now)
                .into_iter()
                .map(|cell| match cell {
                    Cell::Text(s) => Value::String(s),
                    Cell::Int(i) => json!(i),
                })
                .collect();
            let object = match include {
                "None" => Value::Null,
                "Object" => {
                    let mut object = item.clone();
                    object["kind"] = resource.kind.into();
                    object["apiVersion"] = resource.api_version().into();
                    object
                }
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            };
            json!({ "cells": cells, "object": object })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": resource_version },
        "columnDefinitions": columns,
        "rows": rows,
    })
}
