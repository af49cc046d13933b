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
//!
//! One file per concern: the error, requirements (and the checks of their
//! keys and values), selectors (text, serde, `LabelSelector`), matching, and
//! the lexer and parser.

/// The text form both selector types share (label selectors here, field
/// selectors in [`crate::fields`]): requirements joined by `,` for
/// `Display`, and `FromStr` and serde through the type's own `parse`, so a
/// selector travels in JSON and query strings as the string users type.
macro_rules! selector_text_form {
    ($selector:ty) => {
        impl ::std::fmt::Display for $selector {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                for (i, r) in self.requirements.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{r}")?;
                }
                Ok(())
            }
        }

        impl ::std::str::FromStr for $selector {
            type Err = $crate::labels::SelectorError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl serde::Serialize for $selector {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $selector {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use selector_text_form;

mod error;
mod matching;
mod parser;
mod requirement;
mod selector;

pub use error::SelectorError;
pub use requirement::{Operator, Requirement};
pub use selector::Selector;

#[cfg(test)]
mod tests;
