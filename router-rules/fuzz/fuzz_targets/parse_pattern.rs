//! Any JSON text as a pattern, in every dialect: see `router_rules::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router_rules::fuzzing::parse_pattern(data));
