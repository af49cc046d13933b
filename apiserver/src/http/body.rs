//! Request bodies (JSON, YAML or protobuf, at most 3 MiB) and what a client
//! accepts.

use axum::body::Body;
use axum::http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use crate::error::{ApiError, Result};
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
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::new(
                Reason::RequestEntityTooLarge,
                format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
            ))
        }
        Err(error) => {
            return Err(ApiError::bad_request(format!(
                "the request body could not be read: {error}"
            )))
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if crate::protobuf::is_protobuf(&content_type) {
        let value = crate::protobuf::decode(&bytes)?;
        return Ok(Some(AcceptedBody {
            value,
            duplicates: Vec::new(),
        }));
    }
    let yaml =
        content_type.ends_with("yaml") || (content_type.is_empty() && !looks_like_json(&bytes));
    let mut duplicates = Vec::new();
    let value = if yaml {
        serde_saphyr::from_slice_with_options::<Value>(&bytes, yaml_options()).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body is not valid YAML: {}",
                yaml_error(&e)
            ))
        })?
    } else {
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?;
        duplicates = duplicate_fields(&bytes);
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

/// serde-saphyr's options for request bodies: budgets on the parse and on
/// alias replay; otherwise as `serde_yaml` read them (repeated keys: the
/// last wins, as in a JSON object; YAML 1.2 scalars).
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_YAML_NODES;
    budget.max_events = 2 * MAX_YAML_NODES;
    budget.max_aliases = MAX_YAML_ALIAS_EVENTS;
    budget.max_recorded_anchor_events = MAX_YAML_ALIAS_EVENTS;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_YAML_ALIAS_EVENTS;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    // YAML 1.2 scalars, as serde_yaml read them: `yes` is a string, `010`
    // and `1_000` too.
    options.strict_booleans = true;
    options.leading_zero_numbers_as_strings = true;
    options.underscored_numbers_as_strings = true;
    options.with_snippet = false;
    options
}

/// A parse error in one line: what and where, without the snippet of the
/// body serde-saphyr can draw.
fn yaml_error(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or("").trim().to_string();
    match error.location() {
        Some(at) if !first.contains("line") => {
            format!("{first} at line {} column {}", at.line(), at.column())
        }
        _ => first,
    }
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

/// The keys a JSON document repeats within one object, each as a field
/// path (`spec.containers[0].name`). `serde_json` keeps the last value of
/// a repeated key silently; Kubernetes' strict decoding names them. A
/// document that does not parse has none (the parse error is reported).
pub fn duplicate_fields(bytes: &[u8]) -> Vec<String> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    struct Walk<'a> {
        path: String,
        found: &'a RefCell<Vec<String>>,
    }

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", self.path)
                };
                if !seen.insert(key) {
                    self.found.borrow_mut().push(path.clone());
                }
                map.next_value_seed(Walk {
                    path,
                    found: self.found,
                })?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0;
            while seq
                .next_element_seed(Walk {
                    path: format!("{}[{index}]", self.path),
                    found: self.found,
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

    let found = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let walked = Walk {
        path: String::new(),
        found: &found,
    }
    .deserialize(&mut deserializer);
    match walked {
        Ok(()) => found.into_inner(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod duplicate_tests {
    use super::duplicate_fields;

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
    }
}
