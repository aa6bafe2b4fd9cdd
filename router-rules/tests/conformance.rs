//! The conformance suite: pattern / event / expected cases taken from the
//! AWS documentation (each group cites its page), run through the compiled
//! matchers and the reference interpreter.

use std::collections::BTreeMap;

use router_rules::topology::FilterPolicyScope;
use router_rules::{parse_sns_attributes, reference, BusMatcher, Dialect, Pattern, TopicMatcher};
use serde_json::Value;

const FILES: &[(&str, &str)] = &[
    (
        "eventbridge.json",
        include_str!("conformance/eventbridge.json"),
    ),
    ("sns.json", include_str!("conformance/sns.json")),
];

fn dialect(name: &str) -> (Dialect, Option<FilterPolicyScope>) {
    match name {
        "eventbridge" => (Dialect::EventBridge, None),
        "sns-attributes" => (
            Dialect::SnsAttributes,
            Some(FilterPolicyScope::MessageAttributes),
        ),
        "sns-body" => (Dialect::SnsBody, Some(FilterPolicyScope::MessageBody)),
        other => panic!("unknown dialect {other}"),
    }
}

/// Runs one event through the compiled matcher and the reference interpreter.
fn run(
    pattern: &Value,
    d: Dialect,
    scope: Option<FilterPolicyScope>,
    event: &Value,
) -> (bool, bool) {
    let parsed = Pattern::parse(pattern, d).expect("valid pattern");
    match (d, scope) {
        (Dialect::EventBridge, _) => {
            let m = BusMatcher::compile([(0, pattern)]).expect("compiles");
            let compiled = !m.matches(&event.to_string()).is_empty();
            (
                compiled,
                reference::matches(&parsed, &reference::flatten_json(event)),
            )
        }
        (Dialect::SnsAttributes, Some(scope)) => {
            let m = TopicMatcher::compile([(0, pattern, scope)]).expect("compiles");
            let attrs = parse_sns_attributes(event).expect("valid attributes");
            let compiled = !m.matches(&attrs, "{}").is_empty();
            (
                compiled,
                reference::matches(&parsed, &reference::flatten_attributes(&attrs)),
            )
        }
        (_, scope) => {
            let m =
                TopicMatcher::compile([(0, pattern, scope.expect("sns scope"))]).expect("compiles");
            let compiled = !m.matches(&BTreeMap::new(), &event.to_string()).is_empty();
            (
                compiled,
                reference::matches(&parsed, &reference::flatten_json(event)),
            )
        }
    }
}

#[test]
fn conformance_suite() {
    let mut cases = 0;
    let mut failures = Vec::new();
    for (file, text) in FILES {
        let groups: Vec<Value> =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        for (gi, g) in groups.iter().enumerate() {
            let doc = g["doc"].as_str().unwrap_or("");
            assert!(
                doc.starts_with("https://docs.aws.amazon.com/"),
                "{file} group {gi} cites no AWS page"
            );
            let (d, scope) = dialect(g["dialect"].as_str().expect("dialect"));
            let here = format!("{file} group {gi} ({doc})");
            if let Some(bad) = g.get("invalid") {
                cases += 1;
                match Pattern::parse(bad, d) {
                    Ok(_) => failures.push(format!("{here}: accepted {bad}")),
                    Err(e) => {
                        let want_op = g["operator"].as_str();
                        if e.path != g["path"].as_str().unwrap_or("")
                            || e.operator.as_deref() != want_op
                        {
                            failures.push(format!(
                                "{here}: wrong error for {bad}: {e} (operator {:?})",
                                e.operator
                            ));
                        }
                    }
                }
                continue;
            }
            let pattern = &g["pattern"];
            if let Err(e) = Pattern::parse(pattern, d) {
                failures.push(format!("{here}: rejected {pattern}: {e}"));
                continue;
            }
            // Message bodies as raw text (not JSON), for MessageBody policies.
            for body in g["no_match_raw"].as_array().into_iter().flatten() {
                cases += 1;
                let body = body.as_str().expect("a raw body is a string");
                let scope = scope.expect("raw bodies are for SNS");
                let m = TopicMatcher::compile([(0, pattern, scope)]).expect("compiles");
                if !m.matches(&BTreeMap::new(), body).is_empty() {
                    failures.push(format!("{here}: {pattern} matched the raw body {body:?}"));
                }
            }
            for (key, expected) in [("match", true), ("no_match", false)] {
                for event in g[key].as_array().into_iter().flatten() {
                    cases += 1;
                    let (compiled, interpreted) = run(pattern, d, scope, event);
                    if compiled != expected || interpreted != expected {
                        failures.push(format!(
                            "{here}: {pattern} on {event}: expected {expected}, compiled {compiled}, reference {interpreted}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        cases >= 300,
        "the suite must hold at least 300 cases, has {cases}"
    );
}

#[test]
fn all_cases_on_one_matcher() {
    // The same EventBridge cases with every pattern compiled into one automaton:
    // sharing states must not change any verdict.
    let groups: Vec<Value> = serde_json::from_str(FILES[0].1).expect("valid json");
    let patterns: Vec<&Value> = groups
        .iter()
        .filter(|g| g.get("pattern").is_some() && g["dialect"] == "eventbridge")
        .map(|g| &g["pattern"])
        .collect();
    let all =
        BusMatcher::compile(patterns.iter().enumerate().map(|(i, p)| (i, *p))).expect("compiles");
    let mut checked = 0;
    for g in &groups {
        for event in ["match", "no_match"]
            .iter()
            .filter_map(|k| g.get(*k))
            .flat_map(|v| v.as_array().into_iter().flatten())
        {
            let got = all.matches(&event.to_string());
            let want: Vec<usize> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    !BusMatcher::compile([(0, **p)])
                        .expect("compiles")
                        .matches(&event.to_string())
                        .is_empty()
                })
                .map(|(i, _)| i)
                .collect();
            assert_eq!(got, want, "event {event}");
            checked += 1;
        }
    }
    assert!(checked > 300);
}
