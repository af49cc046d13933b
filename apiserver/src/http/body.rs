//! Request bodies (JSON, YAML or protobuf, at most 3 MiB) and what a client
//! accepts.

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::registry::JsonObject;
use api_types::status::Reason;

/// The largest body accepted, as Kubernetes' apiserver.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A decoded request body.
#[derive(Debug)]
pub struct AcceptedBody {
    /// The body as JSON (YAML bodies are converted).
    pub value: Value,
    /// Keys a JSON body repeats (`metadata.name`): `fieldValidation`
    /// refuses or warns about them, as Kubernetes' strict decoding does.
    pub duplicates: Vec<String>,
}

/// Reads and decodes the body; `None` when it is empty.
///
/// A body over [`MAX_BODY_BYTES`] is a 413; one that does not parse is a
/// 400 whose message gives the parser's complaint and position.
pub async fn read(headers: &HeaderMap, body: Body) -> Result<Option<AcceptedBody>> {
    let bytes = read_bytes(body).await?;
    decode_read(headers, bytes).await
}

/// Reads the body whole, as it came; one over [`MAX_BODY_BYTES`] is a 413.
pub async fn read_bytes(body: Body) -> Result<Bytes> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::new(
            Reason::RequestEntityTooLarge,
            format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        )),
        Err(error) => Err(ApiError::bad_request(format!(
            "the request body could not be read: {error}"
        ))),
    }
}

/// A small JSON body, for a create that decodes it straight into its type:
/// `None` when it is not JSON (YAML, protobuf), is as large as the bodies
/// decoded off the async workers, or is empty, which [`decode_read`] then
/// answers. Otherwise one pass checks that it is one JSON object, takes
/// its `kind` and `apiVersion`, and names its repeated keys.
pub fn small_json(headers: &HeaderMap, bytes: &Bytes) -> Result<Option<(JsonObject, Vec<String>)>> {
    let content_type = content_type(headers);
    let json =
        content_type == "application/json" || (content_type.is_empty() && looks_like_json(bytes));
    if !json || bytes.len() >= OFFLOAD_BYTES || bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let scan = scan_json(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !scan.object {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    Ok(Some((
        JsonObject {
            bytes: bytes.clone(),
            kind: scan.kind,
            api_version: scan.api_version,
        },
        scan.duplicates,
    )))
}

/// Decodes a body read by [`read_bytes`]; `None` when it is empty.
pub async fn decode_read(headers: &HeaderMap, bytes: Bytes) -> Result<Option<AcceptedBody>> {
    if bytes.len() < OFFLOAD_BYTES {
        return decode(&bytes, &content_type(headers));
    }
    // Parsing a large body takes milliseconds of CPU: on tokio's blocking
    // threads, at most one per core at a time, so that the async workers
    // keep answering (`/healthz` among them) while it runs.
    let permits = OFFLOADS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::sync::Semaphore::new(cores)
    });
    let _permit = permits
        .acquire()
        .await
        .map_err(|e| ApiError::internal(format!("body decoding stopped: {e}")))?;
    let content_type = content_type(headers);
    tokio::task::spawn_blocking(move || decode(&bytes, &content_type))
        .await
        .map_err(|e| ApiError::internal(format!("body decoding failed: {e}")))?
}

