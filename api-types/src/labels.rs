//! Label selectors: parsing (`a=b,c!=d,e in (x,y),!f`) and matching.
//!
//! The grammar, the lexer, the validation of keys and values and the
//! matching rules are Kubernetes' own (`k8s.io/apimachinery/pkg/labels`), so
//! `?labelSelector=` behaves as users of `kubectl -l` expect:
//!
//! ```text
//! <selector>    ::= <requirement> | <requirement> "," <selector>
//! <requirement> ::= [!] KEY [ <set-based> | <exact> | <ordering> ]
//! <set-based>   ::= ("in" | "notin") "(" VALUE { "," VALUE } ")"
//! <exact>       ::= ("=" | "==" | "!=") VALUE
//! <ordering>    ::= (">" | "<") INTEGER
//! ```
//!
//! Whitespace (space, tab, CR, LF) may surround every token; `KEY` is a
//! qualified name (an optional DNS-subdomain prefix and `/`, then a name of at
//! most 63 characters); `VALUE` is a label value (at most 63 characters,
//! alphanumeric at both ends, `-_.` inside) and may be empty.
//!
//! [`SelectorError`] also serves the field selectors of [`crate::fields`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Why a label or field selector was rejected.
///
/// Every error is the caller's: the same input always fails the same way, so
/// none is retryable. The apiserver answers them with `400 BadRequest` and
/// this message. Positions are 0-based byte offsets into the selector text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector does not follow the grammar.
    #[error(
        "{}found '{found}', expected: {expected} (at position {position})",
        requirement_prefix(.in_requirement)
    )]
    Syntax {
        /// Byte offset of the offending token.
        position: usize,
        /// The token found there (`end of string` at the end).
        found: String,
        /// What the grammar allows there.
        expected: String,
        /// Whether the error is inside one requirement (the message then
        /// starts with `unable to parse requirement: `, as Kubernetes' does).
        in_requirement: bool,
    },
    /// A label key is not a qualified name.
    #[error("invalid label key \"{key}\": {reason}{}", at(.position))]
    InvalidKey {
        /// The key as written.
        key: String,
        /// Why it is invalid.
        reason: String,
        /// Where it starts, when it came from selector text.
        position: Option<usize>,
    },
    /// A label value is not a valid label value.
    #[error("invalid label value \"{value}\" for key \"{key}\": {reason}{}", at(.position))]
    InvalidValue {
        /// The requirement's key.
        key: String,
        /// The value as written.
        value: String,
        /// Why it is invalid.
        reason: String,
        /// Where it starts, when it came from selector text.
        position: Option<usize>,
    },
    /// The values do not suit the operator (`in` with none, `>` with a
    /// non-integer...).
    #[error("invalid requirement for label key \"{key}\": {reason}{}", at(.position))]
    InvalidRequirement {
        /// The requirement's key.
        key: String,
        /// What is wrong.
        reason: String,
        /// Where the offending value starts, when it came from selector text.
        position: Option<usize>,
    },
    /// A `LabelSelector` expression names an operator other than `In`,
    /// `NotIn`, `Exists` and `DoesNotExist`.
    #[error("\"{0}\" is not a valid label selector operator")]
    UnknownOperator(String),
    /// A field selector term has no `=`, `==` or `!=`.
    #[error(
        "invalid field selector: '{selector}'; can't understand '{term}' (at position {position})"
    )]
    FieldTerm {
        /// The whole selector.
        selector: String,
        /// The term that has no operator.
        term: String,
        /// Byte offset of the term.
        position: usize,
    },
    /// A field selector value has a backslash not followed by `\`, `,` or `=`.
    #[error(
        "invalid field selector: invalid escape sequence: {sequence} (at position {position})"
    )]
    InvalidEscape {
        /// The sequence (`\x`, or a lone `\` at the end).
        sequence: String,
        /// Byte offset of the backslash.
        position: usize,
    },
    /// A field selector value has an unescaped `,` or `=`.
    #[error("invalid field selector: unescaped character in value: '{character}' (at position {position})")]
    UnescapedCharacter {
        /// The character (`=`, or `,` in a value given on its own).
        character: char,
        /// Byte offset of the character.
        position: usize,
    },
    /// A field selector names a field the resource cannot be selected by.
    /// The message is Kubernetes' own.
    #[error("field label not supported: {field}")]
    UnsupportedField {
        /// The field as the client wrote it.
        field: String,
    },
}

fn requirement_prefix(in_requirement: &bool) -> &'static str {
    if *in_requirement {
        "unable to parse requirement: "
    } else {
        ""
    }
}

/// Formats an optional position as ` (at position N)`.
struct At(Option<usize>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, " (at position {p})"),
            None => Ok(()),
        }
    }
}

fn at(position: &Option<usize>) -> At {
    At(*position)
}

// ---------------------------------------------------------------------------
// Validation of keys and values
// ---------------------------------------------------------------------------

/// Longest name part of a qualified name, and longest label value.
const MAX_NAME_LENGTH: usize = 63;
/// Longest DNS subdomain (the prefix of a qualified name).
const MAX_SUBDOMAIN_LENGTH: usize = 253;

const QUALIFIED_NAME_MESSAGE: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')";
const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
     (e.g. 'example.com')";
const LABEL_VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of \
     alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
     character (e.g. 'MyValue', 'my_value' or '12345')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the name part of a qualified
