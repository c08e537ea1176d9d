//! Table tests: expressions against label sets, and rejected expressions.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn selectors_match_like_kubernetes() {
    let nginx = labels(&[("app", "nginx"), ("tier", "frontend")]);
    let db = labels(&[("app", "db"), ("env", "")]);
    let none = labels(&[]);
    // (expression, matches nginx, matches db, matches no labels)
    let cases: &[(&str, bool, bool, bool)] = &[
        ("", true, true, true),
        ("   ", true, true, true),
        ("app=nginx", true, false, false),
        ("app==nginx", true, false, false),
        ("app = nginx", true, false, false),
        ("app!=nginx", false, true, true),
        ("app in (nginx, web)", true, false, false),
        ("app in (db)", false, true, false),
        ("app notin (nginx)", false, true, true),
        ("tier", true, false, false),
        ("!tier", false, true, true),
        ("app=nginx,tier=frontend", true, false, false),
        ("app=nginx, tier=backend", false, false, false),
        ("app,!tier", false, true, false),
        ("env=", false, true, false),
        ("env in (,x)", false, true, false),
        ("example.com/team=a", false, false, false),
        ("app in(nginx,db),!missing", true, true, false),
    ];
    for (expr, want_nginx, want_db, want_none) in cases {
        let sel = parse(expr).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
        assert_eq!(sel.matches(&nginx), *want_nginx, "{expr:?} on nginx");
        assert_eq!(sel.matches(&db), *want_db, "{expr:?} on db");
        assert_eq!(sel.matches(&none), *want_none, "{expr:?} on no labels");
    }
}

#[test]
fn as_str_returns_the_trimmed_expression() {
    let sel = parse("  app in (a,b), !x ").expect("parses");
    assert_eq!(sel.as_str(), "app in (a,b), !x");
    assert_eq!(sel.to_string(), "app in (a,b), !x");
    let via_from_str: Selector = "app=a".parse().expect("parses");
    assert_eq!(via_from_str.as_str(), "app=a");
}

#[test]
fn malformed_selectors_are_rejected_with_the_reason() {
    let cases: &[(&str, &str)] = &[
        ("app=", ""), // valid, listed to keep the table honest below
        (
            ",",
            "label selector: expected a label key or `!` at offset 0, found \",\"",
        ),
        (
            "app=nginx,",
            "label selector: expected a label key or `!` at offset 10, found end of input",
        ),
        (
            "app nginx",
            "label selector: expected `=`, `==`, `!=`, `in`, `notin`, `,` or end of input at offset 4, found \"nginx\"",
        ),
        (
            "app in ()",
            "label selector: `app in ()` needs at least one value",
        ),
        (
            "app notin ()",
            "label selector: `app notin ()` needs at least one value",
        ),
        (
            "app in (a",
            "label selector: expected `,` or `)` at offset 9, found end of input",
        ),
        (
            "app in a",
            "label selector: expected `(` at offset 7, found \"a\"",
        ),
        (
            "app > 5",
            "label selector: expected `=`, `==`, `!=`, `in`, `notin`, `,` or end of input at offset 4, found \">\"",
        ),
        (
            "!",
            "label selector: expected a label key at offset 1, found end of input",
        ),
        (
            "app==(x)",
            "label selector: expected a label value at offset 5, found \"(\"",
        ),
        (
            "-app=x",
            "label selector: invalid key \"-app\": must start and end with a letter or digit",
        ),
        (
            "Example.com/a=x",
            "label selector: invalid key \"Example.com/a\": prefix must be a lower-case DNS subdomain",
        ),
        (
            "a/b/c=x",
            "label selector: invalid key \"a/b/c\": only letters, digits, `-`, `_` and `.` are allowed",
        ),
        (
            "app=a$b",
            "label selector: invalid value \"a$b\": only letters, digits, `-`, `_` and `.` are allowed",
        ),
        (
            "app=x y",
            "label selector: expected `,` or end of input at offset 6, found \"y\"",
        ),
    ];
    for (expr, want) in cases {
        match parse(expr) {
            Ok(_) => assert!(want.is_empty(), "{expr:?} should fail with {want}"),
            Err(e) => assert_eq!(e.to_string(), *want, "{expr:?}"),
        }
    }
}

#[test]
fn keys_and_values_longer_than_63_characters_are_rejected() {
    let long = "a".repeat(64);
    assert!(matches!(
        parse(&format!("{long}=x")),
        Err(SelectorError::InvalidKey {
            reason: "too long",
            ..
        })
    ));
    assert!(matches!(
        parse(&format!("x={long}")),
        Err(SelectorError::InvalidValue {
            reason: "too long",
            ..
        })
    ));
    assert!(parse(&format!("{}=x", "a".repeat(63))).is_ok());
}
