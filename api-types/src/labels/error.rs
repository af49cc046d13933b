//! The one error type of label and field selectors.

use std::fmt;

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
