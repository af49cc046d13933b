//! RFC 6902 JSON patch.

use serde_json::Value;

use super::error::{JsonPatchFailure, PatchError};
use super::value::json_equal;

/// The most operations one JSON patch may have, as Kubernetes'
/// `maxJSONPatchOperations`.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes (of JSON) the `copy` operations of one patch may add
/// together, as Kubernetes' `JSONPatchMaxCopyBytes` (3 MiB, the largest
/// request body).
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Applies an RFC 6902 JSON patch (`add`, `remove`, `replace`, `move`,
/// `copy`, `test`) to `target`.
///
/// All or nothing: if any operation fails, `target` is left as it was. As in
/// Kubernetes, a negative array index counts from the end (`-1` is the last
/// element; for `add`, `-1` appends like `-`).
///
/// # Errors
///
/// [`PatchError::JsonPatchNotArray`] or [`PatchError::MalformedOperation`]
/// for a malformed patch (checked before anything is applied),
/// [`PatchError::TooManyOperations`] past [`MAX_JSON_PATCH_OPERATIONS`], and
/// [`PatchError::OperationFailed`] naming the operation's index, op and path
/// for one that cannot be applied (a missing path, a failed `test`, copies
/// adding more than [`MAX_JSON_PATCH_COPY_BYTES`]...).
pub fn apply_json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = patch.as_array().ok_or(PatchError::JsonPatchNotArray)?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            got: ops.len(),
        });
    }
    let ops = ops
        .iter()
        .enumerate()
        .map(|(index, op)| Operation::parse(index, op))
        .collect::<Result<Vec<_>, _>>()?;
    let mut doc = target.clone();
    let mut copy_budget = MAX_JSON_PATCH_COPY_BYTES;
    for op in &ops {
        op.apply(&mut doc, &mut copy_budget)?;
    }
    *target = doc;
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Replace => "replace",
            Self::Move => "move",
            Self::Copy => "copy",
            Self::Test => "test",
        }
    }
}

/// One parsed operation.
struct Operation<'a> {
    index: usize,
    op: Op,
    path: &'a str,
    tokens: Vec<String>,
    /// `from` of move and copy, as written and parsed.
    from: Option<(&'a str, Vec<String>)>,
    /// `value` of add, replace and test (`null` is a value).
    value: Option<&'a Value>,
}

