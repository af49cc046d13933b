//! One requirement of a selector (`key in (a,b)`): its operator, and the
//! checks of its key and values (the qualified-name and label-value rules of
//! [`crate::validation`]).

use std::fmt;

use super::SelectorError;
use crate::validation::{is_qualified_name, is_valid_label_value};

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

/// One condition on one label key; a [`Selector`](super::Selector) is the AND of several.
///
/// Built only by [`Requirement::new`] or by parsing, so it is always valid:
/// `in`/`notin` have at least one value (sorted, without duplicates),
/// `=`/`!=`/`>`/`<` exactly one, exists/does-not-exist none. The one
/// exception is [`Selector::from_map`](super::Selector::from_map), which trusts its map (see there).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requirement {
    pub(super) key: String,
    pub(super) operator: Operator,
    pub(super) values: Vec<String>,
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
    pub(super) fn build(
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
            let errors = is_valid_label_value(value);
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

/// Checks a requirement's key; `position` is where it starts in selector
/// text, for the error.
pub(super) fn validate_key(key: &str, position: Option<usize>) -> Result<(), SelectorError> {
    let errors = is_qualified_name(key);
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
