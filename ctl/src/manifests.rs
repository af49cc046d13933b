//! Manifests given with `-f`: files, directories (`-R` recursive) or `-`
//! (stdin); JSON or YAML, several documents per file, `List` objects
//! expanded; v1 manifests and 2014 `v1beta1` ones (sent unchanged to
//! `/api/v1beta1`, where the server converts them).

use std::io::Read;
use std::path::{Path, PathBuf};

use api_types::kinds::ResourceKind;
use serde_json::Value;

use crate::resources;

/// The `-f`/`-R` flags of the verbs that need manifests (`create`,
/// `replace`, `apply`).
#[derive(Debug, Clone, clap::Args)]
pub struct FileArgs {
    /// Files, directories or `-` (stdin) holding the objects.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// What is wrong with a manifest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid JSON or YAML.
    #[error("error parsing {path}: line {line} column {column}: {message}")]
    Parse {
        /// The file (`-` for stdin).
        path: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A document is valid but not an object we can send.
    #[error("error in {path} (document {document}): {message}")]
    Object {
        /// The file.
        path: String,
        /// 1-based document number in the file.
        document: usize,
        /// What is missing or wrong.
        message: String,
    },
    /// `-f` named nothing.
    #[error("no objects passed to create (the files given contain no documents)")]
    Empty,
}

/// One object read from a manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Where it came from (`web.yaml`, `-`).
    pub source: String,
    /// The object as written.
    pub value: Value,
    /// Its resource.
    pub resource: &'static ResourceKind,
    /// `metadata.name` (v1) or `id` (v1beta1); may be empty for v1beta1,
    /// where the server picks one.
    pub name: String,
    /// The namespace the manifest names, if any.
    pub namespace: Option<String>,
    /// A 2014 manifest (`apiVersion: v1beta1`/`v1beta2`).
    pub v1beta1: bool,
}

impl Manifest {
    /// `pod/web`.
    pub fn display_name(&self) -> String {
        resources::display_name(self.resource, &self.name)
    }

    /// The namespace to use: the manifest's, else `default_namespace`.
    pub fn namespace_or<'a>(&'a self, default_namespace: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(default_namespace)
    }

    /// Where to `POST` it.
    pub fn collection_path(&self, default_namespace: &str) -> String {
        let ns = self.namespace_or(default_namespace);
        if self.v1beta1 {
            if let Some(path) = resources::v1beta1_path(self.resource, Some(ns), None) {
                return path;
            }
        }
        resources::collection_path(self.resource, Some(ns))
    }

    /// Where to `PUT`, `GET` or `DELETE` it; `v1beta1` paths only when
    /// `versioned` and the manifest is a 2014 one.
    pub fn object_path(&self, default_namespace: &str, versioned: bool) -> String {
        let ns = self.namespace_or(default_namespace);
        if versioned && self.v1beta1 {
            if let Some(path) = resources::v1beta1_path(self.resource, Some(ns), Some(&self.name)) {
                return path;
            }
        }
        resources::object_path(self.resource, ns, &self.name)
    }
}

/// Reads every object of `files` (paths, directories, or `-`).
///
/// # Errors
///
/// An unreadable file, a parse error (with file, line and column), or a
/// document without a known `kind`.
pub fn read(files: &[String], recursive: bool) -> Result<Vec<Manifest>, Error> {
    let mut out = Vec::new();
    for file in files {
        if file == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| Error::Read {
                    path: "-".into(),
                    source,
                })?;
            out.extend(parse("-", &text)?);
            continue;
        }
        let path = Path::new(file);
        let paths = if path.is_dir() {
            let mut found = Vec::new();
            walk(path, recursive, &mut found)?;
            found.sort();
            found
        } else {
            vec![path.to_path_buf()]
        };
        for path in paths {
            let display = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: display.clone(),
                source,
            })?;
            out.extend(parse(&display, &text)?);
        }
    }
    if out.is_empty() {
        return Err(Error::Empty);
    }
    Ok(out)
}

fn walk(dir: &Path, recursive: bool, found: &mut Vec<PathBuf>) -> Result<(), Error> {
    let read_error = |source| Error::Read {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_dir() {
            if recursive {
                walk(&path, recursive, found)?;
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "json" | "yaml" | "yml"))
        {
            found.push(path);
        }
    }
    Ok(())
}

/// Parses the text of one file: JSON (one or more concatenated values) when
/// it starts with `{` or `[`, else YAML documents separated by `---`.
///
/// # Errors
///
/// As [`read`].
pub fn parse(source: &str, text: &str) -> Result<Vec<Manifest>, Error> {
    let documents = if text.trim_start().starts_with(['{', '[']) {
        parse_json(source, text)?
    } else {
        parse_yaml(source, text)?
    };
    let mut out = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        expand(source, index + 1, document, &mut out)?;
    }
    Ok(out)
}

fn parse_json(source: &str, text: &str) -> Result<Vec<Value>, Error> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .map(|r| {
            r.map_err(|e| Error::Parse {
                path: source.into(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })
        })
        .collect()
}

fn parse_yaml(source: &str, text: &str) -> Result<Vec<Value>, Error> {
    api_types::yaml::from_multiple(text).map_err(|e| {
        let place = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let (line, column) = e
            .location()
            .map_or((0, 0), |l| (place(l.line()), place(l.column())));
        let message = e.to_string();
        let first = message.lines().next().unwrap_or_default();
        Error::Parse {
            path: source.into(),
            line,
            column,
            message: first.split(" at line ").next().unwrap_or(first).to_string(),
        }
    })
}

