//! Label selector tests: parsing, errors with positions, matching, and the
//! text and serde forms.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::*;
use crate::validation::{is_qualified_name, is_valid_label_value};

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
    // Kubernetes' IsQualifiedName wording, its regular expression included
    // (the one copy of the check is validation::is_qualified_name).
    let name_rule = "must consist of alphanumeric characters, '-', '_' or '.', and must \
                     start and end with an alphanumeric character (e.g. 'MyName',  or \
                     'my.name',  or '123-abc', regex used for validation is \
                     '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
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
            "invalid label key \"/a\": prefix part must be non-empty (at position 0)".to_owned(),
        ),
        (
            "!a/".to_owned(),
            // Kubernetes also says what the empty name does not match.
            format!(
                "invalid label key \"a/\": name part must be non-empty; name part {name_rule} \
                 (at position 1)"
            ),
        ),
        (
            "Example.com/a in (x)".to_owned(),
            "invalid label key \"Example.com/a\": prefix part a lowercase RFC 1123 \
             subdomain must consist of lower case alphanumeric characters, '-' or '.', and \
             must start and end with an alphanumeric character (e.g. 'example.com', regex \
             used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*') (at \
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
                      alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', \
                      regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
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
    let s =
        parse("m=1")
            .with(req("z", Operator::Exists, &[]))
            .with(req("a", Operator::NotIn, &["x"]));
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
    assert!(is_qualified_name("kubernetes.io/name").is_empty());
    assert!(is_qualified_name("a").is_empty());
    assert_eq!(is_qualified_name("A_b/c").len(), 1);
    // The prefix's inside characters are checked too, and its labels
    // may not be empty.
    assert_eq!(is_qualified_name("a_b.io/c").len(), 1);
    assert_eq!(is_qualified_name("a..io/c").len(), 1);
    assert!(is_qualified_name("a-b.c-d.io/c").is_empty());
    // Kubernetes also says what the empty name part does not match.
    assert_eq!(is_qualified_name("/").len(), 3);
    assert_eq!(is_qualified_name(&format!("-{}", "a".repeat(63))).len(), 2);
    assert!(is_qualified_name(&format!("{}/a", "p".repeat(254)))[0].contains("no more than 253"));
    assert!(is_valid_label_value("").is_empty());
    assert!(is_valid_label_value("A.b-c_1").is_empty());
    assert_eq!(
        is_valid_label_value(&format!("{}-", "a".repeat(63))).len(),
        2
    );
}
