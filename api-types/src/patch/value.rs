//! JSON value helpers shared by the patch formats.

use serde_json::{Number, Value};

/// JSON equality as the RFCs mean it: numbers compare by value (`1` equals
/// `1.0`), objects regardless of key order.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    #[cfg(test)]
    COMPARISONS.with(|c| c.set(c.get() + 1));
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_equal(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_equal(v, w))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
thread_local! {
    /// How many times this thread called [`json_equal`]: tests count the
    /// work a patch does instead of timing it.
    pub(crate) static COMPARISONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A hash consistent with [`json_equal`]: equal values hash alike (numbers
/// by their `f64` value), so a hash map can stand for a scan. Maps and
/// lists all share one hash: they are told apart by [`json_equal`] alone.
pub(crate) fn json_hash(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match value {
        Value::Null => 0u8.hash(&mut hasher),
        Value::Bool(b) => (1u8, b).hash(&mut hasher),
        Value::Number(n) => {
            // -0.0 == 0.0 but their bits differ.
            let bits = n.as_f64().filter(|f| *f != 0.0).map_or(0, f64::to_bits);
            (2u8, bits).hash(&mut hasher);
        }
        Value::String(s) => (3u8, s).hash(&mut hasher),
        Value::Array(_) | Value::Object(_) => 4u8.hash(&mut hasher),
    }
    hasher.finish()
}

fn numbers_equal(x: &Number, y: &Number) -> bool {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    match (x.as_f64(), y.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Escapes one JSON pointer reference token (`~` → `~0`, `/` → `~1`).
pub(crate) fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A JSON pointer being built while walking a document.
#[derive(Debug, Default)]
pub(crate) struct Pointer(Vec<String>);

impl Pointer {
    /// Descends into `token` (a key or an index).
    pub(crate) fn push(&mut self, token: impl AsRef<str>) {
        self.0.push(escape_token(token.as_ref()));
    }

    /// Goes back up one level.
    pub(crate) fn pop(&mut self) {
        self.0.pop();
    }

    /// The pointer as a string (`/spec/containers/0`; empty at the root).
    pub(crate) fn render(&self) -> String {
        self.0.iter().fold(String::new(), |mut s, t| {
            s.push('/');
            s.push_str(t);
            s
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_compare_by_value_and_objects_ignore_key_order() {
        assert!(json_equal(&json!(1), &json!(1.0)));
        assert!(!json_equal(&json!(1), &json!(1.5)));
        assert!(!json_equal(&json!(1), &json!("1")));
        assert!(json_equal(
            &json!({"a": 1, "b": [2]}),
            &json!({"b": [2.0], "a": 1})
        ));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_equal(&json!([1, 2]), &json!([2, 1])));
    }

    #[test]
    fn pointers_escape_their_tokens() {
        let mut p = Pointer::default();
        assert_eq!(p.render(), "");
        p.push("metadata");
        p.push("annotations");
        p.push("a/b~c");
        assert_eq!(p.render(), "/metadata/annotations/a~1b~0c");
        p.pop();
        assert_eq!(p.render(), "/metadata/annotations");
    }
}
