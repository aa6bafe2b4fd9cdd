//! The bodies of the fuzz targets in `router-rules/fuzz`, kept here so the
//! coverage-guided fuzzer (`scripts/fuzz`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`) run the same checks. Each panics on a finding.

use serde_json::Value;

use crate::matcher::is_json_object;
use crate::pattern::FilterPolicyScope;
use crate::{reference, BusMatcher, Dialect, Pattern, TopicMatcher};

/// Any JSON text as a pattern, in every dialect: the parser may reject it,
/// never panic, and whatever it accepts must compile.
pub fn parse_pattern(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for d in [
        Dialect::EventBridge,
        Dialect::SnsAttributes,
        Dialect::SnsBody,
    ] {
        if Pattern::parse(&value, d).is_err() {
            continue;
        }
        match d {
            Dialect::EventBridge => {
                BusMatcher::compile([(0u8, &value)]).expect("a parsed pattern compiles");
            }
            Dialect::SnsAttributes => {
                TopicMatcher::compile([(0u8, &value, FilterPolicyScope::MessageAttributes)])
                    .expect("a parsed policy compiles");
            }
            Dialect::SnsBody => {
                TopicMatcher::compile([(0u8, &value, FilterPolicyScope::MessageBody)])
                    .expect("a parsed policy compiles");
            }
        }
    }
}

/// A pattern and an event split at the first NUL byte: on every event that
/// is a JSON object, the compiled matcher must agree with the reference
/// interpreter (EventBridge, and SNS for message bodies); on any other text
/// it must not panic.
pub fn match_event(data: &[u8]) {
    let Some(split) = data.iter().position(|b| *b == 0) else {
        return;
    };
    let (pattern, event) = (&data[..split], &data[split + 1..]);
    let Ok(pattern) = serde_json::from_slice::<Value>(pattern) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(event) else {
        return;
    };
    let value = serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object);
    if let Ok(parsed) = Pattern::parse(&pattern, Dialect::EventBridge) {
        let matcher = BusMatcher::compile([(0u8, &pattern)]).expect("a parsed pattern compiles");
        let compiled = matcher.try_matches(text);
        if let Some(value) = &value {
            let expected = reference::matches(&parsed, &reference::flatten_json(value));
            assert_eq!(
                compiled.map(|m| !m.is_empty()).ok(),
                Some(expected),
                "EventBridge: pattern {pattern} event {text}"
            );
        }
    }
    if let Ok(parsed) = Pattern::parse(&pattern, Dialect::SnsBody) {
        let matcher = TopicMatcher::compile([(0u8, &pattern, FilterPolicyScope::MessageBody)])
            .expect("a parsed policy compiles");
        let compiled = !matcher.matches(&Default::default(), text).is_empty();
        match &value {
            Some(v) => {
                let expected = reference::matches(&parsed, &reference::flatten_json(v));
                assert_eq!(compiled, expected, "SNS body: policy {pattern} body {text}");
            }
            // A body that is not one JSON object matches no MessageBody policy.
            None if !is_json_object(text) => {
                assert!(
                    !compiled,
                    "SNS body: policy {pattern} matched the non-JSON body {text}"
                );
            }
            // Valid JSON that serde_json's Value cannot hold (a number such as
            // 1e600, which the matcher reads as infinity): the reference
            // interpreter has no verdict.
            None => {}
        }
    }
}