/// name, and a non-empty label value.
fn is_alphanumeric_name(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`.
fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
            match (b.first(), b.last()) {
                (Some(first), Some(last)) => {
                    lower_alnum(first)
                        && lower_alnum(last)
                        && b.iter().all(|c| lower_alnum(c) || *c == b'-')
                }
                _ => false,
            }
        })
}

/// Everything wrong with `key` as a qualified name (a label or annotation
/// key): an optional DNS-subdomain prefix (at most 253 characters) and `/`,
/// then a name of at most 63 characters that starts and ends with an
/// alphanumeric character and has only alphanumerics, `-`, `_` and `.`.
///
/// Empty when the key is valid. The messages are Kubernetes'
/// (`IsQualifiedName`), without its regular expressions.
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut parts = key.split('/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, None) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MESSAGE} with an optional DNS subdomain \
                 prefix and '/' (e.g. 'example.com/MyName')"
            )]
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errors.push("prefix part must be non-empty".to_owned());
        } else {
            if prefix.len() > MAX_SUBDOMAIN_LENGTH {
                errors.push(format!(
                    "prefix part must be no more than {MAX_SUBDOMAIN_LENGTH} characters"
                ));
            }
            if !is_dns1123_subdomain(prefix) {
                errors.push(format!("prefix part {SUBDOMAIN_MESSAGE}"));
            }
        }
    }
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else {
        if name.len() > MAX_NAME_LENGTH {
            errors.push(format!(
                "name part must be no more than {MAX_NAME_LENGTH} characters"
            ));
        }
        if !is_alphanumeric_name(name) {
            errors.push(format!("name part {QUALIFIED_NAME_MESSAGE}"));
        }
    }
    errors
}

/// Everything wrong with `value` as a label value: at most 63 characters,
/// empty or alphanumeric at both ends with only alphanumerics, `-`, `_` and
/// `.` inside. Empty when the value is valid (Kubernetes'
/// `IsValidLabelValue`).
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > MAX_NAME_LENGTH {
        errors.push(format!("must be no more than {MAX_NAME_LENGTH} characters"));
    }
    if !value.is_empty() && !is_alphanumeric_name(value) {
        errors.push(LABEL_VALUE_MESSAGE.to_owned());
    }
    errors
}

fn validate_key(key: &str, position: Option<usize>) -> Result<(), SelectorError> {
    let errors = qualified_name_errors(key);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SelectorError::InvalidKey {
            key: key.to_owned(),
            reason: errors.join("; "),
            position,
        })
    }
}

// ---------------------------------------------------------------------------
// Requirements
// ---------------------------------------------------------------------------

/// How a [`Requirement`] relates its key and values.
///
/// `=` and `==` are one operator: Kubernetes treats them alike, and keeping
/// one spelling makes equal selectors compare equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// `key=value` or `key==value`: the label is present with that value.
    Equals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`: the label is present with one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>5`: the label is present, an integer, and greater.
    GreaterThan,
    /// `key<5`: the label is present, an integer, and smaller.
    LessThan,
}

impl Operator {
    /// Kubernetes' name of the operator (`=`, `!=`, `in`, `notin`, `exists`,
    /// `!`, `gt`, `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "=",
            Self::NotEquals => "!=",
            Self::In => "in",
            Self::NotIn => "notin",
            Self::Exists => "exists",
            Self::DoesNotExist => "!",
            Self::GreaterThan => "gt",
            Self::LessThan => "lt",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One condition on one label key; a [`Selector`] is the AND of several.
///
/// Built only by [`Requirement::new`] or by parsing, so it is always valid:
/// `in`/`notin` have at least one value (sorted, without duplicates),
/// `=`/`!=`/`>`/`<` exactly one, exists/does-not-exist none. The one
/// exception is [`Selector::from_map`], which trusts its map (see there).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// A validated requirement.
    ///
    /// # Errors
    ///
    /// [`SelectorError::InvalidKey`] if `key` is not a qualified name,
    /// [`SelectorError::InvalidRequirement`] if the number of values does
    /// not suit the operator (or `>`/`<` has a non-integer), and
    /// [`SelectorError::InvalidValue`] if a value is not a label value.
    pub fn new<I, V>(key: &str, operator: Operator, values: I) -> Result<Self, SelectorError>
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        validate_key(key, None)?;
        let values = values.into_iter().map(|v| (v.into(), None)).collect();
        Self::build(key, operator, values)
    }

    /// Checks the values against the operator (the key is already checked)
    /// and builds the requirement. Values carry their position in the
    /// selector text, if any, for error messages.
    fn build(
        key: &str,
        operator: Operator,
        values: Vec<(String, Option<usize>)>,
    ) -> Result<Self, SelectorError> {
        let invalid = |reason: &str, position: Option<usize>| SelectorError::InvalidRequirement {
            key: key.to_owned(),
            reason: reason.to_owned(),
            position,
        };
        let first_position = values.first().and_then(|(_, p)| *p);
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(invalid(
                    "for 'in', 'notin' operators, values set can't be empty",
                    None,
                ));
            }
            Operator::Equals | Operator::NotEquals if values.len() != 1 => {
                return Err(invalid(
                    "exact-match compatibility requires one single value",
                    first_position,
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(invalid(
                    "values set must be empty for exists and does not exist",
                    first_position,
                ));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(invalid(
                        "for 'gt', 'lt' operators, exactly one value is required",
                        first_position,
                    ));
                }
                if let Some((value, position)) =
                    values.iter().find(|(v, _)| v.parse::<i64>().is_err())
                {
                    return Err(invalid(
                        &format!(
                            "for 'gt', 'lt' operators, the value must be an integer, not \"{value}\""
                        ),
                        *position,
                    ));
                }
            }
            _ => {}
        }
        for (value, position) in &values {
            let errors = label_value_errors(value);
            if !errors.is_empty() {
                return Err(SelectorError::InvalidValue {
                    key: key.to_owned(),
                    value: value.clone(),
                    reason: errors.join("; "),
                    position: *position,
                });
            }
        }
        let mut values: Vec<String> = values.into_iter().map(|(v, _)| v).collect();
        values.sort();
        values.dedup();
        Ok(Self {
            key: key.to_owned(),
            operator,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted and without duplicates (empty for exists and
    /// does-not-exist).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether labels, given by a lookup, satisfy this requirement, with
    /// Kubernetes' semantics: `!=` and `notin` match when the key is absent;
    /// `=`, `in`, `>` and `<` need it present; `>`/`<` compare as 64-bit
    /// integers and fail on a label that is not one.
    pub fn matches_fn<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = get(&self.key);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(has),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(Ok(actual)), [wanted]) = (value.map(str::parse::<i64>), &self.values[..])
                else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }

    /// Whether a label map satisfies this requirement (see
    /// [`Requirement::matches_fn`]).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_fn(|k| labels.get(k).map(String::as_str))
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        match self.operator {
            Operator::Equals => write!(f, "{}={values}", self.key),
            Operator::NotEquals => write!(f, "{}!={values}", self.key),
            Operator::In => write!(f, "{} in ({values})", self.key),
            Operator::NotIn => write!(f, "{} notin ({values})", self.key),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{values}", self.key),
            Operator::LessThan => write!(f, "{}<{values}", self.key),
        }
    }
}

