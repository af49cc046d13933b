//! Field selectors: parsing (`metadata.name=x,spec.nodeName!=`) and matching.
//!
//! The syntax is Kubernetes' (`k8s.io/apimachinery/pkg/fields`): terms
//! separated by `,`, each `field=value`, `field==value` or `field!=value`.
//! Nothing is trimmed: `a = b` names the field `a ` (with a space). A value
//! may hold `,`, `=` and `\` only escaped as `\,`, `\=` and `\\` (see
//! [`escape_value`]); a field name cannot be escaped and ends at the first
//! operator.
//!
//! Which fields a kind can be selected by, and their values in an object, are
//! Kubernetes 1.32's ([`supported_fields`], [`field_set`]). The 2014 names of
//! `?fields=` on `/api/v1beta1` are translated by
//! [`FieldSelector::from_v1beta1`].

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::kinds::ResourceKind;
use crate::labels::selector_text_form;
pub use crate::labels::SelectorError;

/// How a [`FieldRequirement`] compares its field with its value.
///
/// `=` and `==` are one operator, as in Kubernetes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

impl FieldOperator {
    /// The operator as written in a selector (`=` or `!=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "=",
            Self::NotEquals => "!=",
        }
    }
}

impl fmt::Display for FieldOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One term of a field selector.
///
/// Any value is allowed (it is escaped when displayed). A field name
/// containing `=`, or ending in `!`, cannot be written as selector text, so
/// a requirement built with one does not display to text that parses back.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldRequirement {
    /// The field (`metadata.name`).
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The value, unescaped. An absent field compares as the empty string.
    pub value: String,
}

impl FieldRequirement {
    /// A requirement.
    pub fn new(
        field: impl Into<String>,
        operator: FieldOperator,
        value: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            operator,
            value: value.into(),
        }
    }

    /// Whether the field's value (`None` when absent, which compares as the
    /// empty string) satisfies this requirement.
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        let equal = value.unwrap_or("") == self.value;
        match self.operator {
            FieldOperator::Equals => equal,
            FieldOperator::NotEquals => !equal,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.field,
            self.operator,
            escape_value(&self.value)
        )
    }
}

