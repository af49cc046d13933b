//! Output: kubectl-shaped tables, `json`, `yaml`, `name`, `jsonpath=` and
//! `custom-columns=`.

use api_types::kinds::ResourceKind;
use api_types::table;
use api_types::table::text;
use serde_json::{json, Value};

/// What is wrong with an `-o` flag or a template.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `-o something-else`.
    #[error("unable to match a printer suitable for the output format \"{0}\", allowed formats are: custom-columns,json,jsonpath,name,wide,yaml")]
    UnknownFormat(String),
    /// A malformed JSONPath template or custom-columns spec.
    #[error("error parsing {what} {template:?}: {message}")]
    Template {
        /// `jsonpath` or `custom-columns`.
        what: &'static str,
        /// The text given.
        template: String,
        /// What is wrong.
        message: String,
    },
}

/// An `-o` format.
#[derive(Clone, Debug)]
pub enum Output {
    /// The human table; `wide` adds the priority-1 columns.
    Table {
        /// `-o wide`.
        wide: bool,
    },
    /// `-o json`.
    Json,
    /// `-o yaml`.
    Yaml,
    /// `-o name`: `pod/web`.
    Name,
    /// `-o jsonpath=...`.
    JsonPath(Template),
    /// `-o custom-columns=HEADER:.path,...`.
    CustomColumns(Vec<(String, Template)>),
}

impl Output {
    /// Parses `-o`.
    ///
    /// # Errors
    ///
    /// An unknown format or a malformed template.
    pub fn parse(flag: Option<&str>) -> Result<Self, Error> {
        let Some(flag) = flag else {
            return Ok(Self::Table { wide: false });
        };
        if let Some(template) = flag
            .strip_prefix("jsonpath=")
            .or_else(|| flag.strip_prefix("jsonpath-as-text="))
        {
            let template = template.trim_matches('\'');
            return Ok(Self::JsonPath(Template::parse(template)?));
        }
        if let Some(spec) = flag.strip_prefix("custom-columns=") {
            return custom_columns(spec).map(Self::CustomColumns);
        }
        match flag {
            "wide" => Ok(Self::Table { wide: true }),
            "json" => Ok(Self::Json),
            "yaml" => Ok(Self::Yaml),
            "name" => Ok(Self::Name),
            other => Err(Error::UnknownFormat(other.into())),
        }
    }

    /// Whether this is a human table.
    pub fn is_table(&self) -> bool {
        matches!(self, Self::Table { .. })
    }
}

fn custom_columns(spec: &str) -> Result<Vec<(String, Template)>, Error> {
    spec.split(',')
        .map(|column| {
            let (header, path) = column.split_once(':').ok_or_else(|| Error::Template {
                what: "custom-columns",
                template: spec.into(),
                message: format!("expected HEADER:PATH, got {column:?}"),
            })?;
            let path = path.trim();
            let path = if path.starts_with('{') {
                path.to_string()
            } else if path.starts_with('.') {
                format!("{{{path}}}")
            } else {
                format!("{{.{path}}}")
            };
            Ok((header.to_string(), Template::parse(&path)?))
        })
        .collect()
}

/// Flags that shape a table.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableOptions {
    /// `-o wide`.
    pub wide: bool,
    /// `--show-labels`.
    pub show_labels: bool,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `-A`: a NAMESPACE column first.
    pub namespace_column: bool,
    /// Several kinds at once: names shown as `pod/web`.
    pub kind_prefix: bool,
}

