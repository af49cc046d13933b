//! YAML as mini-k8s reads and writes it everywhere (manifests, kubeconfigs,
//! `-o yaml`, static pods): serde-saphyr with YAML 1.2 scalars, so a file
//! reads as it did through the deprecated `serde_yaml` and as kubectl's
//! `sigs.k8s.io/yaml` reads it.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use serde_saphyr::{Error, SerializeError};

/// The reading rules: YAML 1.2 scalars (`yes`, `010` and `1_000` are
/// strings), a repeated key's last value wins (as in a JSON object), errors
/// without a snippet of the input. Budgets are serde-saphyr's defaults; a
/// server reading untrusted bodies sets its own on top.
pub fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.strict_booleans = true;
    options.leading_zero_numbers_as_strings = true;
    options.underscored_numbers_as_strings = true;
    options.with_snippet = false;
    options
}

/// One YAML document.
///
/// # Errors
///
/// Text that is not YAML, or not a `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_saphyr::from_str_with_options(text, options())
}

/// One YAML document, from bytes (UTF-8).
///
/// # Errors
///
/// Bytes that are not YAML, or not a `T`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_saphyr::from_slice_with_options(bytes, options())
}

/// Every document of a `---`-separated stream, empty and `null` ones left
/// out (a trailing `---` is no object).
///
/// # Errors
///
/// The first document that is not YAML, or not a `T`.
pub fn from_multiple<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, Error> {
    serde_saphyr::from_multiple_with_options(text, options())
}

/// `value` as a YAML document, block style, strings quoted only where YAML
/// would read them as something else (`"123"`, `"true"`), as kubectl prints.
///
/// # Errors
///
/// A value YAML cannot hold (a map with non-string keys is fine; serde
/// errors of `T`'s own `Serialize` are passed on).
pub fn to_string<T: Serialize>(value: &T) -> Result<String, SerializeError> {
    serde_saphyr::to_string(value)
}

/// A parse error in one line, what and where: `message at line L column C`.
pub fn error_line(error: &Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or("").trim().to_string();
    match error.location() {
        Some(at) if !first.contains("line") => {
            format!("{first} at line {} column {}", at.line(), at.column())
        }
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn scalars_read_as_yaml_1_2() {
        let value: Value = from_str("a: yes\nb: 010\nc: 1_000\nd: true\ne: 10\nf: ~\n").unwrap();
        assert_eq!(
            value,
            json!({"a": "yes", "b": "010", "c": "1_000", "d": true, "e": 10, "f": null})
        );
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let value: Value = from_str("a: 1\na: 2\n").unwrap();
        assert_eq!(value, json!({"a": 2}));
    }

    #[test]
    fn empty_documents_are_left_out() {
        let docs: Vec<Value> = from_multiple("---\na: 1\n---\n---\nb: 2\n---\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": 2})]);
    }

    #[test]
    fn output_quotes_what_would_read_back_as_another_type() {
        let value = json!({"rv": "123", "ok": "True", "t": "2026-12-06T10:00:00Z",
                           "list": ["a", 1], "empty": {}, "text": "one\ntwo\n"});
        let text = to_string(&value).unwrap();
        assert_eq!(
            text,
            "rv: \"123\"\nok: \"True\"\nt: \"2026-12-06T10:00:00Z\"\nlist:\n- a\n- 1\n\
             empty: {}\ntext: |\n  one\n  two\n"
        );
        assert_eq!(from_str::<Value>(&text).unwrap(), value);
    }

    #[test]
    fn errors_fit_on_one_line_with_their_place() {
        let error = from_str::<Value>("a: b\n  c: d\n").unwrap_err();
        let line = error_line(&error);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("line 2"), "{line}");
    }
}