// ---------------------------------------------------------------------------
// Selector
// ---------------------------------------------------------------------------

/// A label selector: the AND of its [`Requirement`]s.
///
/// The empty selector ([`Selector::everything`], also the `Default`)
/// matches every object. Requirements are kept sorted (by key, then
/// operator, then values), so two selectors that differ only in the order
/// they were written compare equal and display alike. `Display` gives the
/// canonical text (`a=b,c in (x,y),!d`), which parses back to an equal
/// selector. Serialized as that text.
///
/// Kubernetes also has a selector that matches nothing (a `null`
/// `LabelSelector`); it has no text form, so callers holding an
/// `Option<LabelSelector>` handle `None` themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses selector text such as `env in (prod,qa), tier!=db, !canary`.
    ///
    /// The empty (or all-blank) string is [`Selector::everything`].
    ///
    /// # Errors
    ///
    /// [`SelectorError::Syntax`] for text outside the grammar,
    /// [`SelectorError::InvalidKey`], [`SelectorError::InvalidValue`] and
    /// [`SelectorError::InvalidRequirement`] for a well-formed requirement
    /// with a bad key or values; each with the offending position.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            items: lex(text),
            position: 0,
        };
        let mut requirements = parser.parse()?;
        requirements.sort();
        Ok(Self { requirements })
    }

    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether the selector has no requirement (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, in canonical order.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The equality selector of a map (`key=value` for each entry), as
    /// replication controllers and services select pods. An empty map gives
    /// [`Selector::everything`].
    ///
    /// The map is trusted, as Kubernetes' `SelectorFromSet` does: keys and
    /// values are not validated, and if one is not a valid label key or
    /// value the [`Display`](fmt::Display) text will not parse back. Use
    /// [`Selector::try_from_map`] to check.
    pub fn from_map(labels: &BTreeMap<String, String>) -> Self {
        Self {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        }
    }

    /// [`Selector::from_map`], validating every key and value.
    ///
    /// # Errors
    ///
    /// The first invalid key or value.
    pub fn try_from_map(labels: &BTreeMap<String, String>) -> Result<Self, SelectorError> {
        let requirements = labels
            .iter()
            .map(|(k, v)| Requirement::new(k, Operator::Equals, [v.as_str()]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { requirements })
    }

    /// This selector with one more requirement, combined with AND.
    #[must_use]
    pub fn with(mut self, requirement: Requirement) -> Self {
        let at = self.requirements.partition_point(|r| *r <= requirement);
        self.requirements.insert(at, requirement);
        self
    }

    /// Whether a label map satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_fn(|k| labels.get(k).map(String::as_str))
    }

    /// Whether labels given by a lookup (`None` for an absent key) satisfy
    /// every requirement; for label sets not held in a `BTreeMap`.
    pub fn matches_fn<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| r.matches_fn(&get))
    }

    /// Whether an object in v1 JSON is selected, by its `metadata.labels`
    /// (absent labels, and labels whose value is not a string, count as
    /// absent). Not for v1beta1 JSON, whose labels are top-level.
    pub fn matches_object(&self, object: &serde_json::Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let labels = object
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(serde_json::Value::as_object);
        self.matches_fn(|k| {
            labels
                .and_then(|l| l.get(k))
                .and_then(serde_json::Value::as_str)
        })
    }

    /// The single value `key` must have, if the selector pins it (`key=v`,
    /// `key==v` or `key in (v)`); lets a caller narrow a lookup before
    /// matching.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, &r.values[..]) {
            (Operator::Equals | Operator::In, [value]) => Some(value),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;

    /// Kubernetes' `LabelSelectorAsSelector`: `matchLabels` entries become
    /// `key=value`, `matchExpressions` become `in`, `notin`, exists and
    /// does-not-exist (operators spelt `In`, `NotIn`, `Exists`,
    /// `DoesNotExist`, case-sensitive). An empty `LabelSelector` matches
    /// everything.
    fn try_from(selector: &LabelSelector) -> Result<Self, Self::Error> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::new(key, Operator::Equals, [value.as_str()])?);
        }
        for expression in selector.match_expressions.iter().flatten() {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(SelectorError::UnknownOperator(other.to_owned())),
            };
            let values = expression.values.iter().flatten().map(String::as_str);
            requirements.push(Requirement::new(&expression.key, operator, values)?);
        }
        requirements.sort();
        Ok(Self { requirements })
    }
}

