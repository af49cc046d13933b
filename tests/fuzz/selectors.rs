//! Label and field selectors: parsed or refused, and what parses prints
//! back to text that parses to the same selector.

use api_types::fields::FieldSelector;
use api_types::labels::Selector;
use proptest::prelude::*;

use crate::corpus::{config, mutated, seeds};

fn label_selector_round_trips(text: &str) {
    if let Ok(selector) = Selector::parse(text) {
        let printed = selector.to_string();
        let again = Selector::parse(&printed)
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(again.to_string(), printed, "{text:?} does not round-trip");
        let labels = [("a".to_string(), "b".to_string())].into_iter().collect();
        let _ = selector.matches(&labels);
    }
}

fn field_selector_round_trips(text: &str) {
    if let Ok(selector) = FieldSelector::parse(text) {
        let printed = selector.to_string();
        let again = FieldSelector::parse(&printed)
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(again.to_string(), printed, "{text:?} does not round-trip");
        let fields = [("metadata.name", "x".to_string())].into_iter().collect();
        let _ = selector.matches(&fields);
    }
}

#[test]
fn corpus_selectors_parse_or_are_refused() {
    for (_, seed) in seeds("selectors") {
        for line in String::from_utf8_lossy(&seed).lines() {
            label_selector_round_trips(line);
            field_selector_round_trips(line);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_selectors_parse_or_are_refused(
        text in r"[a-z0-9./ ,()!=\\_-]{0,40}|[a-z]{1,5}( (in|notin) \([a-z,]{0,9}\))?(,!?[a-z]{1,4})?",
    ) {
        label_selector_round_trips(&text);
        field_selector_round_trips(&text);
    }

    #[test]
    fn mutated_selectors_parse_or_are_refused(bytes in mutated("selectors")) {
        let text = String::from_utf8_lossy(&bytes);
        label_selector_round_trips(&text);
        field_selector_round_trips(&text);
    }
}
