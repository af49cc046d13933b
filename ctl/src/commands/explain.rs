//! `ctl explain TYPE[.FIELD...]`: a kind's or a field's schema, read from
//! the server's OpenAPI v3 document of the kind's group-version as
//! kubectl 1.32 reads it, and printed in kubectl's plaintext layout
//! (KIND, VERSION, FIELD, DESCRIPTION, FIELDS).

use anyhow::{anyhow, Context, Result};
use serde_json::{Map, Value};

use crate::{emit, resources, GlobalArgs};

/// Flags of `explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `TYPE` or `TYPE.field.subfield` (`pods.spec.containers`).
    pub path: String,
    /// Print every field below, nested, names and types only.
    #[arg(long)]
    pub recursive: bool,
    /// The group/version to explain (`apps/v1`); default: the kind's own.
    #[arg(long)]
    pub api_version: Option<String>,
}

/// How deep `--recursive` goes: the schemas are recursive in places
/// (JSONSchemaProps in Kubernetes; none here yet), so a bound keeps the
/// output finite whatever the document holds.
const MAX_DEPTH: usize = 15;

/// Runs `explain`.
///
/// # Errors
///
/// An unknown type or field, or a document without the kind's schema.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let mut parts = args.path.split('.');
    let kind_name = parts.next().unwrap_or_default();
    let fields: Vec<&str> = parts.filter(|p| !p.is_empty()).collect();
    let resource = resources::resource(kind_name)?;
    let (group, version) = match args.api_version.as_deref() {
        Some(gv) => match gv.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), gv.to_string()),
        },
        None => (resource.group.to_string(), resource.version.to_string()),
    };
    let document_path = if group.is_empty() {
        format!("/openapi/v3/api/{version}")
    } else {
        format!("/openapi/v3/apis/{group}/{version}")
    };
    let ctl = global.connect().await?;
    let document = ctl
        .get(&document_path)
        .await
        .with_context(|| format!("reading the OpenAPI document {document_path}"))?;
    let schemas = document
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("{document_path} has no schemas"))?;
    let (_, root) = find_kind(schemas, &group, &version, resource.kind).ok_or_else(|| {
        anyhow!(
            "the server's schema has no {} in {}",
            resource.kind,
            if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            }
        )
    })?;
    let mut text = String::new();
    text.push_str(&format!("KIND:       {}\n", resource.kind));
    if !group.is_empty() {
        text.push_str(&format!("GROUP:      {group}\n"));
    }
    text.push_str(&format!("VERSION:    {version}\n\n"));
    let mut schema = resolve(schemas, root);
    let mut field_schema = None;
    let mut walked = Vec::new();
    for field in &fields {
        let property = schema
            .get("properties")
            .and_then(|p| p.get(*field))
            .ok_or_else(|| {
                anyhow!(
                    "field \"{field}\" does not exist in {}",
                    std::iter::once(kind_name)
                        .chain(walked.iter().copied())
                        .collect::<Vec<_>>()
                        .join(".")
                )
            })?;
        walked.push(*field);
        field_schema = Some(property);
        schema = element(schemas, property);
    }
    if let (Some(last), Some(property)) = (fields.last(), field_schema) {
        text.push_str(&format!("FIELD: {last} <{}>\n\n", type_name(property)));
        text.push_str("DESCRIPTION:\n");
        push_description(&mut text, description(schemas, property), 4);
    } else {
        text.push_str("DESCRIPTION:\n");
        push_description(&mut text, description(schemas, root), 4);
    }
    if schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some()
    {
        text.push_str("\nFIELDS:\n");
        push_fields(&mut text, schemas, schema, 1, args.recursive, 0);
    }
    emit(&text);
    Ok(())
}

/// The schema whose `x-kubernetes-group-version-kind` names the kind.
fn find_kind<'a>(
    schemas: &'a Map<String, Value>,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<(&'a String, &'a Value)> {
    schemas.iter().find(|(_, schema)| {
        schema
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .is_some_and(|gvks| {
                gvks.iter().any(|gvk| {
                    gvk["group"] == group && gvk["version"] == version && gvk["kind"] == kind
                })
            })
    })
}

/// The definition name a schema's `$ref` (direct or in `allOf`) points at
/// (`io.k8s.api.core.v1.Container`).
fn reference_name(schema: &Value) -> Option<&str> {
    let reference = schema.get("$ref").and_then(Value::as_str).or_else(|| {
        schema
            .get("allOf")?
            .as_array()?
            .iter()
            .find_map(|s| s.get("$ref")?.as_str())
    })?;
    reference.rsplit('/').next()
}