impl<'a> Operation<'a> {
    fn parse(index: usize, raw: &'a Value) -> Result<Self, PatchError> {
        let malformed = |reason: String| PatchError::MalformedOperation { index, reason };
        let obj = raw
            .as_object()
            .ok_or_else(|| malformed("an operation must be an object".into()))?;
        let string = |field: &str| -> Result<&'a str, PatchError> {
            match obj.get(field) {
                Some(Value::String(s)) => Ok(s),
                Some(_) => Err(malformed(format!("{field:?} must be a string"))),
                None => Err(malformed(format!("missing {field:?}"))),
            }
        };
        let op = match string("op")? {
            "add" => Op::Add,
            "remove" => Op::Remove,
            "replace" => Op::Replace,
            "move" => Op::Move,
            "copy" => Op::Copy,
            "test" => Op::Test,
            other => return Err(malformed(format!("unknown op {other:?}"))),
        };
        let path = string("path")?;
        let tokens = parse_pointer(path).map_err(|r| malformed(format!("\"path\" {r}")))?;
        let from = match op {
            Op::Move | Op::Copy => {
                let from = string("from")?;
                let tokens = parse_pointer(from).map_err(|r| malformed(format!("\"from\" {r}")))?;
                Some((from, tokens))
            }
            _ => None,
        };
        let value = match op {
            Op::Add | Op::Replace | Op::Test => Some(
                obj.get("value")
                    .ok_or_else(|| malformed(format!("missing \"value\" for {}", op.name())))?,
            ),
            _ => None,
        };
        Ok(Self {
            index,
            op,
            path,
            tokens,
            from,
            value,
        })
    }

    fn fail(&self, failure: JsonPatchFailure) -> PatchError {
        PatchError::OperationFailed {
            index: self.index,
            op: self.op.name(),
            path: self.path.to_owned(),
            failure,
        }
    }

    fn apply(&self, doc: &mut Value, copy_budget: &mut usize) -> Result<(), PatchError> {
        let value = || self.value.cloned().unwrap_or(Value::Null);
        match self.op {
            Op::Add => add(doc, &self.tokens, value()),
            Op::Remove => remove(doc, &self.tokens).map(drop),
            Op::Replace => get_mut(doc, &self.tokens).map(|slot| *slot = value()),
            Op::Test => get_mut(doc, &self.tokens).and_then(|found| {
                if json_equal(found, &value()) {
                    Ok(())
                } else {
                    Err(JsonPatchFailure::TestFailed)
                }
            }),
            Op::Move | Op::Copy => return self.move_or_copy(doc, copy_budget),
        }
        .map_err(|f| self.fail(f))
    }

    fn move_or_copy(&self, doc: &mut Value, copy_budget: &mut usize) -> Result<(), PatchError> {
        let Some((from, from_tokens)) = &self.from else {
            return Ok(());
        };
        let from_failure = |f: JsonPatchFailure| match f {
            JsonPatchFailure::PathNotFound => JsonPatchFailure::FromNotFound((*from).to_owned()),
            other => other,
        };
        let moved = if self.op == Op::Move {
            if from_tokens == &self.tokens {
                // Moving a value onto itself changes nothing, but it must exist.
                return get_mut(doc, from_tokens)
                    .map(drop)
                    .map_err(|f| self.fail(from_failure(f)));
            }
            if self.tokens.starts_with(from_tokens) {
                return Err(self.fail(JsonPatchFailure::MoveIntoItself));
            }
            remove(doc, from_tokens)
        } else {
            get_mut(doc, from_tokens).and_then(|v| {
                // Measured before cloning, so a doubling copy stops here.
                let size = json_size(v, *copy_budget).ok_or(JsonPatchFailure::CopyLimit {
                    limit: MAX_JSON_PATCH_COPY_BYTES,
                })?;
                *copy_budget -= size;
                Ok(v.clone())
            })
        }
        .map_err(|f| self.fail(from_failure(f)))?;
        add(doc, &self.tokens, moved).map_err(|f| self.fail(f))
    }
}

/// The size of `value` written as compact JSON (strings counted without
/// escapes), or `None` once it passes `limit`: the walk stops there, so
/// measuring costs no more than the limit.
fn json_size(value: &Value, limit: usize) -> Option<usize> {
    fn walk(value: &Value, total: &mut usize, limit: usize) -> Option<()> {
        let own = match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(n) => n.to_string().len(),
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                for item in items {
                    walk(item, total, limit)?;
                }
                items.len() + 1
            }
            Value::Object(map) => {
                for (key, item) in map {
                    *total += key.len() + 3;
                    walk(item, total, limit)?;
                }
                map.len() + 1
            }
        };
        *total += own;
        (*total <= limit).then_some(())
    }
    let mut total = 0;
    walk(value, &mut total, limit)?;
    Some(total)
}

/// Splits an RFC 6901 JSON pointer into unescaped reference tokens.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "{pointer:?} is not a json pointer: it must start with '/'"
        ));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => {
                        return Err(format!(
                            "{pointer:?} is not a json pointer: '~' must be followed by 0 or 1"
                        ))
                    }
                }
            }
            Ok(out)
        })
        .collect()
}

/// The position `token` names in an array of `len` elements; `insert` allows
/// the position just past the end (`-`, or `len`).
fn array_index(token: &str, len: usize, insert: bool) -> Result<usize, JsonPatchFailure> {
    let invalid = || JsonPatchFailure::InvalidIndex(token.to_owned());
    if token == "-" {
        return if insert { Ok(len) } else { Err(invalid()) };
    }
    let digits = token.strip_prefix('-').unwrap_or(token);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return Err(invalid());
    }
    let index: i64 = token.parse().map_err(|_| invalid())?;
    let size = if insert { len + 1 } else { len };
    let size_i = i64::try_from(size).map_err(|_| invalid())?;
    let resolved = if index < 0 { index + size_i } else { index };
    if (0..size_i).contains(&resolved) {
        usize::try_from(resolved).map_err(|_| invalid())
    } else {
        Err(JsonPatchFailure::IndexOutOfBounds { index, len })
    }
}