/// The header and rows of a kind's table for `items` (v1 objects).
pub fn table_rows(
    resource: &ResourceKind,
    items: &[Value],
    options: TableOptions,
    now: jiff::Timestamp,
) -> (Vec<String>, Vec<Vec<String>>) {
    let columns = table::columns(resource);
    let shown: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.priority == 0 || options.wide)
        .map(|(i, _)| i)
        .collect();
    let mut header: Vec<String> = shown
        .iter()
        .map(|&i| columns[i].name.to_ascii_uppercase())
        .collect();
    let namespace_column = options.namespace_column && resource.namespaced;
    if namespace_column {
        header.insert(0, "NAMESPACE".into());
    }
    if options.show_labels {
        header.push("LABELS".into());
    }
    let rows = items
        .iter()
        .map(|item| {
            let cells = table::row(resource, item, now);
            let mut row: Vec<String> = shown
                .iter()
                .map(|&i| cells.get(i).map(ToString::to_string).unwrap_or_default())
                .collect();
            if options.kind_prefix && columns[0].name == "Name" {
                if let Some(first) = row.first_mut() {
                    *first = format!("{}/{first}", resource.singular);
                }
            }
            if namespace_column {
                row.insert(0, text(item, "/metadata/namespace"));
            }
            if options.show_labels {
                row.push(labels(item));
            }
            row
        })
        .collect();
    (header, rows)
}

/// `k=v,k2=v2` of an object's labels, `<none>` without any.
pub fn labels(item: &Value) -> String {
    map_text(item.pointer("/metadata/labels"), ",")
}

/// `k=v` pairs of a JSON map joined by `separator`, `<none>` when empty.
pub fn map_text(map: Option<&Value>, separator: &str) -> String {
    let pairs = map_pairs(map);
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(separator)
    }
}

/// A JSON map of labels as a `labelSelector` (`k=v,k2=v2`; empty when none).
pub fn label_selector(map: Option<&Value>) -> String {
    map_pairs(map).join(",")
}

fn map_pairs(map: Option<&Value>) -> Vec<String> {
    map.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// Aligns rows as kubectl's tabwriter does: columns padded to their widest
/// cell plus three spaces, the last column unpadded.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The document `-o json|yaml|jsonpath` print for `items`: the object
/// itself when one was asked for by name, else a `List`.
pub fn document(items: Vec<Value>, single: bool) -> Value {
    if single && items.len() == 1 {
        return items.into_iter().next().unwrap_or(Value::Null);
    }
    json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// Sets `kind` and `apiVersion` on a v1 list item, which the server leaves
/// out, so printed objects can be fed back to `create -f`.
pub fn with_type(resource: &ResourceKind, mut item: Value) -> Value {
    if let Some(map) = item.as_object_mut() {
        if !map.contains_key("kind") {
            let mut typed = serde_json::Map::new();
            typed.insert("apiVersion".into(), "v1".into());
            typed.insert("kind".into(), resource.kind.into());
            typed.extend(std::mem::take(map));
            *map = typed;
        }
    }
    item
}

/// JSON pretty-printed, with a final newline.
pub fn to_json(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

/// YAML.
pub fn to_yaml(value: &Value) -> String {
    api_types::yaml::to_string(value).unwrap_or_default()
}

/// Prints `items` in a non-table format.
pub fn print_objects(
    output: &Output,
    resource: &ResourceKind,
    items: Vec<Value>,
    single: bool,
) -> String {
    match output {
        Output::Json => to_json(&document(items, single)),
        Output::Yaml => to_yaml(&document(items, single)),
        Output::JsonPath(template) => template.render(&document(items, single)),
        Output::Name => items
            .iter()
            .map(|i| {
                let singular = i
                    .get("kind")
                    .and_then(Value::as_str)
                    .and_then(api_types::kinds::lookup)
                    .map_or(resource.singular, |r| r.singular);
                format!("{singular}/{}\n", text(i, "/metadata/name"))
            })
            .collect(),
        Output::CustomColumns(columns) => {
            let mut rows = vec![columns.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>()];
            for item in &items {
                rows.push(
                    columns
                        .iter()
                        .map(|(_, t)| {
                            let values = t.values(item);
                            if values.is_empty() {
                                "<none>".to_string()
                            } else {
                                values.iter().map(scalar).collect::<Vec<_>>().join(",")
                            }
                        })
                        .collect(),
                );
            }
            render(&rows)
        }
        Output::Table { .. } => String::new(),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A kubectl JSONPath template: text with `{.path}`, `{range ...}` /
/// `{end}` and `{"literal"}` parts. Missing keys print nothing, as with
/// `kubectl get`.
#[derive(Clone, Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

#[derive(Clone, Debug)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Descend(String),
    Filter(Vec<Step>, String, Value),
}

impl Template {
    /// Parses a template.
    ///
    /// # Errors
    ///
    /// [`Error::Template`] for an unclosed brace, an unmatched `{end}` or a
    /// path it cannot read.
    pub fn parse(template: &str) -> Result<Self, Error> {
        let error = |message: String| Error::Template {
            what: "jsonpath",
            template: template.into(),
            message,
        };
        let mut stack: Vec<(Vec<Step>, Vec<Node>)> = vec![(Vec::new(), Vec::new())];
        let mut rest = template;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                push(&mut stack, Node::Text(rest.into()));
                break;
            };
            if open > 0 {
                push(&mut stack, Node::Text(rest[..open].into()));
            }
            let close =
                closing_brace(&rest[open..]).ok_or_else(|| error("unclosed {".into()))? + open;
            let inner = rest[open + 1..close].trim();
            rest = &rest[close + 1..];
            if let Some(path) = inner.strip_prefix("range ") {
                stack.push((parse_path(path.trim()).map_err(error)?, Vec::new()));
            } else if inner == "end" {
                if stack.len() < 2 {
                    return Err(error("{end} without {range}".into()));
                }
                if let Some((path, body)) = stack.pop() {
                    push(&mut stack, Node::Range(path, body));
                }
            } else if inner.starts_with('"') || inner.starts_with('\'') {
                let quoted: String = inner[1..inner.len().saturating_sub(1)].into();
                push(&mut stack, Node::Text(unescape(&quoted)));
            } else {
                push(&mut stack, Node::Path(parse_path(inner).map_err(error)?));
            }
        }
        if stack.len() != 1 {
            return Err(error("{range} without {end}".into()));
        }
        let nodes = stack.pop().map(|(_, n)| n).unwrap_or_default();
        Ok(Self { nodes })
    }

    /// Renders the template over `data`.
    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out);
        out
    }

    /// The values the template's paths select in `data` (for
    /// custom-columns, where the template is one path).
    pub fn values(&self, data: &Value) -> Vec<Value> {
        self.nodes
            .iter()
            .flat_map(|n| match n {
                Node::Path(steps) => evaluate(steps, data),
                _ => Vec::new(),
            })
            .collect()
    }
}

