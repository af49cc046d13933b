//! Quantities (`cpu: 500m`, `memory: 1Gi`): parsed or refused, ordered
//! consistently, and bounded in length (a million digits is refused, not
//! compared digit by digit).

use api_types::validation::quantity::ParsedQuantity;
use proptest::prelude::*;

use crate::corpus::{config, mutated, seeds};

fn parse_and_compare(a: &str, b: &str) {
    let (Ok(x), Ok(y)) = (ParsedQuantity::parse(a), ParsedQuantity::parse(b)) else {
        return;
    };
    // Ord must be a total order: antisymmetric and reflexive.
    assert_eq!(x.cmp(&y), y.cmp(&x).reverse(), "{a} vs {b}");
    assert_eq!(x.cmp(&x), std::cmp::Ordering::Equal, "{a} vs itself");
}

#[test]
fn corpus_quantities_parse_or_are_refused() {
    let seeds = seeds("quantities");
    let lines: Vec<String> = seeds
        .iter()
        .flat_map(|(_, s)| {
            String::from_utf8_lossy(s)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    for a in &lines {
        for b in &lines {
            parse_and_compare(a, b);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_quantities_parse_or_are_refused(
        a in r"[+-]?[0-9]{0,30}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,4}|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?",
        b in r"[+-]?[0-9]{0,30}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,4}|Ki|Mi|Gi|m|k|M|G)?",
    ) {
        parse_and_compare(&a, &b);
    }

    #[test]
    fn mutated_quantities_parse_or_are_refused(bytes in mutated("quantities")) {
        let text = String::from_utf8_lossy(&bytes);
        parse_and_compare(&text, "1");
    }
}
