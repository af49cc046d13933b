//! Server-side apply: the structured merge of an applied configuration into
//! the live object, and the `metadata.managedFields` that record which field
//! manager owns which fields (structured-merge-diff's semantics, in its
//! `FieldsV1` format).
//!
//! Lists follow the same table strategic merge patch uses (module `schema`),
//! so the two cannot disagree: a `patchStrategy: merge` list of maps is an
//! associative list keyed by its merge key (and discriminators, defaulted), a
//! merging list of scalars is a set, every other list is atomic. Maps merge
//! key by key. Everything here is pure: the caller supplies the time and
//! stores the result.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::schema::{for_kind, ListStrategy, Schema};

/// A set of field paths in `FieldsV1`'s shape: each node is named by its
/// path element (`f:name`, `k:{"name":"c"}`, `v:"x"`), and `own` says the
/// path itself is in the set (the `"."` entry when the node has children).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    own: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Whether the set holds no path.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.own && self.children.values().all(FieldSet::is_empty)
    }

    /// Decodes a `fieldsV1` value; `None` when it is not one.
    #[must_use]
    pub fn from_fields_v1(value: &Value) -> Option<Self> {
        let map = value.as_object()?;
        let mut set = FieldSet {
            own: map.is_empty(),
            children: BTreeMap::new(),
        };
        for (key, child) in map {
            if key == "." {
                set.own = true;
            } else if key.starts_with("f:") || key.starts_with("k:") || key.starts_with("v:") {
                set.children
                    .insert(key.clone(), FieldSet::from_fields_v1(child)?);
            } else {
                return None;
            }
        }
        Some(set)
    }

    /// The `fieldsV1` encoding.
    #[must_use]
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.own && !self.children.is_empty() {
            map.insert(".".to_string(), json!({}));
        }
        for (key, child) in &self.children {
            if !child.is_empty() {
                map.insert(key.clone(), child.to_fields_v1());
            }
        }
        Value::Object(map)
    }

    /// Every path in the set, each as its elements.
    #[must_use]
    pub fn paths(&self) -> Vec<Vec<String>> {
        fn walk(set: &FieldSet, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            if set.own && !prefix.is_empty() {
                out.push(prefix.clone());
            }
            for (key, child) in &set.children {
                prefix.push(key.clone());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// Whether `path` is in the set.
    #[must_use]
    pub fn contains(&self, path: &[String]) -> bool {
        let mut node = self;
        for element in path {
            match node.children.get(element) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.own
    }

    /// Adds `path`.
    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.own = true;
    }

    /// Removes `path` (not the paths below it).
    pub fn remove(&mut self, path: &[String]) {
        fn walk(node: &mut FieldSet, path: &[String]) {
            match path.split_first() {
                None => node.own = false,
                Some((first, rest)) => {
                    if let Some(child) = node.children.get_mut(first) {
                        walk(child, rest);
                        if child.is_empty() {
                            node.children.remove(first);
                        }
                    }
                }
            }
        }
        walk(self, path);
    }
}

/// The fields always left out of a field set: identity and bookkeeping the
/// server owns, as Kubernetes strips them, and `status`, which a write of the
/// main resource does not set.
fn ignored(path: &[String]) -> bool {
    match path {
        [first] => matches!(first.as_str(), "f:apiVersion" | "f:kind"),
        [first, ..] if first == "f:status" => true,
        [first, second, ..] if first == "f:metadata" => matches!(
            second.as_str(),
            "f:name"
                | "f:namespace"
                | "f:uid"
                | "f:resourceVersion"
                | "f:generation"
                | "f:creationTimestamp"
                | "f:deletionTimestamp"
                | "f:deletionGracePeriodSeconds"
                | "f:selfLink"
                | "f:managedFields"
        ),
        _ => false,
    }
}

/// How the elements of the list at a field are told apart.
enum ListKind {
    Atomic,
    Set,
    Map {
        field: &'static str,
        discriminators: &'static [(&'static str, &'static str)],
    },
}

fn list_kind(schema: Option<&'static Schema>, name: &str) -> (ListKind, Option<&'static Schema>) {
    let Some(field) = schema.and_then(|s| s.field(name)) else {
        return (ListKind::Atomic, None);
    };
    let kind = match &field.list {
        ListStrategy::Replace => ListKind::Atomic,
        ListStrategy::MergeSet => ListKind::Set,
        ListStrategy::MergeBy(key) => ListKind::Map {
            field: key.field,
            discriminators: key.discriminators,
        },
    };
    (kind, field.schema)
}

/// The `k:` element naming a list element by its keys (discriminators
/// filled with their defaults, so an applied port without `protocol` is the
/// live port with `TCP`); `None` for an element without its key.
fn element_key(
    element: &Value,
    field: &str,
    discriminators: &[(&'static str, &'static str)],
) -> Option<String> {
    let object = element.as_object()?;
    let mut key = Map::new();
    key.insert(field.to_string(), object.get(field)?.clone());
    for (name, default) in discriminators {
        let value = object
            .get(*name)
            .cloned()
            .unwrap_or_else(|| Value::String((*default).to_string()));
        key.insert((*name).to_string(), value);
    }
    Some(format!("k:{}", Value::Object(key)))
}

/// The field set of `value`, an object of kind `kind`: every scalar, atomic
/// list, empty map, set element and associative list element.
#[must_use]
pub fn field_set(kind: &str, value: &Value) -> FieldSet {
    fn walk_object(
        object: &Map<String, Value>,
        schema: Option<&'static Schema>,
        path: &mut Vec<String>,
        out: &mut FieldSet,
    ) {
        for (name, child) in object {
            path.push(format!("f:{name}"));
            if !ignored(path) {
                let (list, below) = list_kind(schema, name);
                walk_value(child, &list, below, path, out);
            }
            path.pop();
        }
    }
    fn walk_value(
        value: &Value,
        list: &ListKind,
        schema: Option<&'static Schema>,
        path: &mut Vec<String>,
        out: &mut FieldSet,
    ) {
        match value {
            Value::Object(object) if !object.is_empty() => walk_object(object, schema, path, out),
            Value::Array(items) => match list {
                ListKind::Atomic => out.insert(path),
                ListKind::Set => {
                    for item in items {
                        path.push(format!("v:{item}"));
                        out.insert(path);
                        path.pop();
                    }
                }
                ListKind::Map {
                    field,
                    discriminators,
                } => {
                    for item in items {
                        let Some(key) = element_key(item, field, discriminators) else {
                            continue;
                        };
                        path.push(key);
                        out.insert(path);
                        if let Some(object) = item.as_object() {
                            walk_object(object, schema, path, out);
                        }
                        path.pop();
                    }
                }
            },
            _ => out.insert(path),
        }
    }
    let mut out = FieldSet::default();
    if let Some(object) = value.as_object() {
        walk_object(object, for_kind(kind), &mut Vec::new(), &mut out);
    }
    out
}

/// The value at `path` in `value`, if it is there.
fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = value;
    for element in path {
        node = child(node, element)?;
    }
    Some(node)
}

fn child<'a>(node: &'a Value, element: &str) -> Option<&'a Value> {
    if let Some(name) = element.strip_prefix("f:") {
        return node.as_object()?.get(name);
    }
    let items = node.as_array()?;
    if let Some(item) = element.strip_prefix("v:") {
        let item: Value = serde_json::from_str(item).ok()?;
        return items.iter().find(|i| **i == item);
    }
    let key: Map<String, Value> = serde_json::from_str(element.strip_prefix("k:")?).ok()?;
    items.iter().find(|i| matches_key(i, &key))
}