fn push(stack: &mut [(Vec<Step>, Vec<Node>)], node: Node) {
    if let Some((_, nodes)) = stack.last_mut() {
        nodes.push(node);
    }
}

fn closing_brace(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
    }
    None
}

fn unescape(text: &str) -> String {
    text.replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\r", "\r")
}

fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let path = path.trim();
    let mut rest = path
        .strip_prefix('$')
        .or_else(|| path.strip_prefix('@'))
        .unwrap_or(path);
    let mut steps = Vec::new();
    let name_end = |s: &str| s.find(['.', '[']).unwrap_or(s.len());
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("..") {
            let end = name_end(after);
            steps.push(Step::Descend(after[..end].into()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = name_end(after);
            match &after[..end] {
                "" => {}
                "*" => steps.push(Step::All),
                name => steps.push(Step::Field(name.into())),
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("unclosed [ in {path:?}"))?;
            let inside = after[..end].trim();
            steps.push(bracket(inside)?);
            rest = &after[end + 1..];
        } else {
            let end = name_end(rest);
            steps.push(Step::Field(rest[..end].into()));
            rest = &rest[end..];
        }
    }
    Ok(steps)
}

fn bracket(inside: &str) -> Result<Step, String> {
    if inside == "*" {
        return Ok(Step::All);
    }
    if let Some(filter) = inside.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        for op in ["==", "!="] {
            if let Some((left, right)) = filter.split_once(op) {
                let right = right.trim();
                let value = if right.starts_with(['"', '\'']) {
                    Value::String(right[1..right.len().saturating_sub(1)].into())
                } else {
                    serde_json::from_str(right).unwrap_or_else(|_| Value::String(right.into()))
                };
                return Ok(Step::Filter(parse_path(left.trim())?, op.into(), value));
            }
        }
        return Err(format!("unsupported filter {filter:?}"));
    }
    if inside.starts_with(['"', '\'']) {
        return Ok(Step::Field(
            inside[1..inside.len().saturating_sub(1)].into(),
        ));
    }
    inside
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("unsupported index [{inside}]"))
}

