//! A pattern and an event split at the first NUL byte: the compiled matcher
//! must agree with the reference interpreter on every valid event, and must
//! not panic on invalid ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use router_rules::{reference, BusMatcher, Dialect, Pattern};

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0) else { return };
    let (pattern, event) = (&data[..split], &data[split + 1..]);
    let Ok(pattern) = serde_json::from_slice::<serde_json::Value>(pattern) else { return };
    let Ok(parsed) = Pattern::parse(&pattern, Dialect::EventBridge) else { return };
    let matcher = BusMatcher::compile([(0u8, &pattern)]).expect("a parsed pattern compiles");
    let Ok(text) = std::str::from_utf8(event) else { return };
    let compiled = matcher.try_matches(text);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        if value.is_object() {
            let expected = reference::matches(&parsed, &reference::flatten_json(&value));
            assert_eq!(compiled.map(|m| !m.is_empty()).ok(), Some(expected), "pattern {pattern} event {text}");
        }
    }
});