fn child_mut<'v>(value: &'v mut Value, token: &str) -> Result<&'v mut Value, JsonPatchFailure> {
    match value {
        Value::Object(map) => map.get_mut(token).ok_or(JsonPatchFailure::PathNotFound),
        Value::Array(items) => {
            let i = array_index(token, items.len(), false)?;
            items.get_mut(i).ok_or(JsonPatchFailure::PathNotFound)
        }
        _ => Err(JsonPatchFailure::NotAContainer),
    }
}

fn get_mut<'v>(doc: &'v mut Value, tokens: &[String]) -> Result<&'v mut Value, JsonPatchFailure> {
    tokens.iter().try_fold(doc, |v, t| child_mut(v, t))
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), JsonPatchFailure> {
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parents)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let i = array_index(last, items.len(), true)?;
            items.insert(i, value);
            Ok(())
        }
        _ => Err(JsonPatchFailure::NotAContainer),
    }
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, JsonPatchFailure> {
    let Some((last, parents)) = tokens.split_last() else {
        return Err(JsonPatchFailure::RemoveRoot);
    };
    match get_mut(doc, parents)? {
        Value::Object(map) => map.shift_remove(last).ok_or(JsonPatchFailure::PathNotFound),
        Value::Array(items) => {
            let i = array_index(last, items.len(), false)?;
            Ok(items.remove(i))
        }
        _ => Err(JsonPatchFailure::NotAContainer),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(mut doc: Value, patch: Value) -> Result<Value, PatchError> {
        apply_json_patch(&mut doc, &patch).map(|()| doc)
    }

    fn ok(doc: Value, patch: Value) -> Value {
        match patched(doc, patch) {
            Ok(v) => v,
            Err(e) => panic!("patch failed: {e}"),
        }
    }

    fn err(doc: Value, patch: Value) -> String {
        match patched(doc, patch) {
            Ok(v) => panic!("patch succeeded: {v}"),
            Err(e) => e.to_string(),
        }
    }

    // RFC 6902, appendix A.
    #[test]
    fn rfc_examples_that_succeed() {
        assert_eq!(
            ok(
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux"}])
            ),
            json!({"baz": "qux", "foo": "bar"})
        );
        assert_eq!(
            ok(
                json!({"foo": ["bar", "baz"]}),
                json!([{"op": "add", "path": "/foo/1", "value": "qux"}])
            ),
            json!({"foo": ["bar", "qux", "baz"]})
        );
        assert_eq!(
            ok(
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "remove", "path": "/baz"}])
            ),
            json!({"foo": "bar"})
        );
        assert_eq!(
            ok(
                json!({"foo": ["bar", "qux", "baz"]}),
                json!([{"op": "remove", "path": "/foo/1"}])
            ),
            json!({"foo": ["bar", "baz"]})
        );
        assert_eq!(
            ok(
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "replace", "path": "/baz", "value": "boo"}])
            ),
            json!({"baz": "boo", "foo": "bar"})
        );
        assert_eq!(
            ok(
                json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
                json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}])
            ),
            json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}})
        );
        assert_eq!(
            ok(
                json!({"foo": ["all", "grass", "cows", "eat"]}),
                json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}])
            ),
            json!({"foo": ["all", "cows", "eat", "grass"]})
        );
        assert_eq!(
            ok(
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
                json!([
                    {"op": "test", "path": "/baz", "value": "qux"},
                    {"op": "test", "path": "/foo/1", "value": 2}
                ])
            ),
            json!({"baz": "qux", "foo": ["a", 2, "c"]})
        );
        assert_eq!(
            ok(
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}])
            ),
            json!({"foo": "bar", "child": {"grandchild": {}}})
        );
        assert_eq!(
            ok(
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/foo", "value": "bar", "xyz": 123}])
            ),
            json!({"foo": "bar"})
        );
        assert_eq!(
            ok(
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": 10}])
            ),
            json!({"/": 9, "~1": 10})
        );
        assert_eq!(
            ok(
                json!({"foo": ["bar"]}),
                json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}])
            ),
            json!({"foo": ["bar", ["abc", "def"]]})
        );
    }

    #[test]
    fn rfc_examples_that_fail() {
        assert_eq!(
            err(
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz/bat", "value": "qux"}])
            ),
            "json patch operation 0 (add) at /baz/bat: path not found"
        );
        assert_eq!(
            err(
                json!({"baz": "qux"}),
                json!([{"op": "test", "path": "/baz", "value": "bar"}])
            ),
            "json patch operation 0 (test) at /baz: test failed: the value differs"
        );
        assert_eq!(
            err(
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": "10"}])
            ),
            "json patch operation 0 (test) at /~01: test failed: the value differs"
        );
    }

    #[test]
    fn failures_name_the_operation_index_and_path() {
        let doc = json!({"spec": {"replicas": 1}});
        assert_eq!(
            err(
                doc.clone(),
                json!([
                    {"op": "add", "path": "/spec/a", "value": 1},
                    {"op": "replace", "path": "/spec/replicas", "value": 2},
                    {"op": "remove", "path": "/spec/foo"}
                ])
            ),
            "json patch operation 2 (remove) at /spec/foo: path not found"
        );
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "replace", "path": "/spec/x", "value": 1}])
            ),
            "json patch operation 0 (replace) at /spec/x: path not found"
        );
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "copy", "from": "/nope", "path": "/x"}])
            ),
            "json patch operation 0 (copy) at /x: from path /nope not found"
        );
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}])
            ),
            "json patch operation 0 (move) at /spec/inner: cannot move a value into itself"
        );
        assert_eq!(
            err(doc.clone(), json!([{"op": "add", "path": "/spec/replicas/x", "value": 1}])),
            "json patch operation 0 (add) at /spec/replicas/x: path goes through a value that is not an object or array"
        );
        assert_eq!(
            err(doc, json!([{"op": "remove", "path": ""}])),
            "json patch operation 0 (remove) at the document root: cannot remove the whole document"
        );
    }

    #[test]
    fn a_failing_patch_changes_nothing() {
        let mut doc = json!({"a": 1});
        let result = apply_json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/b", "value": 2},
                {"op": "remove", "path": "/c"}
            ]),
        );
        assert!(result.is_err());
        assert_eq!(doc, json!({"a": 1}));
    }

    #[test]
    fn array_indexes() {
        let doc = json!({"l": [1, 2, 3]});
        assert_eq!(
            ok(
                doc.clone(),
                json!([{"op": "add", "path": "/l/3", "value": 4}])
            ),
            json!({"l": [1, 2, 3, 4]})
        );
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "add", "path": "/l/5", "value": 4}])
            ),
            "json patch operation 0 (add) at /l/5: array index 5 out of bounds (length 3)"
        );
        assert_eq!(
            err(doc.clone(), json!([{"op": "remove", "path": "/l/3"}])),
            "json patch operation 0 (remove) at /l/3: array index 3 out of bounds (length 3)"
        );
        assert_eq!(
            err(
                doc.clone(),
                json!([{"op": "replace", "path": "/l/01", "value": 0}])
            ),
            "json patch operation 0 (replace) at /l/01: invalid array index \"01\""
        );
        assert_eq!(
            err(doc.clone(), json!([{"op": "remove", "path": "/l/-"}])),
            "json patch operation 0 (remove) at /l/-: invalid array index \"-\""
        );
        // Kubernetes' negative indexes count from the end.
        assert_eq!(
            ok(doc.clone(), json!([{"op": "remove", "path": "/l/-1"}])),
            json!({"l": [1, 2]})
        );
        assert_eq!(
            ok(
                doc.clone(),
                json!([{"op": "add", "path": "/l/-1", "value": 9}])
            ),
            json!({"l": [1, 2, 3, 9]})
        );
        assert_eq!(
            err(doc, json!([{"op": "remove", "path": "/l/-4"}])),
            "json patch operation 0 (remove) at /l/-4: array index -4 out of bounds (length 3)"
        );
    }

    #[test]
    fn add_replace_copy_and_test_whole_values() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "n": 1});
        assert_eq!(
            ok(
                doc.clone(),
                json!([{"op": "add", "path": "", "value": [1]}])
            ),
            json!([1])
        );
        assert_eq!(
            ok(
                doc.clone(),
                json!([{"op": "add", "path": "/metadata/labels/a", "value": "2"}])
            ),
            json!({"metadata": {"labels": {"a": "2"}}, "n": 1})
        );
        assert_eq!(
            ok(
                doc.clone(),
                json!([
                    {"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"},
                    {"op": "add", "path": "/metadata/annotations/b", "value": null},
                    {"op": "test", "path": "/n", "value": 1.0},
                    {"op": "test", "path": "/metadata/annotations", "value": {"b": null, "a": "1"}}
                ])
            ),
            json!({"metadata": {"labels": {"a": "1"}, "annotations": {"a": "1", "b": null}}, "n": 1})
        );
        assert_eq!(
            ok(
                doc.clone(),
                json!([{"op": "move", "from": "/n", "path": "/n"}])
            ),
            doc
        );
        // label keys with a slash, as kubectl label --type=json users write them
        assert_eq!(
            ok(
                doc,
                json!([{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "x"}])
            ),
            json!({"metadata": {"labels": {"a": "1", "app.kubernetes.io/name": "x"}}, "n": 1})
        );
    }

    #[test]
    fn malformed_patches_are_refused_before_anything_is_applied() {
        let doc = json!({"a": 1});
        let cases = [
            (json!({"op": "add"}), "json patch must be an array of operations"),
            (json!([1]), "json patch operation 0: an operation must be an object"),
            (json!([{"path": "/a"}]), "json patch operation 0: missing \"op\""),
            (
                json!([{"op": "frobnicate", "path": "/a"}]),
                "json patch operation 0: unknown op \"frobnicate\"",
            ),
            (json!([{"op": "remove"}]), "json patch operation 0: missing \"path\""),
            (
                json!([{"op": "remove", "path": 3}]),
                "json patch operation 0: \"path\" must be a string",
            ),
            (
                json!([{"op": "remove", "path": "/a"}, {"op": "add", "path": "/b"}]),
                "json patch operation 1: missing \"value\" for add",
            ),
            (
                json!([{"op": "move", "path": "/b"}]),
                "json patch operation 0: missing \"from\"",
            ),
            (
                json!([{"op": "remove", "path": "a"}]),
                "json patch operation 0: \"path\" \"a\" is not a json pointer: it must start with '/'",
            ),
            (
                json!([{"op": "remove", "path": "/a~2"}]),
                "json patch operation 0: \"path\" \"/a~2\" is not a json pointer: '~' must be followed by 0 or 1",
            ),
        ];
        for (patch, want) in cases {
            let mut target = doc.clone();
            let e = apply_json_patch(&mut target, &patch).expect_err("malformed patch");
            assert!(e.is_malformed(), "{e}");
            assert_eq!(e.to_string(), want);
            assert_eq!(target, doc);
        }
    }

    #[test]
    fn a_patch_has_at_most_10000_operations() {
        let test = json!({"op": "test", "path": "/a", "value": 1});
        let doc = json!({"a": 1});
        assert_eq!(
            patched(doc.clone(), Value::Array(vec![test.clone(); 10_000])),
            Ok(doc.clone())
        );
        let e = patched(doc, Value::Array(vec![test; 10_001])).unwrap_err();
        assert_eq!(
            e,
            PatchError::TooManyOperations {
                max: 10_000,
                got: 10_001
            }
        );
        assert!(e.is_malformed());
    }

    #[test]
    fn doubling_copies_stop_at_the_copy_limit() {
        let doc = json!({"a": {"seed": "x".repeat(1024)}});
        let doubling: Vec<Value> = (0..40)
            .map(|i| json!({"op": "copy", "from": "/a", "path": format!("/a/c{i}")}))
            .collect();
        let e = patched(doc.clone(), Value::Array(doubling)).unwrap_err();
        // 1 KiB doubled: the 12th copy would pass 3 MiB in total.
        match &e {
            PatchError::OperationFailed { index, failure, .. } => {
                assert_eq!(*failure, JsonPatchFailure::CopyLimit { limit: 3 << 20 });
                assert!((10..=12).contains(index), "{e}");
            }
            other => panic!("{other}"),
        }
        assert!(!e.is_malformed());
        // Moves cost nothing, and small copies stay under the limit.
        let moves = json!([{"op": "move", "from": "/a", "path": "/b"},
                           {"op": "copy", "from": "/b", "path": "/c"}]);
        assert!(patched(doc, moves).is_ok());
        // `{"ab":[1,null,"x"]}` is 19 bytes; the count errs a little high.
        assert_eq!(json_size(&json!({"ab": [1, null, "x"]}), 100), Some(20));
        assert_eq!(json_size(&json!({"ab": [1, null, "x"]}), 10), None);
    }
}