fn evaluate(steps: &[Step], data: &Value) -> Vec<Value> {
    let mut current = vec![data.clone()];
    for step in steps {
        let mut next = Vec::new();
        for value in &current {
            match step {
                Step::Field(name) => {
                    if let Some(v) = value.get(name) {
                        next.push(v.clone());
                    }
                }
                Step::Index(i) => {
                    if let Some(array) = value.as_array() {
                        let len = i64::try_from(array.len()).unwrap_or(i64::MAX);
                        let index = if *i < 0 { len + i } else { *i };
                        if let Some(v) = usize::try_from(index).ok().and_then(|i| array.get(i)) {
                            next.push(v.clone());
                        }
                    }
                }
                Step::All => match value {
                    Value::Array(a) => next.extend(a.iter().cloned()),
                    Value::Object(m) => next.extend(m.values().cloned()),
                    _ => {}
                },
                Step::Descend(name) => descend(value, name, &mut next),
                Step::Filter(path, op, expected) => {
                    if let Some(array) = value.as_array() {
                        for item in array {
                            let found = evaluate(path, item);
                            let equal = found.first() == Some(expected);
                            if (op == "==") == equal {
                                next.push(item.clone());
                            }
                        }
                    }
                }
            }
        }
        current = next;
    }
    current
}

fn descend(value: &Value, name: &str, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            if let Some(v) = map.get(name) {
                out.push(v.clone());
            }
            for v in map.values() {
                descend(v, name, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                descend(v, name, out);
            }
        }
        _ => {}
    }
}

fn render_nodes(nodes: &[Node], data: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Path(steps) => {
                let values: Vec<String> = evaluate(steps, data).iter().map(scalar).collect();
                out.push_str(&values.join(" "));
            }
            Node::Range(steps, body) => {
                for item in evaluate(steps, data) {
                    render_nodes(body, &item, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app": "x"}}, "spec": {"containers": [{"image": "i1"}, {"image": "i2"}]}},
            {"metadata": {"name": "b"}, "spec": {"containers": [{"image": "i3"}]}}
        ]})
    }

    #[test]
    fn jsonpath_like_kubectl() {
        let t = Template::parse("{.items[*].metadata.name}").unwrap();
        assert_eq!(t.render(&list()), "a b");
        let t = Template::parse(
            "{range .items[*]}{.metadata.name}:{.spec.containers[0].image}{\"\\n\"}{end}",
        )
        .unwrap();
        assert_eq!(t.render(&list()), "a:i1\nb:i3\n");
        let t = Template::parse("{.items[?(@.metadata.name==\"b\")].spec..image}").unwrap();
        assert_eq!(t.render(&list()), "i3");
        let t = Template::parse("{.items[-1].metadata.name} {.missing}").unwrap();
        assert_eq!(t.render(&list()), "b ");
        assert!(Template::parse("{range .items[*]}").is_err());
        assert!(Template::parse("{.items").is_err());
    }

    #[test]
    fn custom_columns_join_and_mark_missing() {
        let output = Output::parse(Some("custom-columns=NAME:.metadata.name,IMAGES:.spec.containers[*].image,APP:metadata.labels.app")).unwrap();
        let items = list()["items"].as_array().unwrap().clone();
        let text = print_objects(&output, &api_types::kinds::PODS, items, false);
        assert_eq!(
            text,
            "NAME   IMAGES   APP\na      i1,i2    x\nb      i3       <none>\n"
        );
    }

    #[test]
    fn tables_align_like_tabwriter() {
        let rows = vec![
            vec!["NAME".to_string(), "READY".into(), "AGE".into()],
            vec!["web-long".to_string(), "0/1".into(), "5s".into()],
        ];
        assert_eq!(
            render(&rows),
            "NAME       READY   AGE\nweb-long   0/1     5s\n"
        );
    }
}