/// A field selector: the AND of its [`FieldRequirement`]s.
///
/// The empty selector ([`FieldSelector::everything`], also the `Default`)
/// matches every object. Requirements are kept sorted (field, operator,
/// value), so `Display` gives a canonical text that parses back to an equal
/// selector, with values escaped. Serialized as that text.
///
/// Parsing does not know the resource: call
/// [`FieldSelector::check_supported`] (or parse with
/// [`FieldSelector::parse_for`]) before matching, since an unknown field
/// simply compares as the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses selector text such as `spec.nodeName=,status.phase!=Failed`.
    ///
    /// Empty terms are skipped, so `""` and `","` are
    /// [`FieldSelector::everything`].
    ///
    /// # Errors
    ///
    /// [`SelectorError::FieldTerm`] for a term with no operator,
    /// [`SelectorError::InvalidEscape`] and
    /// [`SelectorError::UnescapedCharacter`] for a badly escaped value.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (start, term) in split_terms(text) {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, value_start)) = split_term(term) else {
                return Err(SelectorError::FieldTerm {
                    selector: text.to_owned(),
                    term: term.to_owned(),
                    position: start,
                });
            };
            let value = unescape_at(&term[value_start..], start + value_start)?;
            requirements.push(FieldRequirement::new(field, operator, value));
        }
        requirements.sort();
        Ok(Self { requirements })
    }

    /// Parses a `?fieldSelector=` of `/api/v1` for `resource`, as the
    /// Kubernetes apiserver does: the text is parsed, old aliases are
    /// renamed (`spec.host` is `spec.nodeName` for pods) and every field
    /// must be supported.
    ///
    /// # Errors
    ///
    /// Those of [`FieldSelector::parse`], and
    /// [`SelectorError::UnsupportedField`] naming the first field the
    /// resource cannot be selected by.
    pub fn parse_for(resource: &ResourceKind, text: &str) -> Result<Self, SelectorError> {
        let mut selector = Self::parse(text)?;
        if resource.kind == "Pod" {
            for r in &mut selector.requirements {
                if r.field == "spec.host" {
                    r.field = "spec.nodeName".to_owned();
                }
            }
            selector.requirements.sort();
        }
        selector.check_supported(resource)?;
        Ok(selector)
    }

    /// Translates a `?fields=` selector of `/api/v1beta1` (2014) into a
    /// v1 one for `resource`, then checks it is supported.
    ///
    /// Field names (matched ignoring ASCII case, as the 2014 names were
    /// written both `DesiredState.Host` and `desiredState.host`):
    ///
    /// | v1beta1 | v1 | kinds |
    /// |---|---|---|
    /// | `name` | `metadata.name` | all |
    /// | `namespace` | `metadata.namespace` | namespaced |
    /// | `DesiredState.Host`, `CurrentState.Host`, `Status.Host` | `spec.nodeName` | Pod |
    /// | `DesiredState.Status`, `CurrentState.Status` | `status.phase`, value translated | Pod |
    /// | `Status.Phase` | `status.phase`, value kept | Pod |
    ///
    /// Any v1 name the resource supports is accepted as is.
    ///
    /// v1beta1 had three pod statuses for v1's five phases: `Waiting` is
    /// `Pending`, `Running` is `Running`, `Terminated` was both `Succeeded`
    /// and `Failed`. `!=Terminated` is translated exactly (two terms,
    /// `!=Failed` and `!=Succeeded`), but `=Terminated` can only become
    /// `=Failed`: a field selector has no OR, so **succeeded pods are lost**
    /// to it. Other values (`Unknown`, and v1 phases) are kept.
    ///
    /// v0.5 ignored field selectors on minions and rejected every one on
    /// replication controllers; here both get the v1 rules for their kind.
    ///
    /// # Errors
    ///
    /// Those of [`FieldSelector::parse`], and
    /// [`SelectorError::UnsupportedField`] naming the field as the client
    /// wrote it.
    pub fn from_v1beta1(resource: &ResourceKind, text: &str) -> Result<Self, SelectorError> {
        let parsed = Self::parse(text)?;
        let is_pod = resource.kind == "Pod";
        let supported = supported_fields(resource);
        let mut requirements = Vec::new();
        for r in parsed.requirements {
            let legacy = V1BETA1_FIELDS.iter().find(|(name, _, pod_only)| {
                name.eq_ignore_ascii_case(&r.field) && (is_pod || !pod_only)
            });
            let (field, translate_phase) = match legacy {
                Some((_, v1_name, _)) => (
                    *v1_name,
                    r.field.eq_ignore_ascii_case("DesiredState.Status")
                        || r.field.eq_ignore_ascii_case("CurrentState.Status"),
                ),
                None if is_pod && r.field == "spec.host" => ("spec.nodeName", false),
                None => (r.field.as_str(), false),
            };
            let Some(field) = supported.iter().find(|f| **f == field) else {
                return Err(SelectorError::UnsupportedField { field: r.field });
            };
            if !translate_phase {
                requirements.push(FieldRequirement::new(*field, r.operator, r.value));
                continue;
            }
            match (r.value.as_str(), r.operator) {
                ("Terminated", FieldOperator::NotEquals) => {
                    requirements.push(FieldRequirement::new(*field, r.operator, "Failed"));
                    requirements.push(FieldRequirement::new(*field, r.operator, "Succeeded"));
                }
                (value, operator) => {
                    requirements.push(FieldRequirement::new(*field, operator, v1_phase(value)));
                }
            }
        }
        requirements.sort();
        requirements.dedup();
        Ok(Self { requirements })
    }

    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector of one `field=value` term (as the kubelet's
    /// `spec.nodeName=<node>`).
    pub fn one_term(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            requirements: vec![FieldRequirement::new(field, FieldOperator::Equals, value)],
        }
    }

    /// Whether the selector has no requirement (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, in canonical order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// This selector with one more requirement, combined with AND.
    #[must_use]
    pub fn with(mut self, requirement: FieldRequirement) -> Self {
        let at = self.requirements.partition_point(|r| *r <= requirement);
        self.requirements.insert(at, requirement);
        self
    }

    /// Checks that `resource` can be selected by every field, with
    /// Kubernetes' message for the first that cannot.
    ///
    /// # Errors
    ///
    /// [`SelectorError::UnsupportedField`] (`field label not supported:
    /// <field>`), which the apiserver answers with 400.
    pub fn check_supported(&self, resource: &ResourceKind) -> Result<(), SelectorError> {
        let supported = supported_fields(resource);
        match self
            .requirements
            .iter()
            .find(|r| !supported.contains(&r.field.as_str()))
        {
            Some(r) => Err(SelectorError::UnsupportedField {
                field: r.field.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Whether a field set (from [`field_set`]) satisfies every
    /// requirement; a field missing from the set compares as the empty
    /// string.
    pub fn matches(&self, fields: &BTreeMap<&str, String>) -> bool {
        self.matches_fn(|f| fields.get(f).map(String::as_str))
    }

    /// Whether fields given by a lookup (`None` for absent, compared as the
    /// empty string) satisfy every requirement.
    pub fn matches_fn<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(get(&r.field)))
    }

    /// Whether an object of `resource`, in v1 JSON, is selected.
    pub fn matches_object(&self, resource: &ResourceKind, object: &Value) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(field_value(resource, object, &r.field).as_deref()))
    }

    /// The value `field` must have, if a `field=value` term pins it (lets
    /// the apiserver turn `metadata.name=x` into a single read).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

