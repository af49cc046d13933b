//! Matching labels against requirements and selectors, with Kubernetes'
//! semantics for absent keys and integer comparisons.

use std::collections::BTreeMap;

use super::{Operator, Requirement, Selector};

impl Requirement {
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

impl Selector {
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