fn expand(
    source: &str,
    document: usize,
    value: Value,
    out: &mut Vec<Manifest>,
) -> Result<(), Error> {
    let object_error = |message: String| Error::Object {
        path: source.into(),
        document,
        message,
    };
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some()) {
        let items = value
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let list_version = value.get("apiVersion").cloned();
        for mut item in items {
            if item.get("apiVersion").is_none() {
                if let (Some(map), Some(version)) = (item.as_object_mut(), &list_version) {
                    map.insert("apiVersion".into(), version.clone());
                }
            }
            if item.get("kind").is_none() && kind != "List" {
                if let Some(map) = item.as_object_mut() {
                    map.insert("kind".into(), kind.trim_end_matches("List").into());
                }
            }
            expand(source, document, item, out)?;
        }
        return Ok(());
    }
    if !value.is_object() {
        return Err(object_error("a manifest must be an object".into()));
    }
    if kind.is_empty() {
        return Err(object_error("kind not set".into()));
    }
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // A named group's kinds (`apps/v1` DaemonSet...) as the server serves them.
    let served = api_types::kinds::by_api_version_kind(api_version, &kind);
    let v1beta1 = match api_version {
        "v1" => false,
        _ if served.is_some() => false,
        "v1beta1" | "v1beta2" => true,
        "" if value.get("metadata").is_none() => true,
        "" => return Err(object_error("apiVersion not set".into())),
        other => {
            return Err(object_error(format!(
                "apiVersion {other:?} is not served (use v1, or v1beta1 for 2014 manifests)"
            )))
        }
    };
    let resource = served
        .or_else(|| api_types::kinds::lookup(&kind))
        .ok_or_else(|| object_error(format!("no resource of kind {kind:?}")))?;
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (name, namespace) = if v1beta1 {
        (text("/id"), text("/namespace"))
    } else {
        (text("/metadata/name"), text("/metadata/namespace"))
    };
    let name = name.unwrap_or_default();
    if name.is_empty() && !v1beta1 {
        return Err(object_error(format!("{kind} has no metadata.name")));
    }
    out.push(Manifest {
        source: source.into(),
        resource,
        name,
        namespace: namespace.filter(|n| !n.is_empty()),
        v1beta1,
        value,
    });
    Ok(())
}

/// The v1 form of a 2014 manifest, converted here as the server would
/// (for `apply`, which v1beta1 cannot do: it has no PATCH).
///
/// # Errors
///
/// [`Error::Object`] when the manifest does not read as its v1beta1 kind or
/// does not convert (the message names the v1beta1 field).
pub fn to_v1(manifest: &Manifest) -> Result<Value, Error> {
    use api_types::v1beta1 as b;
    let result = match manifest.resource.kind {
        "Pod" => convert::<b::Pod>(&manifest.value),
        "Service" => convert::<b::Service>(&manifest.value),
        "ReplicationController" => convert::<b::ReplicationController>(&manifest.value),
        "Node" => convert::<b::Minion>(&manifest.value),
        "Endpoints" => convert::<b::Endpoints>(&manifest.value),
        "Event" => convert::<b::Event>(&manifest.value),
        other => Err(format!("v1beta1 has no {other}")),
    };
    let mut value = result.map_err(|message| Error::Object {
        path: manifest.source.clone(),
        document: 1,
        message,
    })?;
    if let (Some(ns), Some(metadata)) = (
        &manifest.namespace,
        value.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        metadata.insert("namespace".into(), Value::String(ns.clone()));
    }
    Ok(value)
}

fn convert<T>(value: &Value) -> Result<Value, String>
where
    T: api_types::v1beta1::Versioned,
    T::V1: serde::Serialize,
{
    let object: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let v1 = object.into_v1().map_err(|e| e.to_string())?;
    serde_json::to_value(v1).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_and_lists_expand() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: s}}\n- {kind: ReplicationController, metadata: {name: r, namespace: x}}\n";
        let all = parse("f.yaml", text).unwrap();
        let names: Vec<String> = all.iter().map(Manifest::display_name).collect();
        assert_eq!(names, ["pod/a", "service/s", "replicationcontroller/r"]);
        assert_eq!(all[2].namespace.as_deref(), Some("x"));
    }

    #[test]
    fn named_group_manifests_go_to_their_group() {
        let text = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\n";
        let all = parse("ds.yaml", text).unwrap();
        assert_eq!(all[0].resource.kind, "DaemonSet");
        assert_eq!(
            all[0].collection_path("default"),
            "/apis/apps/v1/namespaces/default/daemonsets"
        );
        assert!(parse(
            "x.yaml",
            "apiVersion: apps/v2\nkind: DaemonSet\nmetadata: {name: a}\n"
        )
        .is_err());
    }

    #[test]
    fn v1beta1_manifests_keep_their_shape_and_path() {
        let text = r#"{"id":"redis","kind":"Pod","apiVersion":"v1beta1","desiredState":{}}
{"id":"fe","kind":"ReplicationController","apiVersion":"v1beta1"}"#;
        let all = parse("p.json", text).unwrap();
        assert!(all[0].v1beta1);
        assert_eq!(
            all[0].collection_path("default"),
            "/api/v1beta1/pods?namespace=default"
        );
        assert_eq!(
            all[1].object_path("ns", true),
            "/api/v1beta1/replicationControllers/fe?namespace=ns"
        );
        assert_eq!(
            all[1].object_path("ns", false),
            "/api/v1/namespaces/ns/replicationcontrollers/fe"
        );
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let err = parse(
            "bad.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [a\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("error parsing bad.yaml: line "), "{text}");
        let err = parse("bad.json", "{\"kind\": \"Pod\",\n \"x\": }").unwrap_err();
        assert!(err.to_string().contains("bad.json: line 2"), "{err}");
        let err = parse("k.yaml", "apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert!(err.to_string().contains("kind not set"), "{err}");
    }
}