/// Whether a list element has the key `key` (a missing discriminator
/// matches by its default, as [`element_key`] wrote it).
fn matches_key(item: &Value, key: &Map<String, Value>) -> bool {
    key.iter()
        .all(|(k, v)| item.get(k).map_or(v.is_string(), |found| found == v))
}

/// Whether the value at `path` differs between `a` and `b`: scalars and
/// atomic lists by value, a map or list element by presence (its fields
/// are paths of their own).
fn differs(a: &Value, b: &Value, path: &[String]) -> bool {
    match (value_at(a, path), value_at(b, path)) {
        (Some(Value::Object(x)), Some(Value::Object(y))) if !x.is_empty() && !y.is_empty() => false,
        (x, y) => x != y,
    }
}

/// Removes the value at `path` from `value` (nothing when it is not there).
fn remove_at(value: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for element in parent_path {
        let next = match element.strip_prefix("f:") {
            Some(name) => node.as_object_mut().and_then(|o| o.get_mut(name)),
            None => {
                let found = child(node, element).cloned();
                node.as_array_mut()
                    .and_then(|items| items.iter_mut().find(|i| Some(&**i) == found.as_ref()))
            }
        };
        match next {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(object) = node.as_object_mut() {
            object.remove(name);
        }
    } else if let Some(found) = child(node, last).cloned() {
        if let Some(items) = node.as_array_mut() {
            items.retain(|i| *i != found);
        }
    }
}

/// Merges the applied configuration `config` into `live`: maps key by key,
/// associative lists element by element (live order, new elements after),
/// sets by union, anything else replaced.
fn merge(live: &Value, config: &Value, list: &ListKind, schema: Option<&'static Schema>) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (name, value) in c {
                let (list, below) = list_kind(schema, name);
                let merged = match l.get(name) {
                    Some(old) => merge(old, value, &list, below),
                    None => value.clone(),
                };
                out.insert(name.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match list {
            ListKind::Atomic => config.clone(),
            ListKind::Set => {
                let mut out = l.clone();
                out.extend(c.iter().filter(|i| !l.contains(i)).cloned());
                Value::Array(out)
            }
            ListKind::Map {
                field,
                discriminators,
            } => {
                let key = |i: &Value| element_key(i, field, discriminators);
                let mut out: Vec<Value> = l
                    .iter()
                    .map(
                        |old| match c.iter().find(|n| key(n).is_some() && key(n) == key(old)) {
                            Some(new) => merge(old, new, &ListKind::Atomic, schema),
                            None => old.clone(),
                        },
                    )
                    .collect();
                for new in c {
                    if key(new).is_none() || !l.iter().any(|old| key(old) == key(new)) {
                        out.push(new.clone());
                    }
                }
                Value::Array(out)
            }
        },
        _ => config.clone(),
    }
}

/// One field a manager owns that an apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The owner.
    pub manager: String,
    /// The API version its entry was recorded with.
    pub api_version: String,
    /// The field, as Kubernetes prints it (`.spec.replicas`,
    /// `.spec.containers[name="c"].image`).
    pub field: String,
}

