//! Any JSON text as a pattern, in every dialect: the parser may reject it,
//! never panic, and whatever it accepts must compile.
#![no_main]

use libfuzzer_sys::fuzz_target;
use router_rules::{BusMatcher, Dialect, Pattern};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for d in [Dialect::EventBridge, Dialect::SnsAttributes, Dialect::SnsBody] {
        let _ = Pattern::parse(&value, d);
    }
    if Pattern::parse(&value, Dialect::EventBridge).is_ok() {
        BusMatcher::compile([(0u8, &value)]).expect("a parsed pattern compiles");
    }
});