selector_text_form!(FieldSelector);

// ---------------------------------------------------------------------------
// Escaping and splitting
// ---------------------------------------------------------------------------

/// Escapes a literal value for a field selector: `\` → `\\`, `,` → `\,`,
/// `=` → `\=`.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undoes [`escape_value`].
///
/// # Errors
///
/// [`SelectorError::InvalidEscape`] for a backslash followed by anything
/// but `\`, `,` or `=` (or by nothing), and
/// [`SelectorError::UnescapedCharacter`] for a bare `,` or `=`; positions
/// are byte offsets into `value`.
pub fn unescape_value(value: &str) -> Result<String, SelectorError> {
    unescape_at(value, 0)
}

fn unescape_at(value: &str, offset: usize) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | ',' | '='))) => out.push(e),
                Some((_, e)) => {
                    return Err(SelectorError::InvalidEscape {
                        sequence: format!("\\{e}"),
                        position: offset + i,
                    })
                }
                None => {
                    return Err(SelectorError::InvalidEscape {
                        sequence: "\\".to_owned(),
                        position: offset + i,
                    })
                }
            },
            ',' | '=' => {
                return Err(SelectorError::UnescapedCharacter {
                    character: c,
                    position: offset + i,
                })
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// The terms between unescaped commas, each with its byte offset; escapes
/// are kept in the terms.
fn split_terms(text: &str) -> Vec<(usize, &str)> {
    let mut terms = Vec::new();
    if text.is_empty() {
        return terms;
    }
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push((start, &text[start..i]));
            start = i + 1;
        }
    }
    terms.push((start, &text[start..]));
    terms
}

/// Splits a term at its first operator (`!=`, then `==`, then `=` at each
/// position): the field, the operator and where the raw value starts.
fn split_term(term: &str) -> Option<(&str, FieldOperator, usize)> {
    let bytes = term.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied();
        match (b, next) {
            (b'!', Some(b'=')) => return Some((&term[..i], FieldOperator::NotEquals, i + 2)),
            (b'=', Some(b'=')) => return Some((&term[..i], FieldOperator::Equals, i + 2)),
            (b'=', _) => return Some((&term[..i], FieldOperator::Equals, i + 1)),
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------
// The fields of each kind
// ---------------------------------------------------------------------------

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
const NODE_FIELDS: &[&str] = &["metadata.name", "spec.unschedulable"];
const NAMESPACE_FIELDS: &[&str] = &["metadata.name", "status.phase"];
const EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
const SERVICE_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.clusterIP",
    "spec.type",
];
const REPLICATION_CONTROLLER_FIELDS: &[&str] =
    &["metadata.name", "metadata.namespace", "status.replicas"];
const NAMESPACED_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];
const CLUSTER_FIELDS: &[&str] = &["metadata.name"];

/// The 2014 field names: (v1beta1 name, v1 name, pods only).
const V1BETA1_FIELDS: &[(&str, &str, bool)] = &[
    ("name", "metadata.name", false),
    ("namespace", "metadata.namespace", false),
    ("DesiredState.Host", "spec.nodeName", true),
    ("CurrentState.Host", "spec.nodeName", true),
    ("Status.Host", "spec.nodeName", true),
    ("DesiredState.Status", "status.phase", true),
    ("CurrentState.Status", "status.phase", true),
    ("Status.Phase", "status.phase", true),
];

/// The v1 phase a v1beta1 pod status stands for (see
/// [`FieldSelector::from_v1beta1`] for what `Terminated` loses).
fn v1_phase(v1beta1_status: &str) -> &str {
    match v1beta1_status {
        "Waiting" => "Pending",
        "Terminated" => "Failed",
        other => other,
    }
}