impl TryFrom<LabelSelector> for Selector {
    type Error = SelectorError;

    fn try_from(selector: LabelSelector) -> Result<Self, Self::Error> {
        Self::try_from(&selector)
    }
}

// ---------------------------------------------------------------------------
// Lexer and parser (Kubernetes' `labels.Lexer` and `labels.Parser`)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

#[derive(Clone, Copy, Debug)]
struct Item<'a> {
    token: Token,
    literal: &'a str,
    position: usize,
}

impl Item<'_> {
    /// The token as an error message shows it.
    fn found(&self) -> String {
        if self.token == Token::EndOfString {
            "end of string".to_owned()
        } else {
            self.literal.to_owned()
        }
    }
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the text into tokens, the last one always `EndOfString`.
///
/// Special symbols are matched longest first (`!=` before `!`); any other
/// run of characters up to whitespace or a special symbol is an identifier,
/// or the keyword `in`/`notin`. Every special and blank character is ASCII,
/// so the byte offsets are always on character boundaries.
fn lex(text: &str) -> Vec<Item<'_>> {
    let bytes = text.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && is_whitespace(bytes[i]) {
            i += 1;
        }
        let start = i;
        let Some(&c) = bytes.get(i) else {
            items.push(Item {
                token: Token::EndOfString,
                literal: "",
                position: text.len(),
            });
            return items;
        };
        let token = if is_special(c) {
            let next = bytes.get(i + 1).copied();
            let (token, len) = match (c, next) {
                (b'!', Some(b'=')) => (Token::NotEquals, 2),
                (b'=', Some(b'=')) => (Token::DoubleEquals, 2),
                (b'!', _) => (Token::DoesNotExist, 1),
                (b'=', _) => (Token::Equals, 1),
                (b'(', _) => (Token::OpenPar, 1),
                (b')', _) => (Token::ClosedPar, 1),
                (b',', _) => (Token::Comma, 1),
                (b'>', _) => (Token::GreaterThan, 1),
                _ => (Token::LessThan, 1),
            };
            i += len;
            token
        } else {
            while i < bytes.len() && !is_special(bytes[i]) && !is_whitespace(bytes[i]) {
                i += 1;
            }
            match &text[start..i] {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier,
            }
        };
        items.push(Item {
            token,
            literal: &text[start..i],
            position: start,
        });
    }
}

/// Where the parser is: after a key, `in`/`notin` are operators; where a
/// key or value is expected they are plain identifiers (`in in (in)`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser<'a> {
    items: Vec<Item<'a>>,
    position: usize,
}