/// The definition a `$ref` (direct or in `allOf`) names, else the schema.
fn resolve<'a>(schemas: &'a Map<String, Value>, schema: &'a Value) -> &'a Value {
    reference_name(schema)
        .and_then(|name| schemas.get(name))
        .unwrap_or(schema)
}

/// What a field's value is made of: its items' schema for a list, its
/// definition for a reference.
fn element<'a>(schemas: &'a Map<String, Value>, property: &'a Value) -> &'a Value {
    let resolved = resolve(schemas, property);
    match resolved.get("items") {
        Some(items) => resolve(schemas, items),
        None => resolved,
    }
}

/// kubectl's type notation: `<string>`, `<[]Container>`,
/// `<map[string]string>`, `<Object>`.
fn type_name(property: &Value) -> String {
    let named = |schema: &Value| -> Option<String> {
        let full = reference_name(schema)?;
        let short = full.rsplit('.').next()?;
        // IntOrString and Quantity are strings on the wire: kubectl names them.
        Some(short.to_string())
    };
    if let Some(name) = named(property) {
        return name;
    }
    match property.get("type").and_then(Value::as_str) {
        Some("array") => {
            let items = property.get("items").unwrap_or(&Value::Null);
            format!("[]{}", type_name(items))
        }
        Some("object") => match property.get("additionalProperties") {
            Some(values) if values.is_object() => {
                format!("map[string]{}", type_name(values))
            }
            _ => "Object".to_string(),
        },
        Some(other) => other.to_string(),
        None => "Object".to_string(),
    }
}

fn description<'a>(schemas: &'a Map<String, Value>, schema: &'a Value) -> &'a str {
    schema
        .get("description")
        .and_then(Value::as_str)
        .or_else(|| {
            resolve(schemas, schema)
                .get("description")
                .and_then(Value::as_str)
        })
        .unwrap_or("<empty>")
}

fn push_description(text: &mut String, description: &str, indent: usize) {
    for line in wrap(description, 80 - indent) {
        text.push_str(&" ".repeat(indent));
        text.push_str(&line);
        text.push('\n');
    }
}

/// Words of `text` in lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

fn push_fields(
    text: &mut String,
    schemas: &Map<String, Value>,
    schema: &Value,
    level: usize,
    recursive: bool,
    depth: usize,
) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut names: Vec<&String> = properties.keys().collect();
    names.sort();
    for name in names {
        let property = &properties[name];
        let indent = "  ".repeat(level);
        let marker = if required.contains(&name.as_str()) {
            " -required-"
        } else {
            ""
        };
        text.push_str(&format!(
            "{indent}{name}\t<{}>{marker}\n",
            type_name(property)
        ));
        if recursive {
            if depth < MAX_DEPTH {
                push_fields(
                    text,
                    schemas,
                    element(schemas, property),
                    level + 1,
                    true,
                    depth + 1,
                );
            }
        } else {
            push_description(text, description(schemas, property), indent.len() + 2);
            text.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas() -> Map<String, Value> {
        json!({
            "io.k8s.api.core.v1.Pod": {"description": "A pod.", "properties": {
                "spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}], "description": "Its spec."}},
                "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Pod"}]},
            "io.k8s.api.core.v1.PodSpec": {"required": ["containers"], "properties": {
                "containers": {"type": "array", "items": {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}, "description": "The containers."},
                "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "io.k8s.api.core.v1.Container": {"properties": {"name": {"type": "string"}}}
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    #[test]
    fn types_read_as_kubectl_prints_them() {
        let s = schemas();
        let spec = &s["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
        assert_eq!(type_name(spec), "PodSpec");
        let ps = &s["io.k8s.api.core.v1.PodSpec"]["properties"];
        assert_eq!(type_name(&ps["containers"]), "[]Container");
        assert_eq!(type_name(&ps["nodeSelector"]), "map[string]string");
        assert!(find_kind(&s, "", "v1", "Pod").is_some());
        assert!(find_kind(&s, "apps", "v1", "Pod").is_none());
    }

    #[test]
    fn fields_list_names_types_and_required() {
        let s = schemas();
        let mut text = String::new();
        push_fields(&mut text, &s, &s["io.k8s.api.core.v1.PodSpec"], 1, true, 0);
        assert_eq!(
            text,
            "  containers\t<[]Container> -required-\n    name\t<string>\n  nodeSelector\t<map[string]string>\n"
        );
    }
}