/// Runs CPU-heavy work on a request's `input` (applying a large patch)
/// where it does not hold up an async worker: on tokio's multi-threaded
/// runtime, from `OFFLOAD_BYTES` of input on, the worker hands its other
/// tasks to another thread while `work` runs (`block_in_place`), so
/// `/healthz` and small requests keep being answered. Small inputs, and a
/// current-thread runtime (some tests), just run `work`.
pub fn heavy<T>(input: &Value, work: impl FnOnce() -> T) -> T {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_threaded && at_least(input, OFFLOAD_BYTES) {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Whether `value` takes about `bytes` or more as JSON; stops counting
/// there, so a small value costs little and a large one no more.
fn at_least(value: &Value, bytes: usize) -> bool {
    fn size(value: &Value, budget: &mut usize) {
        if *budget == 0 {
            return;
        }
        let own = match value {
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                for item in items {
                    size(item, budget);
                }
                2
            }
            Value::Object(map) => {
                for (key, item) in map {
                    *budget = budget.saturating_sub(key.len() + 3);
                    size(item, budget);
                }
                2
            }
            _ => 4,
        };
        *budget = budget.saturating_sub(own);
    }
    let mut budget = bytes;
    size(value, &mut budget);
    budget == 0
}

/// Bodies from this size on are decoded off the async workers.
const OFFLOAD_BYTES: usize = 64 * 1024;

/// Bounds the large bodies decoded at once (one per core).
static OFFLOADS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();

/// The media type of the body, lowercase, without parameters.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a body read whole; `None` when it is empty.
fn decode(bytes: &[u8], content_type: &str) -> Result<Option<AcceptedBody>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if crate::protobuf::is_protobuf(content_type) {
        let value = crate::protobuf::decode(bytes)?;
        return Ok(Some(AcceptedBody {
            value,
            duplicates: Vec::new(),
        }));
    }
    let yaml =
        content_type.ends_with("yaml") || (content_type.is_empty() && !looks_like_json(bytes));
    let mut duplicates = Vec::new();
    let value = if yaml {
        serde_saphyr::from_slice_with_options::<Value>(bytes, yaml_options()).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body is not valid YAML: {}",
                api_types::yaml::error_line(&e)
            ))
        })?
    } else {
        let (value, repeated) = parse_json(bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?;
        duplicates = repeated;
        value
    };
    if !value.is_object() && !value.is_array() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    Ok(Some(AcceptedBody { value, duplicates }))
}

/// How many events aliases may replay in one body. A YAML body expands
/// through aliases (`*a` repeats everything under `&a`), so 12 KB can stand
/// for millions of nodes (CVE-2019-11253). A 3 MiB JSON body holds about
/// 1.5 million values; aliases may add at most this many more.
pub const MAX_YAML_ALIAS_EVENTS: usize = 1_000_000;

/// The most nodes (scalars, sequences, mappings) a YAML body may hold as
/// written, aliases aside; as many as the largest JSON body.
pub const MAX_YAML_NODES: usize = MAX_BODY_BYTES / 2;

/// serde-saphyr's options for request bodies: [`api_types::yaml::options`]
/// (read as `serde_yaml` read them: YAML 1.2 scalars, the last of repeated
/// keys) with budgets on the parse and on alias replay.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_YAML_NODES;
    budget.max_events = 2 * MAX_YAML_NODES;
    budget.max_aliases = MAX_YAML_ALIAS_EVENTS;
    budget.max_recorded_anchor_events = MAX_YAML_ALIAS_EVENTS;
    let mut options = api_types::yaml::options();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_YAML_ALIAS_EVENTS;
    options
}

