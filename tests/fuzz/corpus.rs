//! The seed corpus (`tests/fuzz/corpus/<target>/`) and the mutations that
//! turn a seed into the next input.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

/// How many generated cases each target runs (`FUZZ_CASES`, default 512).
pub fn config() -> Config {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// A smaller count for targets that go through a real apiserver.
pub fn api_config() -> Config {
    let mut config = config();
    config.cases = (config.cases / 4).max(32);
    config
}

/// Every file of `corpus/<target>/`, sorted by name (empty if none).
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&path).ok()?))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// One byte-level edit, as libFuzzer's mutators make them.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Replace the byte at (position mod length).
    Set(usize, u8),
    /// Insert a byte.
    Insert(usize, u8),
    /// Remove up to `len` bytes.
    Remove(usize, usize),
    /// Copy up to `len` bytes from one place to another.
    Duplicate(usize, usize, usize),
    /// Insert a token that matters to the parsers (quotes, brackets,
    /// YAML anchors, huge numbers).
    Token(usize, &'static str),
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "-1",
    "1e400",
    "\\u0000",
    "&a ",
    "*a",
    "!!binary ",
    "\n- ",
    "\n  ",
    "---\n",
    "'",
    "#",
    "99999999999999999999999",
    "%",
    "/",
    "~1",
    "$patch",
    "$retainKeys",
    "$setElementOrder/",
    "$deleteFromPrimitiveList/",
    "in (",
    "notin",
    "!",
    "==",
    "!=",
    ")",
    "Ki",
    "E",
    "e",
    ".",
    "k8s\0",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Set(at, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Remove(at, len)),
        (any::<usize>(), any::<usize>(), 1usize..256)
            .prop_map(|(from, to, len)| Mutation::Duplicate(from, to, len)),
        (any::<usize>(), prop::sample::select(TOKENS))
            .prop_map(|(at, token)| Mutation::Token(at, token)),
    ]
}

/// Applies `edits` to `seed`; positions wrap around the current length.
pub fn mutate(seed: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for edit in edits {
        let len = data.len();
        match *edit {
            Mutation::Set(at, b) if len > 0 => data[at % len] = b,
            Mutation::Set(..) => data.push(0),
            Mutation::Insert(at, b) => data.insert(at % (len + 1), b),
            Mutation::Remove(at, n) if len > 0 => {
                let start = at % len;
                data.drain(start..(start + n).min(len));
            }
            Mutation::Remove(..) => {}
            Mutation::Duplicate(from, to, n) if len > 0 => {
                let start = from % len;
                let piece = data[start..(start + n).min(len)].to_vec();
                let at = to % (len + 1);
                data.splice(at..at, piece);
            }
            Mutation::Duplicate(..) => {}
            Mutation::Token(at, token) => {
                let at = at % (len + 1);
                data.splice(at..at, token.bytes());
            }
        }
    }
    data
}

/// A seed of `target`'s corpus with up to 8 edits applied.
pub fn mutated(target: &str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = seeds(target).into_iter().map(|(_, s)| s).collect();
    (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 0..8),
    )
        .prop_map(|(seed, edits)| mutate(&seed, &edits))
}

/// Names of a pod's fields, so that arbitrary JSON often lands on a path the
/// code under test reads; `others` follow them.
fn with_pod_fields(others: &[&'static str]) -> Vec<&'static str> {
    let pod_fields = ["metadata", "spec", "containers", "name", "image", "ports"];
    pod_fields.iter().chain(others).copied().collect()
}

/// Arbitrary JSON, at most four levels deep and about 64 values.
pub fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z$/:._-]{0,12}".prop_map(Value::String),
        prop::sample::select(with_pod_fields(&[
            "$patch",
            "replace",
            "delete",
            "merge",
            "labels",
            "0",
            "-",
            "/spec/containers/0",
        ]))
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(with_pod_fields(&[
                    "op",
                    "path",
                    "value",
                    "from",
                    "$patch",
                    "$retainKeys",
                    "labels",
                    "env",
                    "containerPort",
                    "volumes",
                    "status",
                    "kind",
                    "apiVersion",
                    "a",
                    "b",
                ])),
                inner,
                0..6,
            )
            .prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

#[test]
fn mutations_stay_within_the_input() {
    let seed = b"{\"a\":1}";
    let edits = [
        Mutation::Remove(3, 1000),
        Mutation::Duplicate(usize::MAX, 0, 5),
        Mutation::Set(usize::MAX, b'x'),
        Mutation::Token(2, "null"),
    ];
    let out = mutate(seed, &edits);
    assert!(!out.is_empty());
    assert_eq!(mutate(b"", &[Mutation::Remove(0, 4)]), b"");
}
