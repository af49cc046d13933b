//! A selector: the sorted AND of requirements, its text form, serde, and
//! conversion from a `LabelSelector`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::parser::parse_requirements;
use super::{Operator, Requirement, SelectorError};

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
    pub(super) requirements: Vec<Requirement>,
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
        let mut requirements = parse_requirements(text)?;
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
    /// value the [`Display`](std::fmt::Display) text will not parse back. Use
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
}

selector_text_form!(Selector);

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