fn looks_like_json(bytes: &[u8]) -> bool {
    matches!(
        bytes.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// Whether the client asked for a `meta.k8s.io` Table (kubectl get does).
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// Whether the client prefers YAML to JSON.
pub fn wants_yaml(accept: &str) -> bool {
    let first = accept.split(',').next().unwrap_or("").trim();
    first.starts_with("application/yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yaml_aliases_expand_within_a_budget() {
        let headers = HeaderMap::new();
        let small = "a: &x {b: [1, 2]}\nc: *x\nd: <<\n";
        let ok = read(&headers, Body::from(small)).await.unwrap().unwrap();
        assert_eq!(ok.value["c"]["b"][1], 2);
        let mut bomb = String::from("x: &a [");
        bomb.push_str(&vec!["l"; 1000].join(","));
        bomb.push_str("]\ny: [");
        bomb.push_str(&vec!["*a"; 2000].join(","));
        bomb.push(']');
        let e = read(&headers, Body::from(bomb)).await.unwrap_err();
        assert_eq!(e.code(), 400);
        assert!(e.to_string().contains("alias"), "{e}");
        assert!(e.to_string().len() < 300, "{e}");
    }

    #[tokio::test]
    async fn yaml_reads_as_serde_yaml_did() {
        let headers = HeaderMap::new();
        let text = "n: 1\nf: 1.5\nt: true\ns: yes\nq: \"1\"\nnull_: ~\nn: 2\nlist:\n- a\no: 010\n";
        let ok = read(&headers, Body::from(text)).await.unwrap().unwrap();
        assert_eq!(
            ok.value,
            serde_json::json!({"n": 2, "f": 1.5, "t": true, "s": "yes", "q": "1", "null_": null, "list": ["a"], "o": "010"})
        );
    }

    #[tokio::test]
    async fn large_bodies_decode_off_the_workers_alike() {
        let headers = HeaderMap::new();
        let big = format!(r#"{{"a": "{}", "a": 1}}"#, "x".repeat(OFFLOAD_BYTES));
        let ok = read(&headers, Body::from(big)).await.unwrap().unwrap();
        assert_eq!(ok.value["a"], 1);
        assert_eq!(ok.duplicates, ["a"]);
        let bad = format!(r#"{{"a": "{}"#, "x".repeat(OFFLOAD_BYTES));
        let e = read(&headers, Body::from(bad)).await.unwrap_err();
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn sizes_are_estimated_up_to_the_limit() {
        let small = serde_json::json!({"metadata": {"name": "p"}});
        assert!(!at_least(&small, 100));
        assert!(at_least(&small, 10));
        let big = serde_json::json!({"a": ["x".repeat(40_000), "y".repeat(40_000)]});
        assert!(at_least(&big, OFFLOAD_BYTES));
        assert_eq!(heavy(&big, || 7), 7);
    }

    #[test]
    fn accept_headers() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(wants_yaml("application/yaml"));
        assert!(!wants_yaml("application/json, application/yaml"));
    }

    #[tokio::test]
    async fn bodies_decode_with_positions() {
        let headers = HeaderMap::new();
        let e = read(&headers, Body::from("{\"a\": 1,\n \"b\" }"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), 400);
        assert!(e.to_string().contains("line 2 column"), "{e}");
        let e = read(&headers, Body::from("a: [1\nb: 2")).await.unwrap_err();
        assert!(e.to_string().contains("YAML"), "{e}");
        let ok = read(&headers, Body::from("kind: Pod\nmetadata:\n  name: x\n"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ok.value["metadata"]["name"], "x");
        assert!(read(&headers, Body::from("  ")).await.unwrap().is_none());
        let e = read(&headers, Body::from("kind: Pod\nkind: [a\n"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let e = read(&headers, Body::from(big)).await.unwrap_err();
        assert_eq!(e.code(), 413);
    }
}

/// Where a value sits in a document being parsed, kept on the stack: a
/// path is only written out for a repeated key.
enum Step<'a> {
    Root,
    Key(&'a Step<'a>, &'a str),
    Index(&'a Step<'a>, usize),
}

impl Step<'_> {
    /// The field path (`spec.containers[0].name`).
    fn render(&self) -> String {
        match self {
            Step::Root => String::new(),
            Step::Key(parent, key) => match parent.render() {
                above if above.is_empty() => (*key).to_string(),
                above => format!("{above}.{key}"),
            },
            Step::Index(parent, index) => format!("{}[{index}]", parent.render()),
        }
    }
}

/// Parses a JSON document and names the keys it repeats within one object,
/// each as a field path (`spec.containers[0].name`), in one pass.
/// `serde_json` keeps the last value of a repeated key silently (so does
/// this: same value, same place); Kubernetes' strict decoding names them.
///
/// # Errors
///
/// The parser's complaint, with its position, when `bytes` is not JSON.
pub fn parse_json(bytes: &[u8]) -> serde_json::Result<(Value, Vec<String>)> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::map::Entry;
    use std::cell::RefCell;

    struct Parse<'a> {
        at: &'a Step<'a>,
        found: &'a RefCell<Vec<String>>,
    }

    impl<'de> DeserializeSeed<'de> for Parse<'_> {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Parse<'_> {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
            let mut map = serde_json::Map::new();
            while let Some(key) = access.next_key::<String>()? {
                let value = access.next_value_seed(Parse {
                    at: &Step::Key(self.at, &key),
                    found: self.found,
                })?;
                match map.entry(key) {
                    Entry::Occupied(mut slot) => {
                        let path = Step::Key(self.at, slot.key()).render();
                        self.found.borrow_mut().push(path);
                        slot.insert(value);
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                }
            }
            Ok(Value::Object(map))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
            let mut list = Vec::with_capacity(access.size_hint().unwrap_or(0).min(4096));
            while let Some(value) = access.next_element_seed(Parse {
                at: &Step::Index(self.at, list.len()),
                found: self.found,
            })? {
                list.push(value);
            }
            Ok(Value::Array(list))
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
    }

    let found = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Parse {
        at: &Step::Root,
        found: &found,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok((value, found.into_inner()))
}

/// What [`scan_json`] learnt of a document.
#[derive(Debug, Default)]
struct Scan {
    /// Whether the document is an object.
    object: bool,
    /// Its top-level `kind` and `apiVersion`, when they are strings.
    kind: Option<String>,
    api_version: Option<String>,
    /// The keys it repeats within one object, as field paths.
    duplicates: Vec<String>,
}

/// Reads a JSON document through once without building it: whether it is
/// an object, its `kind` and `apiVersion`, and the keys it repeats (as
/// [`parse_json`] names them). Keys without escapes are borrowed from
/// `bytes`, so a pass over a pod allocates almost nothing.
///
/// # Errors
///
/// The parser's complaint, with its position, when `bytes` is not JSON.
fn scan_json(bytes: &[u8]) -> serde_json::Result<Scan> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;
    use std::cell::RefCell;
    use std::collections::HashSet;

    /// From this many keys on, one object's keys are looked up by hash, so
    /// a body of one huge object costs linear time.
    const LINEAR_KEYS: usize = 16;

    struct Key;
    impl<'de> DeserializeSeed<'de> for Key {
        type Value = Cow<'de, str>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<'de> Visitor<'de> for Key {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a key")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
    }

    struct Walk<'a> {
        at: &'a Step<'a>,
        scan: &'a RefCell<Scan>,
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
            let root = matches!(self.at, Step::Root);
            if root {
                self.scan.borrow_mut().object = true;
            }
            let mut seen: Vec<Cow<'de, str>> = Vec::new();
            let mut hashed: HashSet<Cow<'de, str>> = HashSet::new();
            while let Some(key) = access.next_key_seed(Key)? {
                let top = if root {
                    match key.as_ref() {
                        "kind" => Some(true),
                        "apiVersion" => Some(false),
                        _ => None,
                    }
                } else {
                    None
                };
                match top {
                    Some(is_kind) => {
                        if let Value::String(text) = access.next_value::<Value>()? {
                            let mut scan = self.scan.borrow_mut();
                            *(if is_kind {
                                &mut scan.kind
                            } else {
                                &mut scan.api_version
                            }) = Some(text);
                        }
                    }
                    None => access.next_value_seed(Walk {
                        at: &Step::Key(self.at, &key),
                        scan: self.scan,
                    })?,
                }
                let repeated = if seen.len() < LINEAR_KEYS {
                    let repeated = seen.contains(&key);
                    if !repeated {
                        seen.push(key.clone());
                        if seen.len() == LINEAR_KEYS {
                            hashed.extend(seen.iter().cloned());
                        }
                    }
                    repeated
                } else {
                    !hashed.insert(key.clone())
                };
                if repeated {
                    let path = Step::Key(self.at, &key).render();
                    self.scan.borrow_mut().duplicates.push(path);
                }
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
            let mut index = 0;
            while access
                .next_element_seed(Walk {
                    at: &Step::Index(self.at, index),
                    scan: self.scan,
                })?
                .is_some()
            {
                index += 1;
            }
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let scan = RefCell::new(Scan::default());
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    Walk {
        at: &Step::Root,
        scan: &scan,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(scan.into_inner())
}

#[cfg(test)]
mod duplicate_tests {
    use super::{parse_json, scan_json};
    use serde_json::Value;

    #[test]
    fn the_scan_names_what_the_parse_names() {
        let bodies: [&[u8]; 6] = [
            br#"{"metadata": {"name": "a", "name": "b"},
                "spec": {"containers": [{"name": "c", "image": "x", "image": "y"}]}}"#,
            br#"{"z": {"b": [1, -2, 3.5, "s\u00e9", null, true, {}], "a": 1}, "z": 2, "a": []}"#,
            br#"{"k\u0069nd": 1, "kind": 2, "a": {"a": 1}, "b": [1, 2]}"#,
            br#"[{"a": 1, "a": 2}]"#,
            br#""text""#,
            br#"{}"#,
        ];
        for body in bodies {
            let (value, parsed) = parse_json(body).unwrap();
            let scan = scan_json(body).unwrap();
            assert_eq!(scan.duplicates, parsed, "{}", String::from_utf8_lossy(body));
            assert_eq!(scan.object, value.is_object());
        }
        assert!(scan_json(b"{} x").is_err());
        assert!(scan_json(b"{\"a\": }").is_err());
        assert!(scan_json(&[b'['; 200]).is_err(), "nesting is bounded");
    }

    #[test]
    fn the_scan_takes_kind_and_api_version_from_the_top_only() {
        let scan = scan_json(
            br#"{"apiVersion": "v1", "metadata": {"kind": "Inner"}, "kind": "Pod", "spec": {"apiVersion": 1}}"#,
        )
        .unwrap();
        assert_eq!(scan.kind.as_deref(), Some("Pod"));
        assert_eq!(scan.api_version.as_deref(), Some("v1"));
        let scan = scan_json(br#"{"kind": 7, "apiVersion": {"a": 1, "a": 2}}"#).unwrap();
        assert_eq!((scan.kind, scan.api_version), (None, None));
    }

    #[test]
    fn the_scan_finds_repeats_in_objects_of_many_keys() {
        // Past the keys looked up one by one: by hash, a repeat both among
        // the first keys and among the later ones.
        let mut body = String::from("{");
        for i in 0..40 {
            body.push_str(&format!("\"k{i}\": {i}, "));
        }
        body.push_str(r#""k3": 0, "k39": 0, "k40": 0}"#);
        let scan = scan_json(body.as_bytes()).unwrap();
        assert_eq!(scan.duplicates, ["k3", "k39"]);
        assert_eq!(parse_json(body.as_bytes()).unwrap().1, scan.duplicates);
    }

    fn duplicate_fields(bytes: &[u8]) -> Vec<String> {
        parse_json(bytes)
            .map(|(_, found)| found)
            .unwrap_or_default()
    }

    #[test]
    fn one_parse_gives_serde_json_s_value() {
        let body = br#"{"z": {"b": [1, -2, 3.5, 18446744073709551615, "s\u00e9", null, true, {}], "a": 1}, "z": 2, "a": []}"#;
        let (value, found) = parse_json(body).unwrap();
        let plain: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(value, plain);
        // The same order of keys, not only the same map.
        assert_eq!(value.to_string(), plain.to_string());
        assert_eq!(found, ["z"]);
        assert!(parse_json(b"{} x").is_err());
        assert!(parse_json(&[b'['; 200]).is_err(), "nesting is bounded");
    }

    #[test]
    fn repeated_keys_are_named_by_their_path() {
        let body = br#"{"metadata": {"name": "a", "name": "b"},
            "spec": {"containers": [{"name": "c", "image": "x", "image": "y"}]}}"#;
        assert_eq!(
            duplicate_fields(body),
            ["metadata.name", "spec.containers[0].image"]
        );
        assert!(duplicate_fields(br#"{"a": {"a": 1}, "b": [1, 2]}"#).is_empty());
        assert!(duplicate_fields(b"{not json").is_empty());
        assert_eq!(duplicate_fields(br#"[{"a": 1, "a": 2}]"#), ["[0].a"]);
    }
}