/// The fields `resource` can be selected by, as in Kubernetes 1.32:
/// `metadata.name` for every kind and `metadata.namespace` for namespaced
/// ones, plus
///
/// - Pod: `spec.nodeName`, `spec.restartPolicy`, `spec.schedulerName`,
///   `spec.serviceAccountName`, `spec.hostNetwork`, `status.phase`,
///   `status.podIP`, `status.nominatedNodeName`;
/// - Node: `spec.unschedulable`;
/// - Namespace: `status.phase`;
/// - Event: `involvedObject.{kind,namespace,name,uid,apiVersion,resourceVersion,fieldPath}`,
///   `reason`, `reportingComponent`, `source`, `type`;
/// - Service: `spec.clusterIP`, `spec.type` (since Kubernetes 1.31);
/// - `ReplicationController`: `status.replicas`;
/// - Endpoints: nothing more.
pub fn supported_fields(resource: &ResourceKind) -> &'static [&'static str] {
    match resource.kind {
        "Pod" => POD_FIELDS,
        "Node" => NODE_FIELDS,
        "Namespace" => NAMESPACE_FIELDS,
        "Event" => EVENT_FIELDS,
        "Service" => SERVICE_FIELDS,
        "ReplicationController" => REPLICATION_CONTROLLER_FIELDS,
        _ if resource.namespaced => NAMESPACED_FIELDS,
        _ => CLUSTER_FIELDS,
    }
}