impl<'a> Parser<'a> {
    fn item(&self, context: Context) -> Item<'a> {
        // `lex` always ends with EndOfString; stay on it once reached.
        let index = self.position.min(self.items.len().saturating_sub(1));
        let mut item = self.items.get(index).copied().unwrap_or(Item {
            token: Token::EndOfString,
            literal: "",
            position: 0,
        });
        if context == Context::Values && matches!(item.token, Token::In | Token::NotIn) {
            item.token = Token::Identifier;
        }
        item
    }

    fn lookahead(&self, context: Context) -> Item<'a> {
        self.item(context)
    }

    fn consume(&mut self, context: Context) -> Item<'a> {
        let item = self.item(context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let item = self.lookahead(Context::Values);
            match item.token {
                Token::Identifier | Token::DoesNotExist => {
                    requirements.push(self.parse_requirement()?);
                    let next = self.consume(Context::Values);
                    match next.token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let after = self.lookahead(Context::Values);
                            if !matches!(after.token, Token::Identifier | Token::DoesNotExist) {
                                return Err(syntax(after, "identifier after ','", false));
                            }
                        }
                        _ => return Err(syntax(next, "',' or 'end of string'", false)),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => return Err(syntax(item, "!, identifier, or 'end of string'", false)),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, key_operator) = self.parse_key_and_infer_operator()?;
        if let Some(operator) = key_operator {
            return Requirement::build(key.literal, operator, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => vec![self.parse_exact_value()?],
        };
        Requirement::build(key.literal, operator, values)
    }

    /// The key, and the operator when there is none to read: `!key` is
    /// does-not-exist; a key followed by `,` or the end is exists.
    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(Item<'a>, Option<Operator>), SelectorError> {
        let mut item = self.consume(Context::Values);
        let mut operator = None;
        if item.token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            item = self.consume(Context::Values);
        }
        if item.token != Token::Identifier {
            return Err(syntax(item, "identifier", true));
        }
        validate_key(item.literal, Some(item.position))?;
        let next = self.lookahead(Context::Values).token;
        if operator.is_none() && matches!(next, Token::EndOfString | Token::Comma) {
            operator = Some(Operator::Exists);
        }
        Ok((item, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        let item = self.consume(Context::KeyAndOperator);
        Ok(match item.token {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals | Token::DoubleEquals => Operator::Equals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            _ => return Err(syntax(item, "in, notin, =, ==, !=, >, <", true)),
        })
    }

    /// `( a, b, c )`; an empty member is the empty value (`()` is `("")`).
    fn parse_values(&mut self) -> Result<Vec<(String, Option<usize>)>, SelectorError> {
        let open = self.consume(Context::Values);
        if open.token != Token::OpenPar {
            return Err(syntax(open, "'('", true));
        }
        let item = self.lookahead(Context::Values);
        match item.token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let close = self.consume(Context::Values);
                if close.token != Token::ClosedPar {
                    return Err(syntax(close, "')'", true));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![(String::new(), Some(item.position))])
            }
            _ => Err(syntax(item, "',', ')' or identifier", true)),
        }
    }

    /// The comma-separated (possibly empty) values up to, not including,
    /// the closing parenthesis.
    fn parse_identifiers_list(&mut self) -> Result<Vec<(String, Option<usize>)>, SelectorError> {
        let mut values = Vec::new();
        loop {
            let item = self.consume(Context::Values);
            match item.token {
                Token::Identifier => {
                    values.push((item.literal.to_owned(), Some(item.position)));
                    let next = self.lookahead(Context::Values);
                    match next.token {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(syntax(next, "',' or ')'", true)),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        // `(,`: an empty value before the comma.
                        values.push((String::new(), Some(item.position)));
                    }
                    let next = self.lookahead(Context::Values);
                    match next.token {
                        // `,)`: an empty value after the comma.
                        Token::ClosedPar => {
                            values.push((String::new(), Some(next.position)));
                            return Ok(values);
                        }
                        // `,,`: an empty value between.
                        Token::Comma => values.push((String::new(), Some(next.position))),
                        _ => {}
                    }
                }
                _ => return Err(syntax(item, "',' or identifier", true)),
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; empty when a `,` or the
    /// end follows the operator.
    fn parse_exact_value(&mut self) -> Result<(String, Option<usize>), SelectorError> {
        let item = self.lookahead(Context::Values);
        if matches!(item.token, Token::EndOfString | Token::Comma) {
            return Ok((String::new(), Some(item.position)));
        }
        let item = self.consume(Context::Values);
        if item.token == Token::Identifier {
            Ok((item.literal.to_owned(), Some(item.position)))
        } else {
            Err(syntax(item, "identifier", true))
        }
    }
}

fn syntax(item: Item<'_>, expected: &str, in_requirement: bool) -> SelectorError {
    SelectorError::Syntax {
        position: item.position,
        found: item.found(),
        expected: expected.to_owned(),
        in_requirement,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse(text: &str) -> Selector {
        match Selector::parse(text) {
            Ok(s) => s,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn error(text: &str) -> String {
        match Selector::parse(text) {
            Ok(s) => panic!("{text:?} should not parse, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement::new(key, operator, values.iter().copied()).expect("valid requirement")
    }

    #[test]
    fn parses_every_operator() {
        use Operator::*;
        for (text, key, operator, values) in [
            ("a=b", "a", Equals, vec!["b"]),
            ("a==b", "a", Equals, vec!["b"]),
            ("a!=b", "a", NotEquals, vec!["b"]),
            ("a in (y,x)", "a", In, vec!["x", "y"]),
            ("a notin (x)", "a", NotIn, vec!["x"]),
            ("a", "a", Exists, vec![]),
            ("!a", "a", DoesNotExist, vec![]),
            ("a>5", "a", GreaterThan, vec!["5"]),
            ("a<10", "a", LessThan, vec!["10"]),
            ("a=", "a", Equals, vec![""]),
            ("a!=", "a", NotEquals, vec![""]),
            ("a in ()", "a", In, vec![""]),
            ("a in (,x)", "a", In, vec!["", "x"]),
            ("a in (x,)", "a", In, vec!["", "x"]),
            ("a in (x,,y)", "a", In, vec!["", "x", "y"]),
            ("a in (x,x)", "a", In, vec!["x"]),
            (
                "example.com/a-b_c.d=V_1.x-y",
                "example.com/a-b_c.d",
                Equals,
                vec!["V_1.x-y"],
            ),
            ("in in (in,notin)", "in", In, vec!["in", "notin"]),
            ("notin=in", "notin", Equals, vec!["in"]),
        ] {
            let s = parse(text);
            assert_eq!(s.requirements().len(), 1, "{text}");
            let r = &s.requirements()[0];
            assert_eq!(r.key(), key, "{text}");
            assert_eq!(r.operator(), operator, "{text}");
            assert_eq!(r.values(), values, "{text}");
        }
    }

    #[test]
    fn whitespace_is_allowed_around_every_token() {
        let expected = parse("a=b,c!=d,e in (x,y),f notin (z),g,!h,i>1,j<2");
        for text in [
            "  a = b ,c!= d,\te in(x , y) , f notin ( z ),g , ! h, i > 1,j<2 ",
            "a==b,\r\nc != d,e in\t(y,x),f notin(z), g ,!h,i>1 , j < 2",
        ] {
            assert_eq!(parse(text), expected, "{text}");
        }
        assert!(parse("").is_empty());
        assert!(parse(" \t\r\n").is_empty());
    }

    #[test]
    fn several_requirements_are_sorted_by_key() {
        let s = parse("z=1,a=2,m");
        let keys: Vec<&str> = s.requirements().iter().map(Requirement::key).collect();
        assert_eq!(keys, ["a", "m", "z"]);
        assert_eq!(s.to_string(), "a=2,m,z=1");
        assert_eq!(parse("b!=c,b=x"), parse("b=x,b!=c"));
    }

    #[test]
    fn syntax_errors_say_what_was_found_where() {
        for (text, message) in [
            (
                "x=(",
                "unable to parse requirement: found '(', expected: identifier (at position 2)",
            ),
            (
                "!",
                "unable to parse requirement: found 'end of string', expected: identifier (at position 1)",
            ),
            (
                "!=a",
                "found '!=', expected: !, identifier, or 'end of string' (at position 0)",
            ),
            (
                "(a)",
                "found '(', expected: !, identifier, or 'end of string' (at position 0)",
            ),
            (
                ",a",
                "found ',', expected: !, identifier, or 'end of string' (at position 0)",
            ),
            (
                "a,",
                "found 'end of string', expected: identifier after ',' (at position 2)",
            ),
            (
                "a,,b",
                "found ',', expected: identifier after ',' (at position 2)",
            ),
            (
                "a=b c",
                "found 'c', expected: ',' or 'end of string' (at position 4)",
            ),
            (
                "a=b=c",
                "found '=', expected: ',' or 'end of string' (at position 3)",
            ),
            (
                "!a=b",
                "found '=', expected: ',' or 'end of string' (at position 2)",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, >, < (at position 2)",
            ),
            (
                "a (b)",
                "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, >, < (at position 2)",
            ),
            (
                "a in",
                "unable to parse requirement: found 'end of string', expected: '(' (at position 4)",
            ),
            (
                "a in x",
                "unable to parse requirement: found 'x', expected: '(' (at position 5)",
            ),
            (
                "a in (",
                "unable to parse requirement: found 'end of string', expected: ',', ')' or identifier (at position 6)",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier (at position 6)",
            ),
            (
                "a in (x",
                "unable to parse requirement: found 'end of string', expected: ',' or ')' (at position 7)",
            ),
            (
                "a in (x y)",
                "unable to parse requirement: found 'y', expected: ',' or ')' (at position 8)",
            ),
            (
                "a in (x,",
                "unable to parse requirement: found 'end of string', expected: ',' or identifier (at position 8)",
            ),
            (
                "a in (x,=)",
                "unable to parse requirement: found '=', expected: ',' or identifier (at position 8)",
            ),
            (
                "a=!",
                "unable to parse requirement: found '!', expected: identifier (at position 2)",
            ),
            (
                "a===b",
                "unable to parse requirement: found '=', expected: identifier (at position 3)",
            ),
        ] {
            assert_eq!(error(text), message, "{text:?}");
        }
    }

    #[test]
    fn syntax_errors_carry_their_parts() {
        assert_eq!(
            Selector::parse("app=web,tier in x"),
            Err(SelectorError::Syntax {
                position: 16,
                found: "x".into(),
                expected: "'('".into(),
                in_requirement: true,
            })
        );
    }

    #[test]
    fn invalid_keys_are_rejected_with_the_reason() {
        let name_rule = "must consist of alphanumeric characters, '-', '_' or '.', and must \
                         start and end with an alphanumeric character (e.g. 'MyName', 'my.name' \
                         or '123-abc')";
        let long = "a".repeat(64);
        for (text, message) in [
            (
                "-a=b".to_owned(),
                format!("invalid label key \"-a\": name part {name_rule} (at position 0)"),
            ),
            (
                "x, a$=b".to_owned(),
                format!("invalid label key \"a$\": name part {name_rule} (at position 3)"),
            ),
            (
                "a/b/c".to_owned(),
                format!(
                    "invalid label key \"a/b/c\": a qualified name {name_rule} with an optional \
                     DNS subdomain prefix and '/' (e.g. 'example.com/MyName') (at position 0)"
                ),
            ),
            (
                "/a".to_owned(),
                "invalid label key \"/a\": prefix part must be non-empty (at position 0)"
                    .to_owned(),
            ),
            (
                "!a/".to_owned(),
                "invalid label key \"a/\": name part must be non-empty (at position 1)".to_owned(),
            ),
            (
                "Example.com/a in (x)".to_owned(),
                "invalid label key \"Example.com/a\": prefix part a lowercase RFC 1123 \
                 subdomain must consist of lower case alphanumeric characters, '-' or '.', and \
                 must start and end with an alphanumeric character (e.g. 'example.com') (at \
                 position 0)"
                    .to_owned(),
            ),
            (
                format!("{long}=x"),
                format!(
                    "invalid label key \"{long}\": name part must be no more than 63 characters \
                     (at position 0)"
                ),
            ),
        ] {
            assert_eq!(error(&text), message, "{text:?}");
        }
        // 63 characters is fine, and so is a long prefix.
        parse(&format!("{}={}", "a".repeat(63), "b".repeat(63)));
        parse(&format!("{}.io/x", "p".repeat(200)));
    }

    #[test]
    fn invalid_values_are_rejected_with_the_reason() {
        let value_rule = "a valid label must be an empty string or consist of alphanumeric \
                          characters, '-', '_' or '.', and must start and end with an \
                          alphanumeric character (e.g. 'MyValue', 'my_value' or '12345')";
        let long = "v".repeat(64);
        for (text, message) in [
            (
                "a=-x".to_owned(),
                format!("invalid label value \"-x\" for key \"a\": {value_rule} (at position 2)"),
            ),
            (
                "a in (ok, b$d)".to_owned(),
                format!("invalid label value \"b$d\" for key \"a\": {value_rule} (at position 10)"),
            ),
            (
                format!("a!={long}"),
                format!(
                    "invalid label value \"{long}\" for key \"a\": must be no more than 63 \
                     characters (at position 3)"
                ),
            ),
            (
                "a>x".to_owned(),
                "invalid requirement for label key \"a\": for 'gt', 'lt' operators, the value \
                 must be an integer, not \"x\" (at position 2)"
                    .to_owned(),
            ),
            (
                "a<".to_owned(),
                "invalid requirement for label key \"a\": for 'gt', 'lt' operators, the value \
                 must be an integer, not \"\" (at position 2)"
                    .to_owned(),
            ),
            (
                // Kubernetes too: an integer label value cannot start with '-'.
                "a>-1".to_owned(),
                format!("invalid label value \"-1\" for key \"a\": {value_rule} (at position 2)"),
            ),
        ] {
            assert_eq!(error(&text), message, "{text:?}");
        }
    }

    #[test]
    fn requirement_new_validates_like_the_parser() {
        assert_eq!(
            Requirement::new("a", Operator::In, Vec::<String>::new()),
            Err(SelectorError::InvalidRequirement {
                key: "a".into(),
                reason: "for 'in', 'notin' operators, values set can't be empty".into(),
                position: None,
            })
        );
        let e = Requirement::new("a", Operator::Equals, ["x", "y"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid requirement for label key \"a\": exact-match compatibility requires one single value"
        );
        let e = Requirement::new("a", Operator::Exists, ["x"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid requirement for label key \"a\": values set must be empty for exists and does not exist"
        );
        let e = Requirement::new("a", Operator::GreaterThan, ["1", "2"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid requirement for label key \"a\": for 'gt', 'lt' operators, exactly one value is required"
        );
        assert!(matches!(
            Requirement::new("a b", Operator::Exists, Vec::<String>::new()),
            Err(SelectorError::InvalidKey { position: None, .. })
        ));
        assert!(matches!(
            Requirement::new("a", Operator::NotIn, ["x y"]),
            Err(SelectorError::InvalidValue { position: None, .. })
        ));
        let r = req("a", Operator::In, &["z", "x", "z"]);
        assert_eq!(r.values(), ["x", "z"]);
    }

    #[test]
    fn matching_follows_kubernetes_including_absent_keys() {
        let none = labels(&[]);
        let web = labels(&[("app", "web"), ("tier", "front"), ("n", "5"), ("e", "")]);
        let db = labels(&[("app", "db"), ("n", "x")]);
        for (selector, on_none, on_web, on_db) in [
            ("", true, true, true),
            ("app=web", false, true, false),
            ("app==web", false, true, false),
            ("app!=web", true, false, true),
            ("app=", false, false, false),
            ("e=", false, true, false),
            ("e!=", true, false, true),
            ("app in (web,db)", false, true, true),
            ("app in (web)", false, true, false),
            ("app notin (web)", true, false, true),
            ("tier notin (front,back)", true, false, true),
            ("tier", false, true, false),
            ("!tier", true, false, true),
            ("n>4", false, true, false),
            ("n>5", false, false, false),
            ("n<6", false, true, false),
            ("n<5", false, false, false),
            ("app=web,tier=front", false, true, false),
            ("app=web,tier=back", false, false, false),
            ("app,!tier", false, false, true),
        ] {
            let s = parse(selector);
            assert_eq!(s.matches(&none), on_none, "{selector:?} on no labels");
            assert_eq!(s.matches(&web), on_web, "{selector:?} on web");
            assert_eq!(s.matches(&db), on_db, "{selector:?} on db");
        }
    }

    #[test]
    fn display_round_trips_to_an_equal_selector() {
        for (text, canonical) in [
            ("", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("  b != c ,a", "a,b!=c"),
            ("x in (b, a, b)", "x in (a,b)"),
            ("x notin ()", "x notin ()"),
            ("x in (,a)", "x in (,a)"),
            ("x in (a,,b)", "x in (,a,b)"),
            ("!k, k2", "!k,k2"),
            ("n > 3, n < 9", "n>3,n<9"),
            ("a=,b!=", "a=,b!="),
            (
                "example.com/k in (in, notin)",
                "example.com/k in (in,notin)",
            ),
        ] {
            let s = parse(text);
            assert_eq!(s.to_string(), canonical, "{text:?}");
            assert_eq!(parse(&s.to_string()), s, "{text:?}");
            assert_eq!(canonical.parse::<Selector>().as_ref(), Ok(&s), "{text:?}");
        }
    }

    #[test]
    fn from_map_builds_the_equality_selector() {
        let map = labels(&[("name", "frontend"), ("app", "guestbook")]);
        let s = Selector::from_map(&map);
        assert_eq!(s.to_string(), "app=guestbook,name=frontend");
        assert_eq!(parse(&s.to_string()), s);
        assert!(s.matches(&map));
        assert!(!s.matches(&labels(&[("name", "frontend")])));
        assert!(Selector::from_map(&BTreeMap::new()).is_empty());
        assert_eq!(Selector::try_from_map(&map), Ok(s));
        assert!(matches!(
            Selector::try_from_map(&labels(&[("bad key", "v")])),
            Err(SelectorError::InvalidKey { .. })
        ));
    }

    #[test]
    fn everything_and_default_are_empty() {
        assert!(Selector::everything().is_empty());
        assert_eq!(Selector::default(), Selector::everything());
        assert_eq!(Selector::everything().to_string(), "");
        assert!(Selector::everything().matches(&labels(&[("a", "b")])));
        assert!(!parse("a").is_empty());
    }

    #[test]
    fn with_keeps_the_canonical_order() {
        let s = parse("m=1").with(req("z", Operator::Exists, &[])).with(req(
            "a",
            Operator::NotIn,
            &["x"],
        ));
        assert_eq!(s, parse("a notin (x),m=1,z"));
    }

    #[test]
    fn requires_exact_match() {
        let s = parse("a=1,b in (2),c in (3,4),d!=5");
        assert_eq!(s.requires_exact_match("a"), Some("1"));
        assert_eq!(s.requires_exact_match("b"), Some("2"));
        assert_eq!(s.requires_exact_match("c"), None);
        assert_eq!(s.requires_exact_match("d"), None);
        assert_eq!(s.requires_exact_match("e"), None);
    }

    #[test]
    fn matches_object_reads_metadata_labels() {
        let pod = serde_json::json!({
            "metadata": {"name": "p", "labels": {"app": "web", "n": 3}},
        });
        assert!(parse("app=web").matches_object(&pod));
        assert!(!parse("app=db").matches_object(&pod));
        // A non-string label value counts as absent.
        assert!(parse("!n").matches_object(&pod));
        let bare = serde_json::json!({"metadata": {"name": "p"}});
        assert!(parse("app!=web").matches_object(&bare));
        assert!(!parse("app").matches_object(&bare));
        assert!(Selector::everything().matches_object(&serde_json::json!(null)));
    }

    #[test]
    fn converts_from_a_label_selector() {
        let ls = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["front".into(), "edge".into()]),
                },
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["dev".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "owner".into(),
                    operator: "Exists".into(),
                    values: Some(vec![]),
                },
            ]),
        };
        let s = Selector::try_from(&ls).expect("valid");
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env notin (dev),owner,tier in (edge,front)"
        );
        assert_eq!(
            Selector::try_from(LabelSelector::default()),
            Ok(Selector::everything())
        );

        let bad_operator = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "in".into(),
                values: Some(vec!["x".into()]),
            }]),
            ..LabelSelector::default()
        };
        assert_eq!(
            Selector::try_from(&bad_operator).unwrap_err().to_string(),
            "\"in\" is not a valid label selector operator"
        );
        let empty_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "In".into(),
                values: None,
            }]),
            ..LabelSelector::default()
        };
        assert!(matches!(
            Selector::try_from(&empty_in),
            Err(SelectorError::InvalidRequirement { .. })
        ));
        let bad_value = LabelSelector {
            match_labels: Some(labels(&[("a", "not ok")])),
            ..LabelSelector::default()
        };
        assert!(matches!(
            Selector::try_from(&bad_value),
            Err(SelectorError::InvalidValue { .. })
        ));
    }

    #[test]
    fn serde_uses_the_text_form() {
        let s = parse("b in (y,x),a");
        let json = serde_json::to_string(&s).expect("serializes");
        assert_eq!(json, "\"a,b in (x,y)\"");
        let back: Selector = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, s);
        let bad: Result<Selector, _> = serde_json::from_str("\"a in\"");
        assert!(bad.is_err());
    }

    #[test]
    fn non_ascii_input_is_an_invalid_key_not_a_panic() {
        assert!(matches!(
            Selector::parse("é=1"),
            Err(SelectorError::InvalidKey {
                position: Some(0),
                ..
            })
        ));
        assert!(matches!(
            Selector::parse("a=ü,b"),
            Err(SelectorError::InvalidValue {
                position: Some(2),
                ..
            })
        ));
        assert!(matches!(
            Selector::parse("a in (x,ü"),
            Err(SelectorError::Syntax { position: 10, .. })
        ));
    }

    #[test]
    fn validators_report_every_problem() {
        assert!(qualified_name_errors("kubernetes.io/name").is_empty());
        assert!(qualified_name_errors("a").is_empty());
        assert_eq!(qualified_name_errors("A_b/c").len(), 1);
        // The prefix's inside characters are checked too, and its labels
        // may not be empty.
        assert_eq!(qualified_name_errors("a_b.io/c").len(), 1);
        assert_eq!(qualified_name_errors("a..io/c").len(), 1);
        assert!(qualified_name_errors("a-b.c-d.io/c").is_empty());
        assert_eq!(qualified_name_errors("/").len(), 2);
        assert_eq!(
            qualified_name_errors(&format!("-{}", "a".repeat(63))).len(),
            2
        );
        assert!(qualified_name_errors(&format!("{}/a", "p".repeat(254)))[0]
            .contains("no more than 253"));
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("A.b-c_1").is_empty());
        assert_eq!(label_value_errors(&format!("{}-", "a".repeat(63))).len(), 2);
    }
}