/// An apply refused because it would change fields others own (409).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", conflict_message(.0))]
pub struct Conflicts(pub Vec<Conflict>);

/// Kubernetes' wording: `Apply failed with 1 conflict: conflict with "m"
/// using v1: .spec.replicas`.
fn conflict_message(conflicts: &[Conflict]) -> String {
    let n = conflicts.len();
    let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for c in conflicts {
        match groups
            .iter_mut()
            .find(|(m, v, _)| *m == c.manager && *v == c.api_version)
        {
            Some(group) => group.2.push(&c.field),
            None => groups.push((&c.manager, &c.api_version, vec![&c.field])),
        }
    }
    let body = if n == 1 {
        format!(
            "conflict with {:?} using {}: {}",
            conflicts[0].manager, conflicts[0].api_version, conflicts[0].field
        )
    } else {
        groups
            .iter()
            .map(|(m, v, fields)| {
                let list: String = fields.iter().map(|f| format!("\n- {f}")).collect();
                format!("conflicts with {m:?} using {v}:{list}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "Apply failed with {n} conflict{}: {body}",
        if n == 1 { "" } else { "s" }
    )
}

/// A path as Kubernetes prints it.
#[must_use]
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(key) = element.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let fields: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", fields.join(",")));
        }
    }
    out
}