/// A string at a JSON pointer; absent (or not a string) is empty, as Go's
/// zero value.
fn string_at(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A boolean at a JSON pointer as `true`/`false`; absent is `false`.
fn bool_at(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

/// An integer at a JSON pointer in decimal; absent is `0`.
fn int_at(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .to_string()
}

/// Every selectable field of an object of `resource` (see
/// [`supported_fields`]) with its value ([`field_value`]).
pub fn field_set(resource: &ResourceKind, object: &Value) -> BTreeMap<&'static str, String> {
    supported_fields(resource)
        .iter()
        .filter_map(|field| Some((*field, field_value(resource, object, field)?)))
        .collect()
}

/// The value of one selectable field of an object of `resource`, read
/// from the object's v1 JSON as Kubernetes' `ToSelectableFields` functions
/// do: an absent string is the empty string, an absent boolean `false`
/// (booleans as `true`/`false`), an absent integer `0`. `None` for a field
/// `resource` cannot be selected by.
///
/// Special cases, as in Kubernetes: a pod's `status.podIP` is the first of
/// `status.podIPs` (or `status.podIP` when that list is absent); an event's
/// `source` is `source.component`, or `reportingComponent` when that is
/// empty.
///
/// One field at a time: a watch checks its selector against every change,
/// and building the whole set each time was 8% of the apiserver's CPU with
/// a thousand kubelets and the scheduler watching pods by `spec.nodeName`.
pub fn field_value(resource: &ResourceKind, object: &Value, field: &str) -> Option<String> {
    let s = |pointer: &str| Some(string_at(object, pointer));
    match (resource.kind, field) {
        (_, "metadata.name") => s("/metadata/name"),
        (_, "metadata.namespace") if resource.namespaced => s("/metadata/namespace"),
        ("Pod", "spec.nodeName") => s("/spec/nodeName"),
        ("Pod", "spec.restartPolicy") => s("/spec/restartPolicy"),
        ("Pod", "spec.schedulerName") => s("/spec/schedulerName"),
        ("Pod", "spec.serviceAccountName") => s("/spec/serviceAccountName"),
        ("Pod", "spec.hostNetwork") => Some(bool_at(object, "/spec/hostNetwork")),
        ("Pod" | "Namespace", "status.phase") => s("/status/phase"),
        ("Pod", "status.podIP") => Some(
            object
                .pointer("/status/podIPs/0/ip")
                .and_then(Value::as_str)
                .map_or_else(|| string_at(object, "/status/podIP"), str::to_owned),
        ),
        ("Pod", "status.nominatedNodeName") => s("/status/nominatedNodeName"),
        ("Node", "spec.unschedulable") => Some(bool_at(object, "/spec/unschedulable")),
        ("Event", "source") => {
            let source = string_at(object, "/source/component");
            if source.is_empty() {
                s("/reportingComponent")
            } else {
                Some(source)
            }
        }
        ("Event", "reason") => s("/reason"),
        ("Event", "reportingComponent") => s("/reportingComponent"),
        ("Event", "type") => s("/type"),
        ("Event", involved) => {
            let rest = involved.strip_prefix("involvedObject.")?;
            matches!(
                rest,
                "kind"
                    | "namespace"
                    | "name"
                    | "uid"
                    | "apiVersion"
                    | "resourceVersion"
                    | "fieldPath"
            )
            .then(|| string_at(object, &format!("/involvedObject/{rest}")))
        }
        ("Service", "spec.clusterIP") => s("/spec/clusterIP"),
        ("Service", "spec.type") => s("/spec/type"),
        ("ReplicationController", "status.replicas") => Some(int_at(object, "/status/replicas")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{
        ENDPOINTS, EVENTS, NAMESPACES, NODES, PODS, REPLICATION_CONTROLLERS, SERVICES,
    };
    use serde_json::json;

    fn parse(text: &str) -> FieldSelector {
        match FieldSelector::parse(text) {
            Ok(s) => s,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn error(text: &str) -> String {
        match FieldSelector::parse(text) {
            Ok(s) => panic!("{text:?} should not parse, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn term(field: &str, operator: FieldOperator, value: &str) -> FieldRequirement {
        FieldRequirement::new(field, operator, value)
    }

    #[test]
    fn parses_every_operator() {
        use FieldOperator::*;
        for (text, expected) in [
            ("a=b", vec![term("a", Equals, "b")]),
            ("a==b", vec![term("a", Equals, "b")]),
            ("a!=b", vec![term("a", NotEquals, "b")]),
            ("a=", vec![term("a", Equals, "")]),
            ("a!=", vec![term("a", NotEquals, "")]),
            ("a==", vec![term("a", Equals, "")]),
            ("=b", vec![term("", Equals, "b")]),
            ("a!b=c", vec![term("a!b", Equals, "c")]),
            (
                "spec.nodeName=,status.phase!=Failed",
                vec![
                    term("spec.nodeName", Equals, ""),
                    term("status.phase", NotEquals, "Failed"),
                ],
            ),
            (
                "z=1,,a=2,",
                vec![term("a", Equals, "2"), term("z", Equals, "1")],
            ),
            // Nothing is trimmed.
            (" a = b ", vec![term(" a ", Equals, " b ")]),
        ] {
            assert_eq!(parse(text).requirements(), expected, "{text:?}");
        }
        assert!(parse("").is_empty());
        assert!(parse(",").is_empty());
        assert!(parse(",,").is_empty());
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_value(r"a,b=c\d"), r"a\,b\=c\\d");
        assert_eq!(unescape_value(r"a\,b\=c\\d"), Ok(r"a,b=c\d".to_owned()));
        assert_eq!(unescape_value("plain"), Ok("plain".to_owned()));
        let s = parse(r"metadata.name=a\,b,spec.nodeName=x\=y\\");
        assert_eq!(
            s.requirements(),
            [
                term("metadata.name", FieldOperator::Equals, "a,b"),
                term("spec.nodeName", FieldOperator::Equals, r"x=y\"),
            ]
        );
        assert_eq!(s.to_string(), r"metadata.name=a\,b,spec.nodeName=x\=y\\");
        // An escaped comma in a field name stays in the name.
        assert_eq!(
            parse(r"a\,b=c").requirements(),
            [term(r"a\,b", FieldOperator::Equals, "c")]
        );
    }

    #[test]
    fn parse_errors_say_what_and_where() {
        for (text, message) in [
            (
                "metadata.name",
                "invalid field selector: 'metadata.name'; can't understand 'metadata.name' (at position 0)",
            ),
            (
                "a=b,c",
                "invalid field selector: 'a=b,c'; can't understand 'c' (at position 4)",
            ),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: '=' (at position 3)",
            ),
            (
                "x=1,a==b=c",
                "invalid field selector: unescaped character in value: '=' (at position 8)",
            ),
            (
                r"a=b\x",
                r"invalid field selector: invalid escape sequence: \x (at position 3)",
            ),
            (
                r"a=b\",
                r"invalid field selector: invalid escape sequence: \ (at position 3)",
            ),
        ] {
            assert_eq!(error(text), message, "{text:?}");
        }
        assert_eq!(
            unescape_value("a,b"),
            Err(SelectorError::UnescapedCharacter {
                character: ',',
                position: 1
            })
        );
    }

    #[test]
    fn matching_treats_absent_fields_as_empty() {
        let mut fields = BTreeMap::new();
        fields.insert("metadata.name", "web".to_owned());
        fields.insert("spec.nodeName", String::new());
        for (selector, expected) in [
            ("", true),
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name!=web", false),
            ("metadata.name=db", false),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("status.phase=", true),
            ("status.phase!=Running", true),
            ("status.phase=Running", false),
            ("metadata.name=web,spec.nodeName=", true),
            ("metadata.name=web,spec.nodeName=m1", false),
        ] {
            assert_eq!(parse(selector).matches(&fields), expected, "{selector:?}");
        }
    }

    #[test]
    fn display_round_trips_to_an_equal_selector() {
        for (text, canonical) in [
            ("", ""),
            ("b=2,a==1", "a=1,b=2"),
            ("a!=x,a=y", "a=y,a!=x"),
            (r"n=a\,b\=c\\", r"n=a\,b\=c\\"),
            ("spec.nodeName=,", "spec.nodeName="),
        ] {
            let s = parse(text);
            assert_eq!(s.to_string(), canonical, "{text:?}");
            assert_eq!(parse(&s.to_string()), s, "{text:?}");
            assert_eq!(canonical.parse::<FieldSelector>().as_ref(), Ok(&s));
        }
        let built = FieldSelector::one_term("metadata.name", "a,b=c").with(term(
            "spec.nodeName",
            FieldOperator::NotEquals,
            "",
        ));
        assert_eq!(parse(&built.to_string()), built);
        assert_eq!(built.requires_exact_match("metadata.name"), Some("a,b=c"));
        assert_eq!(built.requires_exact_match("spec.nodeName"), None);
    }

    #[test]
    fn everything_and_default_are_empty() {
        assert!(FieldSelector::everything().is_empty());
        assert_eq!(FieldSelector::default(), FieldSelector::everything());
        assert_eq!(FieldSelector::everything().to_string(), "");
        assert!(!parse("a=b").is_empty());
    }

    #[test]
    fn serde_uses_the_text_form() {
        let s = parse("b=2,a=x\\,y");
        let json = serde_json::to_string(&s).expect("serializes");
        assert_eq!(json, r#""a=x\\,y,b=2""#);
        let back: FieldSelector = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, s);
        assert!(serde_json::from_str::<FieldSelector>("\"nope\"").is_err());
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "prod", "labels": {"app": "web"}},
            "spec": {
                "nodeName": "minion-1",
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "serviceAccountName": "default",
                "hostNetwork": true,
                "containers": [{"name": "web", "image": "nginx"}]
            },
            "status": {
                "phase": "Running",
                "podIP": "10.244.1.5",
                "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}],
                "nominatedNodeName": "minion-2"
            }
        })
    }

    fn owned(fields: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
        fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    #[test]
    fn field_set_of_a_pod() {
        assert_eq!(
            field_set(&PODS, &pod()),
            owned(&[
                ("metadata.name", "web-1"),
                ("metadata.namespace", "prod"),
                ("spec.nodeName", "minion-1"),
                ("spec.restartPolicy", "Always"),
                ("spec.schedulerName", "default-scheduler"),
                ("spec.serviceAccountName", "default"),
                ("spec.hostNetwork", "true"),
                ("status.phase", "Running"),
                ("status.podIP", "10.244.1.5"),
                ("status.nominatedNodeName", "minion-2"),
            ])
        );
        // A pending pod: absent strings are empty, absent booleans false,
        // and podIP is read when podIPs is absent.
        let pending = json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": []},
            "status": {"phase": "Pending", "podIP": "10.244.0.9"}
        });
        assert_eq!(
            field_set(&PODS, &pending),
            owned(&[
                ("metadata.name", "p"),
                ("metadata.namespace", "default"),
                ("spec.nodeName", ""),
                ("spec.restartPolicy", ""),
                ("spec.schedulerName", ""),
                ("spec.serviceAccountName", ""),
                ("spec.hostNetwork", "false"),
                ("status.phase", "Pending"),
                ("status.podIP", "10.244.0.9"),
                ("status.nominatedNodeName", ""),
            ])
        );
        let keys: Vec<&str> = field_set(&PODS, &pending).into_keys().collect();
        let mut supported = supported_fields(&PODS).to_vec();
        supported.sort_unstable();
        assert_eq!(keys, supported);
    }

    #[test]
    fn field_set_of_every_other_kind() {
        let node = json!({
            "metadata": {"name": "minion-1", "labels": {"kubernetes.io/hostname": "minion-1"}},
            "spec": {"unschedulable": true, "podCIDR": "10.244.1.0/24"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        assert_eq!(
            field_set(&NODES, &node),
            owned(&[
                ("metadata.name", "minion-1"),
                ("spec.unschedulable", "true")
            ])
        );
        assert_eq!(
            field_set(&NODES, &json!({"metadata": {"name": "m2"}, "spec": {}})),
            owned(&[("metadata.name", "m2"), ("spec.unschedulable", "false")])
        );

        let namespace = json!({
            "metadata": {"name": "kube-system"},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        });
        assert_eq!(
            field_set(&NAMESPACES, &namespace),
            owned(&[("metadata.name", "kube-system"), ("status.phase", "Active")])
        );

        let event = json!({
            "metadata": {"name": "web-1.17a", "namespace": "prod"},
            "involvedObject": {
                "kind": "Pod", "namespace": "prod", "name": "web-1",
                "uid": "0b7c-uid", "apiVersion": "v1", "resourceVersion": "42",
                "fieldPath": "spec.containers{web}"
            },
            "reason": "Pulled",
            "message": "Successfully pulled image",
            "source": {"component": "kubelet", "host": "minion-1"},
            "reportingComponent": "",
            "type": "Normal",
            "count": 1
        });
        assert_eq!(
            field_set(&EVENTS, &event),
            owned(&[
                ("metadata.name", "web-1.17a"),
                ("metadata.namespace", "prod"),
                ("involvedObject.kind", "Pod"),
                ("involvedObject.namespace", "prod"),
                ("involvedObject.name", "web-1"),
                ("involvedObject.uid", "0b7c-uid"),
                ("involvedObject.apiVersion", "v1"),
                ("involvedObject.resourceVersion", "42"),
                ("involvedObject.fieldPath", "spec.containers{web}"),
                ("reason", "Pulled"),
                ("reportingComponent", ""),
                ("source", "kubelet"),
                ("type", "Normal"),
            ])
        );
        // `source` falls back to reportingComponent.
        let new_style = json!({
            "metadata": {"name": "e", "namespace": "prod"},
            "involvedObject": {"kind": "Node", "name": "minion-1"},
            "reportingComponent": "node-controller",
            "type": "Warning"
        });
        let fields = field_set(&EVENTS, &new_style);
        assert_eq!(fields["source"], "node-controller");
        assert_eq!(fields["reportingComponent"], "node-controller");
        assert_eq!(fields["involvedObject.namespace"], "");

        let service = json!({
            "metadata": {"name": "redis-master", "namespace": "default"},
            "spec": {"clusterIP": "10.0.0.11", "type": "ClusterIP",
                     "ports": [{"port": 6379, "targetPort": 6379}],
                     "selector": {"name": "redis-master"}}
        });
        assert_eq!(
            field_set(&SERVICES, &service),
            owned(&[
                ("metadata.name", "redis-master"),
                ("metadata.namespace", "default"),
                ("spec.clusterIP", "10.0.0.11"),
                ("spec.type", "ClusterIP"),
            ])
        );

        let endpoints = json!({
            "metadata": {"name": "redis-master", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 6379}]}]
        });
        assert_eq!(
            field_set(&ENDPOINTS, &endpoints),
            owned(&[
                ("metadata.name", "redis-master"),
                ("metadata.namespace", "default"),
            ])
        );

        let rc = json!({
            "metadata": {"name": "frontend", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"name": "frontend"}},
            "status": {"replicas": 2}
        });
        assert_eq!(
            field_set(&REPLICATION_CONTROLLERS, &rc),
            owned(&[
                ("metadata.name", "frontend"),
                ("metadata.namespace", "default"),
                ("status.replicas", "2"),
            ])
        );
        let fresh = json!({"metadata": {"name": "f", "namespace": "d"}, "spec": {}});
        assert_eq!(
            field_set(&REPLICATION_CONTROLLERS, &fresh)["status.replicas"],
            "0"
        );
    }

    #[test]
    fn field_set_keys_are_the_supported_fields() {
        for resource in crate::kinds::ALL {
            let keys: Vec<&str> = field_set(&resource, &json!({})).into_keys().collect();
            let mut supported = supported_fields(&resource).to_vec();
            supported.sort_unstable();
            assert_eq!(keys, supported, "{}", resource.kind);
        }
    }

    #[test]
    fn matches_object_uses_the_field_set() {
        let pod = pod();
        for (selector, expected) in [
            ("spec.nodeName=minion-1", true),
            ("spec.nodeName=", false),
            ("status.phase!=Running", false),
            ("spec.hostNetwork=true,metadata.namespace=prod", true),
            ("status.podIP=fd00::5", false),
        ] {
            assert_eq!(
                parse(selector).matches_object(&PODS, &pod),
                expected,
                "{selector:?}"
            );
        }
        let unscheduled = json!({"metadata": {"name": "p", "namespace": "default"}});
        assert!(parse("spec.nodeName=").matches_object(&PODS, &unscheduled));
    }

    #[test]
    fn unsupported_fields_get_kubernetes_message() {
        for (resource, text, field) in [
            (
                &PODS,
                "spec.nodeName=a,spec.containers=x",
                "spec.containers",
            ),
            (&PODS, "metadata.labels=x", "metadata.labels"),
            (&PODS, " metadata.name=x", " metadata.name"),
            (&NODES, "metadata.namespace=default", "metadata.namespace"),
            (&NODES, "status.phase=Running", "status.phase"),
            (&NAMESPACES, "metadata.namespace=x", "metadata.namespace"),
            (&ENDPOINTS, "spec.clusterIP=None", "spec.clusterIP"),
            (&REPLICATION_CONTROLLERS, "spec.replicas=1", "spec.replicas"),
            (&EVENTS, "message=x", "message"),
            (&SERVICES, "=x", ""),
        ] {
            let selector = parse(text);
            let err = selector.check_supported(resource).unwrap_err();
            assert_eq!(
                err,
                SelectorError::UnsupportedField {
                    field: field.to_owned()
                }
            );
            assert_eq!(
                err.to_string(),
                format!("field label not supported: {field}")
            );
            assert_eq!(FieldSelector::parse_for(resource, text), Err(err));
        }
        for resource in crate::kinds::ALL {
            for field in supported_fields(&resource) {
                let text = format!("{field}=x");
                assert_eq!(
                    parse(&text).check_supported(&resource),
                    Ok(()),
                    "{} {field}",
                    resource.kind
                );
            }
        }
        assert_eq!(FieldSelector::everything().check_supported(&NODES), Ok(()));
    }

    #[test]
    fn parse_for_renames_the_old_pod_host_field() {
        assert_eq!(
            FieldSelector::parse_for(&PODS, "spec.host=m1"),
            Ok(parse("spec.nodeName=m1"))
        );
        assert!(FieldSelector::parse_for(&NODES, "spec.host=m1").is_err());
    }

    #[test]
    fn v1beta1_names_are_translated() {
        for (text, v1) in [
            ("name=web", "metadata.name=web"),
            ("Name=web", "metadata.name=web"),
            ("namespace=prod", "metadata.namespace=prod"),
            ("DesiredState.Host=", "spec.nodeName="),
            ("desiredState.host=m1", "spec.nodeName=m1"),
            ("CurrentState.Host!=m1", "spec.nodeName!=m1"),
            ("Status.Host=m1", "spec.nodeName=m1"),
            ("DesiredState.Status=Waiting", "status.phase=Pending"),
            ("CurrentState.Status=Running", "status.phase=Running"),
            ("currentState.status=Terminated", "status.phase=Failed"),
            (
                "DesiredState.Status!=Terminated",
                "status.phase!=Failed,status.phase!=Succeeded",
            ),
            ("DesiredState.Status!=Waiting", "status.phase!=Pending"),
            ("DesiredState.Status=Unknown", "status.phase=Unknown"),
            ("DesiredState.Status=Succeeded", "status.phase=Succeeded"),
            ("Status.Phase=Pending", "status.phase=Pending"),
            ("Status.Phase=Waiting", "status.phase=Waiting"),
            // v1 names pass through, the old v1 alias too.
            (
                "spec.nodeName=m1,status.phase=Running",
                "spec.nodeName=m1,status.phase=Running",
            ),
            ("spec.host=m1", "spec.nodeName=m1"),
            (
                "DesiredState.Host=,name=web",
                "metadata.name=web,spec.nodeName=",
            ),
            ("", ""),
        ] {
            let translated = FieldSelector::from_v1beta1(&PODS, text);
            assert_eq!(translated, Ok(parse(v1)), "{text:?}");
        }
        assert_eq!(
            FieldSelector::from_v1beta1(&SERVICES, "name=redis"),
            Ok(parse("metadata.name=redis"))
        );
        assert_eq!(
            FieldSelector::from_v1beta1(&NODES, "name=minion-1"),
            Ok(parse("metadata.name=minion-1"))
        );
    }

    #[test]
    fn v1beta1_errors_name_the_field_as_written() {
        for (resource, text, field) in [
            (&SERVICES, "DesiredState.Host=m1", "DesiredState.Host"),
            (&NODES, "namespace=default", "namespace"),
            (&PODS, "DesiredState.Manifest=x", "DesiredState.Manifest"),
            (&ENDPOINTS, "Status.Phase=Running", "Status.Phase"),
        ] {
            assert_eq!(
                FieldSelector::from_v1beta1(resource, text),
                Err(SelectorError::UnsupportedField {
                    field: field.to_owned()
                }),
                "{} {text:?}",
                resource.kind
            );
        }
        assert!(matches!(
            FieldSelector::from_v1beta1(&PODS, "name"),
            Err(SelectorError::FieldTerm { .. })
        ));
    }
}
