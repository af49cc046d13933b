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