/// One `managedFields` entry, decoded.
#[derive(Clone, Debug)]
struct Entry {
    raw: Value,
    manager: String,
    operation: String,
    api_version: String,
    subresource: String,
    set: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    fn encode(&self) -> Value {
        let mut raw = self.raw.clone();
        raw["fieldsV1"] = self.set.to_fields_v1();
        raw
    }
}

fn decode_entries(managed: Option<&Value>) -> Vec<Entry> {
    let field = |e: &Value, name: &str| {
        e.get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    managed
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|raw| {
            Some(Entry {
                set: FieldSet::from_fields_v1(raw.get("fieldsV1")?)?,
                manager: field(raw, "manager"),
                operation: field(raw, "operation"),
                api_version: field(raw, "apiVersion"),
                subresource: field(raw, "subresource"),
                raw: raw.clone(),
            })
        })
        .collect()
}

fn new_entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
) -> Entry {
    let mut raw = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
    });
    if !subresource.is_empty() {
        raw["subresource"] = json!(subresource);
    }
    Entry {
        raw,
        manager: manager.to_string(),
        operation: operation.to_string(),
        api_version: api_version.to_string(),
        subresource: subresource.to_string(),
        set: FieldSet::default(),
    }
}

fn encode_entries(entries: &[Entry]) -> Value {
    Value::Array(
        entries
            .iter()
            .filter(|e| !e.set.is_empty())
            .map(Entry::encode)
            .collect(),
    )
}

/// Who writes and how, for [`apply`] and [`record_update`].
#[derive(Clone, Copy, Debug)]
pub struct Manager<'a> {
    /// The field manager (`kubectl`, `kubectl-client-side-apply`).
    pub name: &'a str,
    /// The API version the request used (`v1`).
    pub api_version: &'a str,
    /// The subresource written (`""` or `status`).
    pub subresource: &'a str,
    /// The time to record, RFC 3339 (`2026-12-06T09:30:00Z`).
    pub now: &'a str,
}

/// Applies `config` (an applied configuration of kind `kind`) to `live`
/// (`None`: the object does not exist yet) for `manager`, and returns the
/// object to store, its `metadata.managedFields` set.
///
/// The manager's `Apply` entry afterwards owns exactly the fields of
/// `config`; a field it owned before and leaves out now is removed from the
/// object unless another manager owns it too. A field `config` changes that
/// another manager owns is a conflict, unless `force`, which takes it.
///
/// # Errors
///
/// [`Conflicts`] when `config` changes fields others own and not `force`.
pub fn apply(
    kind: &str,
    live: Option<&Value>,
    config: &Value,
    manager: Manager<'_>,
    force: bool,
) -> Result<Value, Conflicts> {
    let empty = json!({});
    let live = live.unwrap_or(&empty);
    let mut config = config.clone();
    if let Some(object) = config.as_object_mut() {
        object.remove("status");
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
            meta.remove("resourceVersion");
        }
    }
    let schema = for_kind(kind);
    let mut merged = merge(live, &config, &ListKind::Atomic, schema);
    let applied = field_set(kind, &config);
    let mut entries = decode_entries(live.pointer("/metadata/managedFields"));
    let mut conflicts = Vec::new();
    for path in applied.paths() {
        if !differs(live, &merged, &path) {
            continue;
        }
        for entry in &mut entries {
            if entry.is(manager.name, "Apply", manager.subresource) || !entry.set.contains(&path) {
                continue;
            }
            if force {
                entry.set.remove(&path);
            } else {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    api_version: entry.api_version.clone(),
                    field: path_string(&path),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Conflicts(conflicts));
    }
    let position = entries
        .iter()
        .position(|e| e.is(manager.name, "Apply", manager.subresource));
    let previous = position.map(|i| entries[i].set.clone()).unwrap_or_default();
    // What the manager applied before and leaves out now goes, unless
    // someone else owns it; shallowest first: a list element goes whole
    // while its key fields still name it.
    let mut gone: Vec<Vec<String>> = previous
        .paths()
        .into_iter()
        .filter(|p| !applied.contains(p))
        .filter(|p| {
            !entries
                .iter()
                .any(|e| !e.is(manager.name, "Apply", manager.subresource) && e.set.contains(p))
        })
        .collect();
    gone.sort_by_key(Vec::len);
    for path in &gone {
        remove_at(&mut merged, path);
    }
    let mut entry = new_entry(
        manager.name,
        "Apply",
        manager.api_version,
        manager.subresource,
        manager.now,
    );
    entry.set = applied;
    match position {
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
    merged["metadata"]["managedFields"] = encode_entries(&entries);
    Ok(merged)
}

/// Records an ordinary write (create, update, patch) of `new` over `old`
/// (`None` for a create) by `manager` into `new`'s
/// `metadata.managedFields`, starting from `old`'s: the manager's `Update`
/// entry gains the fields the write changed, which no other manager owns
/// any longer; fields the write removed leave every entry.
pub fn record_update(kind: &str, old: Option<&Value>, new: &mut Value, manager: Manager<'_>) {
    let empty = json!({});
    let old = old.unwrap_or(&empty);
    let old_set = field_set(kind, old);
    let new_set = field_set(kind, new);
    let changed: Vec<Vec<String>> = new_set
        .paths()
        .into_iter()
        .filter(|p| !old_set.contains(p) || differs(old, new, p))
        .collect();
    let removed: Vec<Vec<String>> = old_set
        .paths()
        .into_iter()
        .filter(|p| !new_set.contains(p))
        .collect();
    let mut entries = decode_entries(old.pointer("/metadata/managedFields"));
    for entry in &mut entries {
        for path in changed.iter().chain(&removed) {
            entry.set.remove(path);
        }
    }
    if !changed.is_empty() {
        let position = entries
            .iter()
            .position(|e| e.is(manager.name, "Update", manager.subresource));
        let entry = match position {
            Some(i) => &mut entries[i],
            None => {
                entries.push(new_entry(
                    manager.name,
                    "Update",
                    manager.api_version,
                    manager.subresource,
                    manager.now,
                ));
                let last = entries.len() - 1;
                &mut entries[last]
            }
        };
        entry.raw["time"] = json!(manager.now);
        entry.raw["apiVersion"] = json!(manager.api_version);
        for path in &changed {
            entry.set.insert(path);
        }
    }
    let encoded = encode_entries(&entries);
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        if encoded.as_array().is_some_and(Vec::is_empty) {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_string(), encoded);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: &str = "2026-12-06T09:30:00Z";

    fn by(name: &str) -> Manager<'_> {
        Manager {
            name,
            api_version: "v1",
            subresource: "",
            now: NOW,
        }
    }

    fn rc(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "c", "image": image, "ports": [{"containerPort": 80}]}
            ]}}}
        })
    }

    /// [`apply`] to a replication controller.
    fn apply_rc(
        live: Option<&Value>,
        config: &Value,
        manager: Manager<'_>,
        force: bool,
    ) -> Result<Value, Conflicts> {
        apply("ReplicationController", live, config, manager, force)
    }

    fn fields_of(object: &Value, manager: &str) -> Value {
        object["metadata"]["managedFields"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["manager"] == manager))
            .map(|e| e["fieldsV1"].clone())
            .unwrap_or(Value::Null)
    }

    #[test]
    fn field_sets_are_kubernetes_fields_v1() {
        let set = field_set("ReplicationController", &rc(2, "nginx"));
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
                        "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}
                    }}
                }}}}
            })
        );
        let decoded = FieldSet::from_fields_v1(&set.to_fields_v1()).expect("decodes");
        assert_eq!(decoded, set);
        let sets = field_set(
            "Pod",
            &json!({"metadata": {"finalizers": ["a"]}, "spec": {"x": []}}),
        );
        assert_eq!(
            sets.to_fields_v1(),
            json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}}}, "f:spec": {"f:x": {}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&json!({"bad": {}})), None);
    }

    #[test]
    fn paths_print_as_kubernetes_does() {
        let cases: &[(&[&str], &str)] = &[
            (&["f:spec", "f:replicas"], ".spec.replicas"),
            (
                &["f:spec", "k:{\"name\":\"c\"}", "f:image"],
                ".spec[name=\"c\"].image",
            ),
            (
                &["f:metadata", "f:finalizers", "v:\"x\""],
                ".metadata.finalizers[=\"x\"]",
            ),
        ];
        for (path, want) in cases {
            let path: Vec<String> = path.iter().map(|s| (*s).to_string()).collect();
            assert_eq!(path_string(&path), *want);
        }
    }

    #[test]
    fn apply_creates_merges_and_conflicts() {
        struct Case {
            name: &'static str,
            live: Option<Value>,
            manager: &'static str,
            config: Value,
            force: bool,
            want: Result<Value, &'static str>,
        }
        let created = apply_rc(None, &rc(2, "nginx"), by("a"), false).expect("create");
        let cases = vec![
            Case {
                name: "same manager changes its own field",
                live: Some(created.clone()),
                manager: "a",
                config: rc(3, "nginx"),
                force: false,
                want: Ok(json!(3)),
            },
            Case {
                name: "another manager, same value: shared",
                live: Some(created.clone()),
                manager: "b",
                config: json!({"apiVersion": "v1", "kind": "ReplicationController",
                    "metadata": {"name": "web"}, "spec": {"replicas": 2}}),
                force: false,
                want: Ok(json!(2)),
            },
            Case {
                name: "another manager, other value: conflict",
                live: Some(created.clone()),
                manager: "b",
                config: json!({"metadata": {"name": "web"}, "spec": {"replicas": 5}}),
                force: false,
                want: Err(
                    "Apply failed with 1 conflict: conflict with \"a\" using v1: .spec.replicas",
                ),
            },
            Case {
                name: "forced: taken",
                live: Some(created.clone()),
                manager: "b",
                config: json!({"metadata": {"name": "web"}, "spec": {"replicas": 5}}),
                force: true,
                want: Ok(json!(5)),
            },
        ];
        for case in cases {
            let got = apply_rc(
                case.live.as_ref(),
                &case.config,
                by(case.manager),
                case.force,
            );
            match (got, case.want) {
                (Ok(v), Ok(replicas)) => {
                    assert_eq!(v["spec"]["replicas"], replicas, "{}", case.name)
                }
                (Err(e), Err(message)) => {
                    assert_eq!(e.to_string(), message, "{}", case.name);
                    assert_eq!(e.0[0].field, ".spec.replicas");
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
            }
        }
    }

    #[test]
    fn apply_records_ownership_and_force_moves_it() {
        let a = apply_rc(None, &rc(2, "nginx"), by("a"), false).expect("a");
        assert_eq!(fields_of(&a, "a")["f:spec"]["f:replicas"], json!({}));
        let entry = &a["metadata"]["managedFields"][0];
        assert_eq!(
            (
                &entry["operation"],
                &entry["apiVersion"],
                &entry["fieldsType"],
                &entry["time"]
            ),
            (
                &json!("Apply"),
                &json!("v1"),
                &json!("FieldsV1"),
                &json!(NOW)
            )
        );
        let b_config = json!({"metadata": {"name": "web"}, "spec": {"replicas": 5}});
        let b = apply_rc(Some(&a), &b_config, by("b"), true).expect("b");
        assert_eq!(fields_of(&b, "b"), json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(fields_of(&b, "a")["f:spec"].get("f:replicas"), None);
        // a now conflicts with b on replicas.
        let err = apply_rc(Some(&b), &rc(2, "nginx"), by("a"), false).expect_err("conflict");
        assert_eq!(err.0[0].manager, "b");
        // A shared field a drops stays (b owns it).
        let shared =
            apply_rc(Some(&a), &json!({"spec": {"replicas": 2}}), by("b"), false).expect("shared");
        let mut dropped = rc(2, "nginx");
        dropped["spec"]
            .as_object_mut()
            .map(|s| s.remove("replicas"));
        let after = apply_rc(Some(&shared), &dropped, by("a"), false).expect("drop");
        assert_eq!(after["spec"]["replicas"], json!(2));
    }

    #[test]
    fn apply_removes_what_a_manager_no_longer_applies() {
        let mut with_label = rc(2, "nginx");
        with_label["metadata"]["labels"]["tier"] = json!("front");
        if let Some(containers) =
            with_label["spec"]["template"]["spec"]["containers"].as_array_mut()
        {
            containers.push(json!({"name": "side", "image": "busybox"}));
        }
        let a = apply_rc(None, &with_label, by("a"), false).expect("a");
        let again = apply_rc(Some(&a), &rc(2, "nginx"), by("a"), false).expect("again");
        assert_eq!(again["metadata"]["labels"], json!({"app": "web"}));
        let containers = &again["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().map(Vec::len), Some(1));
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
        let moved = apply_rc(
            Some(&again),
            &{
                let mut v = rc(2, "nginx");
                v["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] =
                    json!(81);
                v
            },
            by("a"),
            false,
        )
        .expect("moved");
        assert_eq!(
            moved["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 81}])
        );
    }

    #[test]
    fn associative_lists_merge_by_key_and_sets_by_value() {
        let live = json!({"metadata": {"finalizers": ["x"]}, "spec": {"containers": [
            {"name": "a", "image": "1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "b", "image": "2"}
        ]}});
        let config = json!({"metadata": {"finalizers": ["y"]}, "spec": {"containers": [
            {"name": "b", "image": "3"},
            {"name": "a", "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "c", "image": "4"}
        ]}});
        let merged = apply("Pod", Some(&live), &config, by("m"), false).expect("merge");
        assert_eq!(merged["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(
            merged["spec"]["containers"],
            json!([
                {"name": "a", "image": "1", "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}]},
                {"name": "b", "image": "3"},
                {"name": "c", "image": "4"}
            ])
        );
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        let a = apply_rc(None, &rc(2, "nginx"), by("a"), false).expect("a");
        let mut edited = a.clone();
        edited["spec"]["replicas"] = json!(4);
        edited["metadata"]["annotations"] = json!({"note": "x"});
        edited["metadata"]["labels"]
            .as_object_mut()
            .map(|l| l.remove("app"));
        record_update(
            "ReplicationController",
            Some(&a),
            &mut edited,
            by("kubectl-edit"),
        );
        assert_eq!(
            fields_of(&edited, "kubectl-edit"),
            // The labels left empty: an empty map is a value of its own, as in
            // structured-merge-diff.
            json!({"f:metadata": {"f:annotations": {"f:note": {}}, "f:labels": {}}, "f:spec": {"f:replicas": {}}})
        );
        let owned_by_a = fields_of(&edited, "a");
        assert_eq!(owned_by_a["f:spec"].get("f:replicas"), None);
        assert_eq!(owned_by_a.get("f:metadata"), None);
        let entry = edited["metadata"]["managedFields"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["manager"] == "kubectl-edit"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(entry["operation"], "Update");

        // A create owns everything it set; a write that changes nothing
        // records nothing.
        let mut created = rc(1, "x");
        record_update("ReplicationController", None, &mut created, by("ctl"));
        assert_eq!(
            fields_of(&created, "ctl"),
            field_set("ReplicationController", &rc(1, "x")).to_fields_v1()
        );
        let mut same = created.clone();
        record_update(
            "ReplicationController",
            Some(&created),
            &mut same,
            by("other"),
        );
        assert_eq!(fields_of(&same, "other"), Value::Null);
    }
}
